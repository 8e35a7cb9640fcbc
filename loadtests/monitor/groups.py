"""What to monitor of a target file: its process groups and its ports.

Endpoints that name the same processes to monitor share one group, named after them
(`imap+pop3` for Dovecot), so each process tree is sampled and reported once — the same names
whether a run samples the target locally or `mailswarm agent` samples it on the target's host.
"""

from __future__ import annotations

from loadtests.targets import ProcessRef, Target

__all__ = ["monitor_groups", "target_ports"]


def monitor_groups(target: Target) -> dict[str, list[ProcessRef]]:
    """Endpoints naming the same process refs, as one group named `key1+key2`."""
    groups: dict[tuple[str, ...], list[str]] = {}
    refs: dict[tuple[str, ...], list[ProcessRef]] = {}
    for key, ep in target.endpoints.items():
        if not ep.monitor:
            continue
        ident = tuple(sorted(r.model_dump_json() for r in ep.monitor))
        groups.setdefault(ident, []).append(key)
        refs[ident] = list(ep.monitor)
    return {"+".join(keys): refs[ident] for ident, keys in groups.items()}


def target_ports(target: Target) -> list[int]:
    """Every endpoint's port, sorted, once each (the TCP states sampled)."""
    return sorted({ep.port for ep in target.endpoints.values()})
