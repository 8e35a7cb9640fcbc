"""What to monitor of a target file: its process groups and its ports.

Endpoints that name the same processes to monitor share one group, named after them
(`imap+pop3`), or after the processes when more than two endpoints share them (`dovecot`), so
each process tree is sampled and reported once — the same names whether a run samples the
target locally or `mailswarm agent` samples it on the target's host.
"""

from __future__ import annotations

from loadtests.targets import ProcessRef, Target

__all__ = ["monitor_groups", "target_ports"]


def monitor_groups(target: Target) -> dict[str, list[ProcessRef]]:
    """Endpoints naming the same process refs, as one group: named `key1+key2` for up to two
    endpoints, after its processes beyond that (`dovecot` for the stack's six Dovecot
    endpoints, from the pid file's or process's name), unless that name is taken."""
    groups: dict[tuple[str, ...], list[str]] = {}
    refs: dict[tuple[str, ...], list[ProcessRef]] = {}
    for key, ep in target.endpoints.items():
        if not ep.monitor:
            continue
        ident = tuple(sorted(r.model_dump_json() for r in ep.monitor))
        groups.setdefault(ident, []).append(key)
        refs[ident] = list(ep.monitor)
    named: dict[str, list[ProcessRef]] = {}
    for ident, keys in groups.items():
        short = "+".join(_ref_name(r) for r in refs[ident])
        taken = short in named or short in target.endpoints
        named[short if len(keys) > 2 and not taken else "+".join(keys)] = refs[ident]
    return named


def _ref_name(ref: ProcessRef) -> str:
    if ref.pid_file is not None:
        return ref.pid_file.stem
    if ref.process_name is not None:
        return ref.process_name
    return f"pid {ref.pid}" if ref.pid is not None else f"port {ref.listen_port}"


def target_ports(target: Target) -> list[int]:
    """Every endpoint's port, sorted, once each (the TCP states sampled)."""
    return sorted({ep.port for ep in target.endpoints.values()})
