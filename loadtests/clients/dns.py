"""MX resolution as a mail server does it, on dnspython's message layer over long-lived sockets.

`MxResolver.resolve_mail_host(domain, recorder)` asks MX, takes the most preferred exchange and
asks its A (and AAAA when enabled) record, timing each query as a DNS step (`MX`, `A`, `AAAA`).

Built for load: a small pool of connected UDP sockets (asyncio datagram endpoints on the running
loop, opened at first use) carries every query; each socket multiplexes its queries on random
16-bit ids (a dict id -> waiting query), and an answer is taken only when both its id and its
question match. A truncated answer (TC bit) is asked again over TCP. A query that gets no answer
is sent again every `retry` seconds until `timeout`, then fails as a timeout.

Queries are built by `dns.message.make_query` once per (name, type) and reused with a fresh id;
answers are parsed by `dns.message.from_wire` once per distinct answer (the bytes after the id),
since a server answers the same question with the same bytes until a TTL changes: the parse is
~50 µs, the rest of a query ~20 µs. Concurrent queries are capped like a mail server's
"Concurrent Requests" setting; caching of answers (for their TTL) is off unless asked for.

Errors derive from `ClientError` (`code`: the DNS rcode name or errno name, `text`):

    DnsLookupError
    ├── DnsRcodeError       the server answered NXDOMAIN, SERVFAIL, REFUSED...
    ├── DnsNoAnswer         NOERROR but no record of the type asked (or only a null MX)
    ├── DnsProtocolError    an answer that is not DNS, or that does not answer the question
    ├── DnsTransportError   (also ConnectionError) ICMP unreachable, TCP refused or cut short
    └── DnsTimeout          (also TimeoutError) no answer within the timeout
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import random
import socket
import struct
import time
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from loadtests.clients.errors import ClientError
from loadtests.clients.steps import StepRecorder

__all__ = [
    "DnsLookupError",
    "DnsNoAnswer",
    "DnsProtocolError",
    "DnsRcodeError",
    "DnsTimeout",
    "DnsTransportError",
    "MxResolver",
]

_MX, _A, _AAAA, _CNAME = (dns.rdatatype.MX, dns.rdatatype.A, dns.rdatatype.AAAA,
                          dns.rdatatype.CNAME)
_RCVBUF = 1 << 20  # room for a burst of answers between two loop passes (capped by the kernel)
_MEMO_SIZE = 4096  # distinct answers kept parsed; cleared when full


class DnsLookupError(ClientError):
    """Base of every error raised by this client."""


class DnsRcodeError(DnsLookupError):
    """The server answered with an error rcode (`code`: NXDOMAIN, SERVFAIL, REFUSED...)."""


class DnsNoAnswer(DnsLookupError):
    """The name exists but has no record of the type asked (`code` NOERROR)."""


class DnsProtocolError(DnsLookupError):
    """The answer could not be parsed, or was not an answer to the question."""


class DnsTransportError(DnsLookupError, ConnectionError):
    """A socket error (`code`: its errno name): port unreachable, TCP refused or cut short."""


class DnsTimeout(DnsLookupError, TimeoutError):
    """No answer within the timeout."""


_RCODE_TEXT = {"NXDOMAIN": "{name} does not exist (NXDOMAIN)",
               "SERVFAIL": "the server failed on {name} {type} (SERVFAIL)",
               "REFUSED": "the server refused {name} {type} (REFUSED)"}


@dataclass(frozen=True, slots=True)
class _Answer:
    """What one answer says, parsed once: its question, flags and the values asked for."""

    question: tuple[str, int]  # (lower-case name, type): what answers are matched on
    truncated: bool
    rcode: int
    values: tuple[str, ...]  # MX: exchanges, most preferred first; A/AAAA: addresses
    ttl: int


def _parse(wire: bytes) -> _Answer:
    """Parse an answer with dnspython (raises dns.exception.DNSException on garbage)."""
    msg = dns.message.from_wire(wire, ignore_trailing=True)
    if not msg.flags & dns.flags.QR or len(msg.question) != 1:
        raise dns.exception.FormError("not an answer to one question")
    question = msg.question[0]
    name, rdtype = question.name, question.rdtype
    truncated = bool(msg.flags & dns.flags.TC)
    rrsets = {(r.name, r.rdtype): r for r in msg.answer if r.rdclass == dns.rdataclass.IN}
    for _ in range(8):  # follow CNAMEs inside the answer, as resolvers do
        cname = rrsets.get((name, _CNAME))
        if cname is None or rdtype == _CNAME:
            break
        name = cname[0].target
    rrset = rrsets.get((name, rdtype))
    values: tuple[str, ...] = ()
    ttl = 0
    if rrset is not None:
        ttl = rrset.ttl
        if rdtype == _MX:
            values = tuple(r.exchange.to_text(omit_final_dot=True)
                           for r in sorted(rrset, key=lambda r: r.preference)
                           if r.exchange != dns.name.root)  # "0 ." is a null MX: no mail
        elif rdtype in (_A, _AAAA):
            values = tuple(r.address for r in rrset)
        else:
            values = tuple(r.to_text() for r in rrset)
    return _Answer(_question(question.name, rdtype), truncated, msg.rcode(), values, ttl)


class _Memo:
    """Parsed answers by their bytes after the id: a repeated answer is not parsed again."""

    def __init__(self, size: int = _MEMO_SIZE) -> None:
        self.size = size
        self._answers: dict[bytes, _Answer] = {}

    def parse(self, wire: bytes) -> _Answer:
        if self.size <= 0:
            return _parse(wire)
        key = wire[2:]
        answer = self._answers.get(key)
        if answer is None:
            answer = _parse(wire)
            if len(self._answers) >= self.size:
                self._answers.clear()
            self._answers[key] = answer
        return answer


class _Query:
    """One query waiting on a UDP socket: its future, question and resend timer."""

    __slots__ = ("deadline", "future", "qid", "question", "sock", "timer", "wire")

    def __init__(self, sock: _UdpSocket, qid: int, wire: bytes,
                 question: tuple[str, int], future: asyncio.Future[_Answer],
                 deadline: float) -> None:
        self.sock, self.qid, self.wire, self.question = sock, qid, wire, question
        self.future, self.deadline = future, deadline
        self.timer: asyncio.TimerHandle | None = None

    def expire(self, retry: float, owner: MxResolver, key: tuple[str, int]) -> None:
        """Timer: send again while time is left, else fail as a timeout."""
        if self.future.done():
            return
        loop = self.future.get_loop()
        left = self.deadline - loop.time()
        if left <= 0.001:
            self.sock.pending.pop(self.qid, None)
            self.future.set_exception(DnsTimeout(owner.timeout_text("", key)))
            return
        if self.sock.transport is not None:
            self.sock.transport.sendto(self.wire)
        self.timer = loop.call_later(min(retry, left), self.expire, retry, owner, key)


class _UdpSocket(asyncio.DatagramProtocol):
    """One connected UDP socket of the pool; its waiting queries by id."""

    def __init__(self, memo: _Memo) -> None:
        self.memo = memo
        self.pending: dict[int, _Query] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12:
            return
        query = self.pending.get((data[0] << 8) | data[1])
        if query is None:
            return  # late (after a timeout) or not ours
        try:
            answer = self.memo.parse(data)
        except Exception as exc:  # whatever the parser makes of garbage
            self._fail(query, DnsProtocolError(f"malformed answer: {exc}"))
            return
        if answer.question != query.question:
            return  # an id we use, but another question: not the answer (RFC 5452)
        del self.pending[query.qid]
        if not query.future.done():
            query.future.set_result(answer)

    def error_received(self, exc: Exception) -> None:
        """An ICMP error on the connected socket (port unreachable...): fails every query
        waiting on it, all to the same server."""
        peer = self.transport.get_extra_info("peername") if self.transport else None
        where = f"UDP to {peer[0]}:{peer[1]}: " if peer else "UDP: "
        err = DnsTransportError(where + str(exc), code=_errno_name(exc))
        for query in list(self.pending.values()):
            self._fail(query, err)

    def connection_lost(self, exc: Exception | None) -> None:
        err = DnsTransportError(f"socket closed{f': {exc}' if exc else ''}",
                                code=_errno_name(exc))
        for query in list(self.pending.values()):
            self._fail(query, err)
        self.transport = None

    def _fail(self, query: _Query, err: DnsLookupError) -> None:
        self.pending.pop(query.qid, None)
        if not query.future.done():
            query.future.set_exception(err)


def _question(name: dns.name.Name, rdtype: int) -> tuple[str, int]:
    """How answers are matched to queries: names compare without case (DNS 0x20 included)."""
    return name.to_text().lower(), rdtype


def _errno_name(exc: BaseException | None) -> str | None:
    number = getattr(exc, "errno", None)
    return errno.errorcode.get(number, str(number)) if number is not None else None


class MxResolver:
    """One per scenario and process; safe to share between concurrent sessions of one loop.

    `sockets` UDP sockets are opened on the running loop at first use (again if the loop
    changes); `retry` is the interval between resends of an unanswered UDP query; `memo` is how
    many distinct answers are kept parsed (0: parse every answer).
    """

    def __init__(self, server: str, port: int, *, max_concurrent: int = 20, cache: bool = False,
                 timeout: float = 5.0, aaaa: bool = False, sockets: int = 4,
                 retry: float = 2.0, memo: int = _MEMO_SIZE) -> None:
        self.server, self.port = server, port
        self._timeout = timeout
        self._retry = retry
        self._aaaa = aaaa
        self._max_concurrent = max_concurrent
        self._nsockets = max(1, sockets)
        self._cache: dict[tuple[str, int], tuple[float, tuple[str, ...]]] | None = \
            {} if cache else None
        self._memo = _Memo(memo)
        self._templates: dict[tuple[str, int], tuple[bytes, tuple[str, int]]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._limit: asyncio.Semaphore | None = None
        self._pool: list[_UdpSocket] = []
        self._opening: asyncio.Task[None] | None = None
        self._next = 0

    # -- the public API ----------------------------------------------------------------------
    async def resolve_mail_host(self, domain: str, rec: StepRecorder) -> tuple[str, list[str]]:
        """(exchange name, its addresses) for `domain`; raises on failure (already recorded)."""
        exchanges = await rec.step("MX", self.query(domain, _MX))
        host = exchanges[0]
        addresses = list(await rec.step("A", self.query(host, _A)))
        if self._aaaa:  # a host without IPv6 is normal: an empty AAAA answer is no failure
            addresses += await rec.step("AAAA", self.query(host, _AAAA, allow_empty=True))
        return host, addresses

    async def query(self, name: str, rdtype: int | str, *, allow_empty: bool = False,
                    ) -> tuple[str, ...]:
        """The values of `name`'s `rdtype` records (MX: exchanges by preference; A/AAAA:
        addresses); raises a DnsLookupError when there are none (unless `allow_empty`)."""
        if isinstance(rdtype, str):
            rdtype = dns.rdatatype.from_text(rdtype)
        key = (name, rdtype)
        cache = self._cache
        if cache is not None:
            hit = cache.get(key)
            if hit is not None and hit[0] > time.monotonic():
                return hit[1]
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind(loop)
        limit = self._limit
        assert limit is not None
        async with limit:
            answer = await self._udp(loop, key)
            if answer.truncated:
                answer = await self._tcp(key)
        if answer.rcode != 0:
            rcode = dns.rcode.to_text(answer.rcode)  # type: ignore[arg-type]
            text = _RCODE_TEXT.get(rcode, "{name} {type}: {rcode}")
            raise DnsRcodeError(text.format(name=name, type=_type_text(rdtype), rcode=rcode),
                                code=rcode)
        if not answer.values and not allow_empty:
            raise DnsNoAnswer(f"{name} has no usable {_type_text(rdtype)} record", code="NOERROR")
        if cache is not None and answer.ttl > 0:
            cache[key] = (time.monotonic() + answer.ttl, answer.values)
        return answer.values

    def timeout_text(self, how: str, key: tuple[str, int]) -> str:
        return (f"no {how}answer from {self.server}:{self.port} for {key[0]} "
                f"{_type_text(key[1])} within {self._timeout:g} s")

    def close(self) -> None:
        """Close the sockets (waiting queries fail); the next query opens new ones."""
        for sock in self._pool:
            if sock.transport is not None:
                sock.transport.close()
        self._pool = []
        self._opening = None

    # -- UDP ----------------------------------------------------------------------------------
    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """First use, or a new loop: a fresh cap and pool, created on `loop`."""
        if self._loop is not None and not self._loop.is_closed():
            self.close()
        self._pool, self._opening = [], None
        self._loop = loop
        self._limit = asyncio.Semaphore(self._max_concurrent)

    async def _open_pool(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            family = socket.AF_INET6 if ipaddress.ip_address(self.server).version == 6 \
                else socket.AF_INET
            address: tuple = (self.server, self.port)
        except ValueError:  # a host name: resolve it once
            infos = await loop.getaddrinfo(self.server, self.port, type=socket.SOCK_DGRAM)
            family, address = infos[0][0], infos[0][4]
        pool = []
        for _ in range(self._nsockets):
            sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
                sock.setblocking(False)
                sock.connect(address)  # UDP: no packet; the kernel drops other sources
            except OSError:
                sock.close()
                raise
            _transport, proto = await loop.create_datagram_endpoint(
                lambda: _UdpSocket(self._memo), sock=sock)
            pool.append(proto)
        self._pool = pool

    async def _sockets(self) -> list[_UdpSocket]:
        if not self._pool:
            if self._opening is None:
                self._opening = asyncio.get_running_loop().create_task(self._open_pool())
            opening = self._opening
            try:
                await asyncio.shield(opening)
            except OSError as exc:
                if self._opening is opening:
                    self._opening = None  # the next query tries again
                raise DnsTransportError(f"{self.server}:{self.port}: {exc}",
                                        code=_errno_name(exc)) from exc
        return self._pool

    def _template(self, key: tuple[str, int]) -> tuple[bytes, tuple[str, int]]:
        """The query's wire form without its id, and its question: made once per name/type."""
        template = self._templates.get(key)
        if template is None:
            msg = dns.message.make_query(key[0], dns.rdatatype.RdataType.make(key[1]))
            template = msg.to_wire()[2:], _question(msg.question[0].name, key[1])
            if len(self._templates) >= _MEMO_SIZE:
                self._templates.clear()
            self._templates[key] = template
        return template

    async def _udp(self, loop: asyncio.AbstractEventLoop, key: tuple[str, int]) -> _Answer:
        pool = self._pool or await self._sockets()
        sock = pool[self._next % len(pool)]
        self._next += 1
        transport = sock.transport
        if transport is None:  # closed under us: open a new pool
            self.close()
            sock = (await self._sockets())[0]
            transport = sock.transport
            assert transport is not None
        body, question = self._template(key)
        pending = sock.pending
        qid = random.getrandbits(16)
        while qid in pending:  # ids of one socket never collide
            qid = random.getrandbits(16)
        wire = qid.to_bytes(2, "big") + body
        future: asyncio.Future[_Answer] = loop.create_future()
        query = pending[qid] = _Query(sock, qid, wire, question, future,
                                      loop.time() + self._timeout)
        transport.sendto(wire)
        query.timer = loop.call_later(
            min(self._retry, self._timeout), query.expire, self._retry, self, key)
        try:
            return await future
        finally:
            if query.timer is not None:
                query.timer.cancel()
            if pending.get(qid) is query:
                del pending[qid]

    # -- TCP, for truncated answers -------------------------------------------------------------
    async def _tcp(self, key: tuple[str, int]) -> _Answer:
        body, question = self._template(key)
        qid = random.getrandbits(16)
        wire = qid.to_bytes(2, "big") + body
        where = f"{self.server}:{self.port}"
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(self._timeout):
                reader, writer = await asyncio.open_connection(self.server, self.port)
                writer.write(struct.pack("!H", len(wire)) + wire)
                while True:  # skip answers to other ids (there are none on a fresh connection)
                    (length,) = struct.unpack("!H", await reader.readexactly(2))
                    data = await reader.readexactly(length)
                    if len(data) >= 2 and (data[0] << 8) | data[1] == qid:
                        break
        except TimeoutError:
            raise DnsTimeout(self.timeout_text("TCP ", key)) from None
        except asyncio.IncompleteReadError as exc:
            raise DnsTransportError(f"{where} closed the TCP connection mid-answer") from exc
        except OSError as exc:
            raise DnsTransportError(f"TCP to {where}: {exc}", code=_errno_name(exc)) from exc
        finally:
            if writer is not None:
                writer.close()
        try:
            answer = self._memo.parse(data)
        except (dns.exception.DNSException, ValueError) as exc:
            raise DnsProtocolError(f"malformed TCP answer: {exc}") from exc
        if answer.question != question:
            raise DnsProtocolError(f"the TCP answer is for another question than {key[0]}")
        return answer


def _type_text(rdtype: int) -> str:
    return dns.rdatatype.to_text(rdtype)  # type: ignore[arg-type]
