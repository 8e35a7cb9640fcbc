"""TCP sockets through netlink sock_diag (NETLINK_SOCK_DIAG), without psutil or pyroute2.

A dump returns every TCP socket of this network namespace as a fixed binary record (`struct
inet_diag_msg`, 72 bytes, plus a few attributes): the kernel does not format text (~0.5 µs a
socket instead of ~3), and `net.tcp_counts_from_diag` walks the records reading only the bytes
it needs (family, state, ports, destination address, accept queue) at the offsets given here.
It sees the same sockets as /proc/net/tcp and tcp6: IPv4 records are tcp, IPv6 ones tcp6
(v4-mapped peers included), TIME_WAIT minisockets carry their substate and request sockets
report SYN_RECV, as in /proc.

`dump_tcp` asks once for both families with the older TCPDIAG_GETSOCK request (`struct
inet_diag_req`, family AF_UNSPEC in the kernel): one walk of the kernel's socket hash, whose
262,144 buckets cost ~2 ms to walk even when empty. Where the kernel refuses it, it sends one
SOCK_DIAG_BY_FAMILY request (`struct inet_diag_req_v2`) per family. It raises OSError when
netlink or inet_diag is not available (no CONFIG_INET_DIAG, seccomp); callers fall back to the
/proc tables.

`dump_tcp(ports)` sends only the sockets whose local or remote port is one of `ports`: the
request carries an inet_diag filter (`port_filter`, the bytecode `ss sport = :N or dport = :N`
compiles to) that the kernel runs on each socket before it formats one. A socket that does not
match costs the kernel a few nanoseconds instead of ~0.7 µs to format and copy plus ~0.4 µs of
Python to skip: a host with 100,000 unrelated sockets (other services, TIME_WAIT of earlier
runs) no longer weighs on every sample. A kernel that refuses the filter (EINVAL) gets the
unfiltered request from then on, and the caller skips the other sockets itself.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterable

__all__ = [
    "AT_DST",
    "AT_FAMILY",
    "AT_RQUEUE",
    "AT_SPORT",
    "AT_STATE",
    "HEAD",
    "HEADER",
    "MIN_LEN",
    "NETLINK_SOCK_DIAG",
    "NLMSG_DONE",
    "NLMSG_ERROR",
    "RECORD_TYPES",
    "RQUEUE",
    "SOCK_DIAG_BY_FAMILY",
    "TCPDIAG_GETSOCK",
    "dump_tcp",
    "port_filter",
    "request",
]

NETLINK_SOCK_DIAG = 4
TCPDIAG_GETSOCK = 18  # the older request: inet_diag_req, both families in one dump
SOCK_DIAG_BY_FAMILY = 20  # inet_diag_req_v2, one family a dump
RECORD_TYPES = (TCPDIAG_GETSOCK, SOCK_DIAG_BY_FAMILY)  # replies carry the request's type
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLMSG_ERROR = 2
NLMSG_DONE = 3
ALL_STATES = 0xFFFFFFFF  # idiag_states bitmap: 1 << TCP_state for every state

INET_DIAG_REQ_BYTECODE = 1  # the request attribute holding a filter
# inet_diag_bc_op codes: an unconditional jump (it always takes `no`), port >= / <= comparisons
# on the local (S) and remote (D) port; a comparison's port is in a follow-on op's `no`
_BC_JMP, _BC_S_GE, _BC_S_LE, _BC_D_GE, _BC_D_LE = 1, 2, 3, 4, 5
_BC_OP = struct.Struct("=BBH")  # code, yes, no: byte offsets to jump by when true / false
_RANGE_LEN = 4 * _BC_OP.size  # GE op + its port, LE op + its port
MAX_FILTER_RANGES = 256  # runs of consecutive ports, per side; more: no filter (kernel cost)

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
# inet_diag_req_v2: family, protocol, ext, pad, states, then inet_diag_sockid (48 bytes, zero)
_REQ_V2 = struct.Struct("=BBBBI48x")
# inet_diag_req: family, src_len, dst_len, ext, inet_diag_sockid (zero), states, dbs
_REQ_V1 = struct.Struct("=BBBB48xII")
HEADER = struct.Struct("=IH")  # the nlmsghdr's length and type
HEAD = _NLMSGHDR.size  # 16: each message's inet_diag_msg starts here
# offsets into a message (nlmsghdr included) of the inet_diag_msg fields callers read
AT_FAMILY = HEAD  # idiag_family (u8)
AT_STATE = HEAD + 1  # idiag_state (u8)
AT_SPORT = HEAD + 4  # id.idiag_sport (be16), then id.idiag_dport (be16)
AT_DST = HEAD + 24  # id.idiag_dst[4] (16 bytes; an IPv4 address uses the first 4)
RQUEUE = struct.Struct("=I")  # idiag_rqueue: a listener's accept queue, unread bytes else
AT_RQUEUE = HEAD + 56
MIN_LEN = HEAD + 72  # nlmsghdr + inet_diag_msg; attributes may follow


def request(family: int | None, states: int = ALL_STATES, bytecode: bytes = b"") -> bytes:
    """A dump request for TCP sockets in `states`: of `family` (SOCK_DIAG_BY_FAMILY), or of
    both families at once when `family` is None (TCPDIAG_GETSOCK); with `bytecode` (see
    `port_filter`), only the sockets it accepts."""
    if family is None:
        kind, body = TCPDIAG_GETSOCK, _REQ_V1.pack(socket.AF_INET, 0, 0, 0, states, 0)
    else:
        kind, body = SOCK_DIAG_BY_FAMILY, _REQ_V2.pack(family, socket.IPPROTO_TCP, 0, 0, states)
    if bytecode:
        body += struct.pack("=HH", 4 + len(bytecode), INET_DIAG_REQ_BYTECODE) + bytecode
    return _NLMSGHDR.pack(HEAD + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body


def port_ranges(ports: Iterable[int]) -> list[tuple[int, int]]:
    """`ports` as sorted runs of consecutive ports: [(low, high), ...]."""
    runs: list[tuple[int, int]] = []
    for port in sorted(set(ports)):
        if runs and runs[-1][1] == port - 1:
            runs[-1] = (runs[-1][0], port)
        else:
            runs.append((port, port))
    return runs


def port_filter(ports: Iterable[int]) -> bytes:
    """inet_diag bytecode accepting a socket whose local or remote port is in `ports` (b"" for
    no port, or too many runs of them: no filter).

    The kernel runs it from the start; each op jumps forward by `yes` or `no` bytes, and the
    socket is accepted if the program ends exactly at its end, rejected if it jumps past it.
    One alternative per (side, run of ports): `port >= low` then `port <= high`, then a jump to
    the end (accept); a failed comparison jumps over that jump to the next alternative, past
    the end after the last one (reject). The kernel's audit follows the `yes` chain, so every
    `no` target is an alternative's first op, as it requires."""
    runs = port_ranges(ports)
    if not runs or len(runs) > MAX_FILTER_RANGES:
        return b""
    alternatives = [(ge, le, low, high) for ge, le in ((_BC_S_GE, _BC_S_LE), (_BC_D_GE, _BC_D_LE))
                    for low, high in runs]
    total = len(alternatives) * (_RANGE_LEN + _BC_OP.size) - _BC_OP.size
    out = bytearray()
    for ge, le, low, high in alternatives:
        out += _BC_OP.pack(ge, 8, _RANGE_LEN + _BC_OP.size) + _BC_OP.pack(0, 0, low)
        out += _BC_OP.pack(le, 8, 8 + _BC_OP.size) + _BC_OP.pack(0, 0, high)
        if len(out) < total:  # not the last: accept by jumping to the end
            out += _BC_OP.pack(_BC_JMP, _BC_OP.size, total - len(out))
    return bytes(out)


