"""Local source addresses for the clients' connections, per server address.

A TCP connection is unique by (source address, source port, server address, server port): from
one source address, at most the ephemeral port range (~28,000 ports) of connections reach one
server port. Spreading connections over several local addresses (127.0.0.2, 127.0.0.3, ... on
loopback, or the host's own addresses) lifts that. The run configures it once per process from
the target's endpoints (`configure`); the clients ask `local_addr(host, port)` at each connect
and bind there (port 0: the kernel picks the port), taking the addresses in turn.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence

__all__ = ["configure", "local_addr", "most_per_destination"]

_turns: dict[tuple[str, int], Iterator[str]] = {}
_counts: dict[tuple[str, int], int] = {}


def configure(sources: Mapping[tuple[str, int], Sequence[str]]) -> None:
    """Source addresses per server (host, port); a server not named connects as the system
    chooses. Replaces any earlier setting."""
    _turns.clear()
    _counts.clear()
    for (host, port), addresses in sources.items():
        if addresses:
            key = (host.strip("[]"), port)
            _turns[key] = itertools.cycle(list(addresses))
            _counts[key] = len(set(addresses))


def local_addr(host: str, port: int) -> tuple[str, int] | None:
    """Where the next connection to host:port binds (its source address in turn, port 0), or
    None to let the system choose."""
    turns = _turns.get((host.strip("[]"), port))
    return None if turns is None else (next(turns), 0)


def most_per_destination() -> int:
    """The most source addresses any one server is reached from (1 when none is configured:
    the system's one choice). One server port takes ~ip_local_port_range connections from each
    of them, so this multiplies what the range allows."""
    return max(_counts.values(), default=1)
