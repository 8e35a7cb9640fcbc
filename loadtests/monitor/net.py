"""TCP sockets by state from /proc/net/tcp and tcp6, filtered by port, and listen-queue counters.

One split pass over the tables (~15 ms of Python for 20,000 sockets, plus what the kernel
takes to print them, ~3 µs a socket); only sockets touching a port of
interest are decoded further. Also the generator's ephemeral ports in use toward those ports.
"""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from loadtests.monitor.procfs import parse_netstat, read_bytes, read_sysctl

__all__ = [
    "LISTEN_COUNTERS",
    "TCP_STATES",
    "TcpCounts",
    "count_tcp",
    "listening_inodes",
    "local_port_range",
    "read_listen_counters",
    "tcp_counts_from_tables",
]

TCP_STATES: dict[bytes, str] = {
    b"01": "ESTABLISHED", b"02": "SYN_SENT", b"03": "SYN_RECV", b"04": "FIN_WAIT1",
    b"05": "FIN_WAIT2", b"06": "TIME_WAIT", b"07": "CLOSE", b"08": "CLOSE_WAIT",
    b"09": "LAST_ACK", b"0A": "LISTEN", b"0B": "CLOSING", b"0C": "NEW_SYN_RECV",
}
TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
# TcpExt counters worth diffing: accept queue full (ListenOverflows), SYNs dropped for any
# reason at a listener (ListenDrops), TIME_WAIT sockets not kept (tcp_max_tw_buckets reached).
LISTEN_COUNTERS = ("ListenOverflows", "ListenDrops", "TCPTimeWaitOverflow")

@dataclass
class TcpCounts:
    """Socket states per port of interest: `local` = the port is the socket's own (server side),
    `remote` = the socket talks to that port (client side). `listen_queue` is the current accept
    queue of the listeners on each port. Ephemeral = client sockets toward the ports whose local
    port lies in ip_local_port_range; `ephemeral_max_per_destination` is the largest count toward
    one (address, port), which is what the range bounds."""

    local: dict[int, Counter[str]] = field(default_factory=dict)
    remote: dict[int, Counter[str]] = field(default_factory=dict)
    listen_queue: dict[int, int] = field(default_factory=dict)
    states: Counter[str] = field(default_factory=Counter)
    ephemeral_in_use: int = 0
    ephemeral_max_per_destination: int = 0

    def as_dict(self) -> dict[str, Any]:
        def total(per_port: dict[int, Counter[str]]) -> dict[str, int]:
            return dict(sum(per_port.values(), Counter()))

        return {
            "states": dict(self.states),
            "local": total(self.local),
            "remote": total(self.remote),
            "ports": {str(p): {"local": dict(self.local.get(p, {})),
                               "remote": dict(self.remote.get(p, {})),
                               "listen_queue": self.listen_queue.get(p)}
                      for p in sorted(set(self.local) | set(self.remote))},
        }


def tcp_counts_from_tables(tables: Iterable[bytes], ports: Iterable[int] = (),
                           ephemeral: tuple[int, int] | None = None) -> TcpCounts:
    """Count sockets in /proc/net/tcp-format tables (pure; see `count_tcp` for the I/O)."""
    wanted = {f"{p:04X}".encode(): p for p in ports}
    lo, hi = ephemeral or (1, 0)
    out = TcpCounts(local={p: Counter() for p in wanted.values()},
                    remote={p: Counter() for p in wanted.values()})
    state_counts: Counter[bytes] = Counter()
    per_destination: Counter[bytes] = Counter()
    for table in tables:
        # "sl: local_addr:port rem_addr:port st tx_queue:rx_queue ..." (split beats a regex 2x)
        for row in table.split(b"\n")[1:]:
            parts = row.split(None, 5)
            if len(parts) < 5:
                continue
            local, remote, st = parts[1], parts[2], parts[3]
            state_counts[st] += 1
            lport, rport = local[-4:], remote[-4:]
            if lport in wanted:
                port = wanted[lport]
                out.local[port][TCP_STATES.get(st, st.decode())] += 1
                if st == b"0A":
                    rxq = int(parts[4][parts[4].index(b":") + 1 :], 16)
                    out.listen_queue[port] = out.listen_queue.get(port, 0) + rxq
            if rport in wanted and st != b"0A":
                out.remote[wanted[rport]][TCP_STATES.get(st, st.decode())] += 1
                if lo <= int(lport, 16) <= hi:
                    out.ephemeral_in_use += 1
                    per_destination[remote] += 1
    out.states = Counter({TCP_STATES.get(k, k.decode()): v for k, v in state_counts.items()})
    out.ephemeral_max_per_destination = max(per_destination.values(), default=0)
    return out


def _tables() -> list[bytes]:
    out = []
    for path in TABLES:
        with contextlib.suppress(OSError):
            out.append(read_bytes(path))
    return out


def local_port_range() -> tuple[int, int] | None:
    """net.ipv4.ip_local_port_range as (low, high)."""
    text = read_sysctl("net.ipv4.ip_local_port_range")
    if not text:
        return None
    lo, hi = (int(x) for x in text.split())
    return lo, hi


def count_tcp(ports: Iterable[int] = (), ephemeral: tuple[int, int] | None = None) -> TcpCounts:
    """Read this host's TCP tables and count (see `tcp_counts_from_tables`)."""
    return tcp_counts_from_tables(_tables(), ports, ephemeral)


def listening_inodes(port: int) -> set[int]:
    """Inodes of the sockets listening on `port` (any local address, IPv4 or IPv6)."""
    row = re.compile(rb"^ *\d+: [0-9A-F]+:%s [0-9A-F]+:0000 0A (?:\S+\s+){5}(\d+)"
                     % f"{port:04X}".encode(), re.M)
    return {int(m.group(1)) for t in _tables() for m in row.finditer(t)} - {0}


def read_listen_counters() -> dict[str, int]:
    """Cumulative TcpExt counters (LISTEN_COUNTERS) since boot; consumers diff them."""
    try:
        ext = parse_netstat(read_bytes("/proc/net/netstat").decode()).get("TcpExt", {})
    except OSError:
        return {}
    return {k: ext[k] for k in LISTEN_COUNTERS if k in ext}