_ERRNO = struct.Struct("=i")
_DONE_LEN = HEAD + _ERRNO.size  # NLMSG_DONE: a header and an errno (no extended ack asked)


def _dump(family: int | None, bytecode: bytes = b"") -> list[bytes]:
    """The raw reply datagrams of one dump (the NLMSG_DONE one included). Raises OSError."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    try:  # a socket of its own per dump: replies cannot mix, one sequence number will do
        sock.sendto(request(family, bytecode=bytecode), (0, 0))
        chunks = []
        while True:
            chunk = sock.recv(65536)
            chunks.append(chunk)
            if len(chunk) < HEAD:
                raise OSError("sock_diag: short netlink message")
            if HEADER.unpack_from(chunk, 0)[1] == NLMSG_ERROR:  # the request failed: alone
                err = -_ERRNO.unpack_from(chunk, HEAD)[0]
                if err:
                    raise OSError(err, f"sock_diag: {os.strerror(err)}")
                return chunks
            if _ends_with_done(chunk):
                err = -_ERRNO.unpack_from(chunk, len(chunk) - _ERRNO.size)[0]
                if err:  # the dump failed part way
                    raise OSError(err, f"sock_diag: {os.strerror(err)}")
                return chunks
    finally:
        sock.close()


def _ends_with_done(chunk: bytes) -> bool:
    """Whether the datagram's last message is NLMSG_DONE (always last when present). The tail
    is checked first; the headers are walked only to confirm a match."""
    tail = len(chunk) - _DONE_LEN
    if tail < 0 or HEADER.unpack_from(chunk, tail) != (_DONE_LEN, NLMSG_DONE):
        return False
    off = 0
    while off < tail:
        length = HEADER.unpack_from(chunk, off)[0]
        if length < HEAD:
            raise OSError("sock_diag: malformed netlink message")
        off += (length + 3) & ~3
    return off == tail


_one_walk = True  # cleared once the kernel refuses TCPDIAG_GETSOCK
_filters = True  # cleared once the kernel refuses a filter


def dump_tcp(ports: Iterable[int] | None = None) -> list[bytes]:
    """Raw sock_diag reply datagrams covering every TCP socket of both families (each record
    names its family), or, given `ports`, those whose local or remote port is one of them (or
    more, where the kernel takes no filter: callers still check the ports). A family the kernel
    lacks (no IPv6) is skipped; raises OSError if netlink itself fails."""
    global _filters
    bytecode = port_filter(ports) if ports is not None and _filters else b""
    if bytecode:
        try:
            return _dump_families(bytecode)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            _filters = False
    return _dump_families(b"")


def _dump_families(bytecode: bytes) -> list[bytes]:
    global _one_walk
    if _one_walk:
        try:
            return _dump(None, bytecode)
        except OSError as exc:
            if exc.errno == errno.EINVAL and bytecode:  # the filter, not the request kind
                raise
            _one_walk = False
    chunks = _dump(socket.AF_INET, bytecode)
    try:
        chunks += _dump(socket.AF_INET6, bytecode)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EAFNOSUPPORT):  # not IPv6 off: a failure
            raise
    return chunks
