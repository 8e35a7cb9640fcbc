"""Every process that runs users (a local run, each worker) sets the clients' source addresses
from the target's endpoints (`source_addresses`), once, before its users connect."""

from __future__ import annotations

from loadtests.clients import source
from loadtests.targets import Target

__all__ = ["use_source_addresses"]


def use_source_addresses(target: Target) -> None:
    """Several endpoints may name one server port (plain and STARTTLS on the same port): the
    addresses any of them gives are used for it, in the order first given."""
    by_port: dict[tuple[str, int], list[str]] = {}
    for ep in target.endpoints.values():
        if ep.source_addresses:
            taken = by_port.setdefault((ep.host, ep.port), [])
            taken += [a for a in ep.source_addresses if a not in taken]
    source.configure(by_port)
