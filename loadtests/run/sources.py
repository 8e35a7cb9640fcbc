"""Every process that runs users (a local run, each worker) sets the clients' source addresses
from the target's endpoints (`source_addresses`), once, before its users connect."""

from __future__ import annotations

from loadtests.clients import source
from loadtests.targets import Target

__all__ = ["use_source_addresses"]


def use_source_addresses(target: Target) -> None:
    source.configure({(ep.host, ep.port): ep.source_addresses
                      for ep in target.endpoints.values()})
