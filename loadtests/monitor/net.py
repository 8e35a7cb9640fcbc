"""TCP sockets by state, filtered by port, and listen-queue counters.

`count_tcp` asks the kernel through netlink sock_diag (`loadtests.monitor.sockdiag`): binary
records, no text formatting, ~1 µs a socket in all. By default the kernel sends only the
sockets on the ports of interest (an inet_diag filter), so sockets of other services or left in
TIME_WAIT by earlier runs cost next to nothing; `host_states=True` asks for every socket, to
count the whole host's sockets by state (the monitor agent's `tcp_sockets`). Where netlink is
not available it falls back to /proc/net/tcp and tcp6: one split pass over the tables (~15 ms
of Python for 20,000 sockets, plus what the kernel takes to print them, ~3 µs a socket). Only
sockets touching a port of interest are decoded further. Also the generator's ephemeral ports
in use toward those ports.
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from loadtests.monitor import sockdiag as sd
from loadtests.monitor.procfs import parse_netstat, read_bytes, read_sysctl

__all__ = [
    "LISTEN_COUNTERS",
    "TCP_STATES",
    "TcpCounts",
    "count_tcp",
    "listening_inodes",
    "local_port_range",
    "read_listen_counters",
    "tcp_counts_from_diag",
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
_STATE_NAMES: dict[int, str] = {int(k, 16): v for k, v in TCP_STATES.items()}
_LISTEN = 10

@dataclass
class TcpCounts:
    """Socket states per port of interest: `local` = the port is the socket's own (server side),
    `remote` = the socket talks to that port (client side). `listen_queue` is the current accept
    queue of the listeners on each port. `states` counts by state every socket of the host, or
    with `host_states=False` only those touching a port of interest. Ephemeral = client sockets
    toward the ports whose local port lies in ip_local_port_range;
    `ephemeral_max_per_destination` is the largest count toward one (address, port), which is
    what the range bounds."""

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
                           ephemeral: tuple[int, int] | None = None, *,
                           host_states: bool = True) -> TcpCounts:
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
            lport, rport = local[-4:], remote[-4:]
            if host_states or lport in wanted or rport in wanted:
                state_counts[st] += 1
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


def tcp_counts_from_diag(chunks: Iterable[bytes], ports: Iterable[int] = (),
                         ephemeral: tuple[int, int] | None = None, *,
                         host_states: bool = True) -> TcpCounts:
    """Count sock_diag reply datagrams (`sockdiag.dump_tcp`) the way `tcp_counts_from_tables`
    counts /proc rows: same states, sides, accept queues and ephemeral ports. One Python step
    per socket (~0.35 µs): the state byte and both ports; the rest only for sockets on a port
    of interest."""
    wanted = set(ports)
    lo, hi = ephemeral or (1, 0)
    out = TcpCounts(local={p: Counter() for p in wanted}, remote={p: Counter() for p in wanted})
    state_counts = [0] * 256
    per_destination: Counter[tuple[int, bytes, int]] = Counter()
    header, rqueue = sd.HEADER.unpack_from, sd.RQUEUE.unpack_from
    at_state, at_sport, at_dst = sd.AT_STATE, sd.AT_SPORT, sd.AT_DST
    records, done, error, min_len = sd.RECORD_TYPES, sd.NLMSG_DONE, sd.NLMSG_ERROR, sd.MIN_LEN
    for chunk in chunks:
        off, end = 0, len(chunk)
        while off + sd.HEAD <= end:
            length, kind = header(chunk, off)
            if kind in records and length >= min_len:
                st = chunk[off + at_state]
                lport = chunk[off + at_sport] << 8 | chunk[off + at_sport + 1]
                rport = chunk[off + at_sport + 2] << 8 | chunk[off + at_sport + 3]
                if host_states or lport in wanted or rport in wanted:
                    state_counts[st] += 1
                if lport in wanted:
                    out.local[lport][_state_name(st)] += 1
                    if st == _LISTEN:
                        queued = rqueue(chunk, off + sd.AT_RQUEUE)[0]
                        out.listen_queue[lport] = out.listen_queue.get(lport, 0) + queued
                if rport in wanted and st != _LISTEN:
                    out.remote[rport][_state_name(st)] += 1
                    if lo <= lport <= hi:
                        out.ephemeral_in_use += 1
                        family = chunk[off + sd.AT_FAMILY]
                        size = 4 if family == socket.AF_INET else 16
                        dst = chunk[off + at_dst : off + at_dst + size]
                        per_destination[family, dst, rport] += 1
            elif kind in (done, error) or length < sd.HEAD:
                break
            off += (length + 3) & ~3
    out.states = Counter({_state_name(st): n for st, n in enumerate(state_counts) if n})
    out.ephemeral_max_per_destination = max(per_destination.values(), default=0)
    return out


def _state_name(st: int) -> str:
    return _STATE_NAMES.get(st) or f"{st:02X}"


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


_netlink_ok = True  # cleared for good once netlink fails: then /proc only


def count_tcp(ports: Iterable[int] = (), ephemeral: tuple[int, int] | None = None, *,
              source: str = "auto", host_states: bool = False) -> TcpCounts:
    """Count the TCP sockets on `ports` (and, with `host_states`, every socket of the host by
    state): `source` "netlink" (sock_diag), "proc" (/proc/net/tcp and tcp6) or "auto" (netlink
    while it works, else /proc)."""
    global _netlink_ok
    ports = sorted(set(ports))
    if not ports and not host_states:
        return TcpCounts()
    if source == "netlink" or (source == "auto" and _netlink_ok):
        try:
            dumps = sd.dump_tcp(None if host_states else ports)
        except OSError:
            if source == "netlink":
                raise
            _netlink_ok = False
        else:
            return tcp_counts_from_diag(dumps, ports, ephemeral, host_states=host_states)
    return tcp_counts_from_tables(_tables(), ports, ephemeral, host_states=host_states)


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
