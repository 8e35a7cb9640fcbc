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
"""

from __future__ import annotations

import errno
import os
import socket
import struct

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


def request(family: int | None, states: int = ALL_STATES) -> bytes:
    """A dump request for TCP sockets in `states`: of `family` (SOCK_DIAG_BY_FAMILY), or of
    both families at once when `family` is None (TCPDIAG_GETSOCK)."""
    if family is None:
        kind, body = TCPDIAG_GETSOCK, _REQ_V1.pack(socket.AF_INET, 0, 0, 0, states, 0)
    else:
        kind, body = SOCK_DIAG_BY_FAMILY, _REQ_V2.pack(family, socket.IPPROTO_TCP, 0, 0, states)
    return _NLMSGHDR.pack(HEAD + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body


_ERRNO = struct.Struct("=i")
_DONE_LEN = HEAD + _ERRNO.size  # NLMSG_DONE: a header and an errno (no extended ack asked)


def _dump(family: int | None) -> list[bytes]:
    """The raw reply datagrams of one dump (the NLMSG_DONE one included). Raises OSError."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    try:  # a socket of its own per dump: replies cannot mix, one sequence number will do
        sock.sendto(request(family), (0, 0))
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


def dump_tcp() -> list[bytes]:
    """Raw sock_diag reply datagrams covering every TCP socket of both families (each record
    names its family). A family the kernel lacks (no IPv6) is skipped; raises OSError if
    netlink itself fails."""
    global _one_walk
    if _one_walk:
        try:
            return _dump(None)
        except OSError:
            _one_walk = False
    chunks = _dump(socket.AF_INET)
    try:
        chunks += _dump(socket.AF_INET6)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.EAFNOSUPPORT):  # not IPv6 off: a failure
            raise
    return chunks
