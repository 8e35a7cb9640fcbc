"""The DNS client against the embedded target's DNS server and a scripted in-test server:
answers recorded, failures recorded with a readable cause, timeouts, TCP after truncation (and
the embedded target's truncation and closed-port faults), id multiplexing on the socket pool,
the concurrency cap and the cache."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable, Iterator

import dns.flags
import dns.message
import pytest

from loadtests import bridge
from loadtests.clients.dns import (
    DnsNoAnswer,
    DnsProtocolError,
    DnsRcodeError,
    DnsTimeout,
    DnsTransportError,
    MxResolver,
)
from loadtests.clients.errors import describe
from loadtests.clients.steps import StepRecorder
from loadtests.embedded.dns import DnsZone, truncated

ZONE = DnsZone("example.test")


@pytest.fixture(autouse=True)
def _loop() -> None:
    bridge.start()


def lookup(resolver: MxResolver, domain: str = "example.test",
           ) -> tuple[StepRecorder, tuple[str, list[str]] | BaseException]:
    rec = StepRecorder("DNS")
    try:
        return rec, bridge.run(resolver.resolve_mail_host(domain, rec), timeout=30)
    except Exception as exc:
        return rec, exc


# -- a scripted server on the bridge loop --------------------------------------------------------
class Scripted(asyncio.DatagramProtocol):
    """Answers from DnsZone, shaped by `mode`: "ok", "silent", "truncate" (TC set, no records),
    "drop-first" (ignores the first copy of each id), "wrong-question-first" (an answer with the
    right id for another name, then the right one), "garbage" (the id, then not DNS); `delay`
    seconds before each answer. Keeps what it saw: every (client port, id) and how many
    queries were waiting at once."""

    def __init__(self, mode: str, delay: float) -> None:
        self.mode, self.delay = mode, delay
        self.transport: asyncio.DatagramTransport | None = None
        self.queries = 0
        self.outstanding: set[tuple[int, int]] = set()
        self.collisions = 0
        self.max_outstanding = 0
        self.ports: set[int] = set()
        self.seen: set[tuple[int, int]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        key = (addr[1], struct.unpack("!H", data[:2])[0])
        self.ports.add(addr[1])
        if self.mode == "drop-first" and key not in self.seen:
            self.seen.add(key)
            return
        self.queries += 1
        if self.mode == "silent":
            return
        if key in self.outstanding:
            self.collisions += 1
        self.outstanding.add(key)
        self.max_outstanding = max(self.max_outstanding, len(self.outstanding))
        asyncio.get_running_loop().call_later(self.delay, self._answer, data, addr, key)

    def _answer(self, data: bytes, addr: tuple[str, int], key: tuple[int, int]) -> None:
        self.outstanding.discard(key)
        assert self.transport is not None
        reply = ZONE.answer(data)
        assert reply is not None
        if self.mode == "truncate":
            reply = truncated(reply)
        elif self.mode == "garbage":
            reply = data[:2] + b"\x81\x80" + b"\xff" * 20
        elif self.mode == "wrong-question-first":
            query = dns.message.from_wire(data)
            other = dns.message.make_query("nope.example.test", "A", id=query.id)
            self.transport.sendto(ZONE.answer(other.to_wire()) or b"", addr)
        self.transport.sendto(reply, addr)


@pytest.fixture
def scripted() -> Iterator[Callable[..., tuple[Scripted, int, list[int]]]]:
    """Factory: a scripted UDP server (and a TCP one on the same port, answering in full);
    returns (server, port, TCP query counter)."""
    closers: list[Callable[[], None]] = []

    def start(mode: str = "ok", delay: float = 0.0) -> tuple[Scripted, int, list[int]]:
        tcp_queries = [0]

        async def tcp_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            reply = ZONE.answer(await reader.readexactly(length)) or b""
            tcp_queries[0] += 1
            writer.write(struct.pack("!H", len(reply)) + reply)
            await writer.drain()
            writer.close()

        async def open_both() -> tuple[Scripted, int, asyncio.Server, asyncio.BaseTransport]:
            loop = asyncio.get_running_loop()
            for _ in range(20):
                transport, proto = await loop.create_datagram_endpoint(
                    lambda: Scripted(mode, delay), local_addr=("127.0.0.1", 0))
                port = transport.get_extra_info("sockname")[1]
                try:
                    server = await asyncio.start_server(tcp_client, "127.0.0.1", port)
                except OSError:
                    transport.close()
                    continue
                return proto, port, server, transport
            raise OSError("no port free for UDP and TCP")

        proto, port, server, transport = bridge.run(open_both())
        closers.append(lambda: (transport.close(), server.close()))
        return proto, port, tcp_queries

    yield start
    for close in closers:
        bridge.loop().call_soon_threadsafe(close)


# -- answers and failures from the embedded target ----------------------------------------------
def test_mx_and_a_resolved_and_recorded(embedded):
    resolver = MxResolver("127.0.0.1", embedded.ready["dns_port"])
    rec, result = lookup(resolver)
    assert result == ("mail.example.test", ["127.0.0.1"])
    assert [(s.protocol, s.name, s.error) for s in rec.steps] == [("DNS", "MX", None),
                                                                   ("DNS", "A", None)]
    assert all(s.ms > 0 for s in rec.steps)
    assert bridge.run(resolver.query("example.test", "MX")) == ("mail.example.test",)


def test_aaaa_when_asked(embedded):
    resolver = MxResolver("127.0.0.1", embedded.ready["dns_port"], aaaa=True)
    rec, result = lookup(resolver)
    assert result == ("mail.example.test", ["127.0.0.1", "::1"])
    assert [s.name for s in rec.steps] == ["MX", "A", "AAAA"] and not rec.failed


def test_nxdomain_is_a_failed_step_with_a_readable_cause(embedded):
    resolver = MxResolver("127.0.0.1", embedded.ready["dns_port"])
    rec, result = lookup(resolver, "nope.example.test")
    assert isinstance(result, DnsRcodeError)
    assert [s.name for s in rec.steps] == ["MX"] and rec.steps[0].error is result
    info = describe(result)
    assert (info.kind, info.code) == ("DnsRcodeError", "NXDOMAIN")
    assert str(info) == "DnsRcodeError: nope.example.test does not exist (NXDOMAIN)"


def test_refused_names_the_rcode(embedded):
    resolver = MxResolver("127.0.0.1", embedded.ready["dns_port"])
    _rec, result = lookup(resolver, "example.org")
    assert isinstance(result, DnsRcodeError) and result.code == "REFUSED"
    assert "refused example.org MX" in str(result)


def test_no_answer_is_a_failed_step_with_a_readable_cause(embedded):
    resolver = MxResolver("127.0.0.1", embedded.ready["dns_port"])
    rec, result = lookup(resolver, "mail.example.test")  # exists, has no MX
    assert isinstance(result, DnsNoAnswer)
    assert [s.name for s in rec.steps] == ["MX"] and rec.steps[0].error is result
    assert str(describe(result)) == "DnsNoAnswer: mail.example.test has no usable MX record"


# -- the embedded target's DNS faults -------------------------------------------------------------
def udp_query(port: int, name: str = "example.test", rdtype: str = "MX") -> dns.message.Message:
    """One plain UDP query to the embedded DNS server, its answer parsed."""
    query = dns.message.make_query(name, rdtype)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(3.0)
        s.sendto(query.to_wire(), ("127.0.0.1", port))
        return dns.message.from_wire(s.recv(4096))


def test_embedded_truncation_is_answered_over_tcp(start_target):
    port = start_target(dns_fault="truncate").ready["dns_port"]
    udp = udp_query(port)
    assert udp.flags & dns.flags.TC and not udp.answer  # UDP alone cannot resolve it
    rec, result = lookup(MxResolver("127.0.0.1", port))
    assert result == ("mail.example.test", ["127.0.0.1"]) and not rec.failed


def test_embedded_truncation_with_tcp_refused_is_a_readable_failure(start_target):
    port = start_target(dns_fault="truncate-no-tcp").ready["dns_port"]
    assert udp_query(port).flags & dns.flags.TC  # UDP still answers, truncated
    rec, result = lookup(MxResolver("127.0.0.1", port, timeout=3.0))
    assert isinstance(result, DnsTransportError) and result.code == "ECONNREFUSED"
    assert [s.name for s in rec.steps] == ["MX"] and rec.steps[0].ms < 1000
    assert f"TCP to 127.0.0.1:{port}" in str(result)


def test_embedded_closed_dns_port_is_refused_fast(start_target):
    port = start_target(dns_fault="closed").ready["dns_port"]
    rec, result = lookup(MxResolver("127.0.0.1", port, timeout=3.0))
    assert isinstance(result, DnsTransportError) and result.code == "ECONNREFUSED"
    assert [s.name for s in rec.steps] == ["MX"] and rec.steps[0].ms < 1000
    assert "refused" in str(describe(result)).lower()
    assert f"UDP to 127.0.0.1:{port}" in str(result)  # which server refused


# -- faults from the scripted server -------------------------------------------------------------
def test_a_silent_server_times_out_within_the_timeout(scripted):
    _server, port, _tcp = scripted("silent")
    resolver = MxResolver("127.0.0.1", port, timeout=0.3)
    t0 = time.monotonic()
    rec, result = lookup(resolver)
    assert time.monotonic() - t0 < 1.0
    assert isinstance(result, DnsTimeout) and isinstance(result, TimeoutError)
    assert [s.name for s in rec.steps] == ["MX"]
    assert 250 < rec.steps[0].ms < 800
    assert "no answer from 127.0.0.1" in str(result) and "within 0.3 s" in str(result)


def test_an_unanswered_query_is_sent_again(scripted):
    _server, port, _tcp = scripted("drop-first")
    resolver = MxResolver("127.0.0.1", port, timeout=2.0, retry=0.1)
    rec, result = lookup(resolver)
    assert result == ("mail.example.test", ["127.0.0.1"]) and not rec.failed
    assert rec.steps[0].ms >= 90  # waited for the resend


def test_a_closed_port_fails_fast(scripted):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    resolver = MxResolver("127.0.0.1", port, timeout=3.0)
    rec, result = lookup(resolver)
    assert isinstance(result, DnsTransportError) and result.code == "ECONNREFUSED"
    assert rec.steps[0].ms < 1000


def test_a_truncated_answer_is_asked_again_over_tcp(scripted):
    server, port, tcp_queries = scripted("truncate")
    resolver = MxResolver("127.0.0.1", port)
    rec, result = lookup(resolver)
    assert result == ("mail.example.test", ["127.0.0.1"]) and not rec.failed
    assert server.queries == 2 and tcp_queries[0] == 2  # MX and A: both truncated, both on TCP


def test_an_answer_to_another_question_is_not_taken(scripted):
    _server, port, _tcp = scripted("wrong-question-first")
    resolver = MxResolver("127.0.0.1", port)
    rec, result = lookup(resolver)
    assert result == ("mail.example.test", ["127.0.0.1"]) and not rec.failed


def test_garbage_with_our_id_is_a_protocol_error(scripted):
    _server, port, _tcp = scripted("garbage")
    resolver = MxResolver("127.0.0.1", port, timeout=3.0)
    rec, result = lookup(resolver)
    assert isinstance(result, DnsProtocolError) and "malformed answer" in str(result)
    assert [s.name for s in rec.steps] == ["MX"] and rec.steps[0].ms < 1000


# -- the pool, the cap, the cache ----------------------------------------------------------------
def test_concurrent_lookups_share_the_pool_and_ids_never_collide(scripted):
    # every answer waits: all queries in flight at once (200: within the server's default
    # receive buffer, ~270 datagrams)
    server, port, _tcp = scripted("ok", delay=0.2)
    resolver = MxResolver("127.0.0.1", port, max_concurrent=1000, sockets=2)

    async def many() -> list:
        return await asyncio.gather(*(resolver.resolve_mail_host("example.test",
                                                                 StepRecorder("DNS"))
                                      for _ in range(200)), return_exceptions=True)

    results = bridge.run(many(), timeout=30)
    assert all(r == ("mail.example.test", ["127.0.0.1"]) for r in results)
    assert server.queries == 400  # none lost, none sent again
    assert server.max_outstanding == 200  # the MX queries of all lookups at once
    assert server.collisions == 0  # no (socket, id) pair reused while waiting
    assert len(server.ports) == 2  # the pool, not a socket per query


def test_concurrency_cap_is_respected(scripted):
    server, port, _tcp = scripted("ok", delay=0.05)
    resolver = MxResolver("127.0.0.1", port, max_concurrent=3)

    async def many() -> None:
        await asyncio.gather(*(resolver.resolve_mail_host("example.test", StepRecorder("DNS"))
                               for _ in range(12)))

    bridge.run(many(), timeout=30)
    assert server.queries == 24 and server.max_outstanding == 3


@pytest.mark.parametrize(("cache", "queries"), [(False, 6), (True, 2)])
def test_cache_on_and_off(scripted, cache, queries):
    server, port, _tcp = scripted("ok")
    resolver = MxResolver("127.0.0.1", port, cache=cache)
    for _ in range(3):
        rec, result = lookup(resolver)
        assert result == ("mail.example.test", ["127.0.0.1"])
        assert [s.name for s in rec.steps] == ["MX", "A"]  # recorded either way
    assert server.queries == queries
