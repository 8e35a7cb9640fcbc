"""The embedded DNS server: MX for the test domain -> mail.<domain> -> 127.0.0.1 (and ::1; the
A answer is `mail_address`, to test a client's loopback rule), NXDOMAIN for other names in the
domain, REFUSED outside it; over UDP and TCP (RFC 1035 4.2.2: each message after its 2-byte
length). A datagram that is not a query (not DNS, or a response: QR set) is dropped, as servers
do — answering responses would let two servers loop. Faults (`dns_fault`): see `_FaultyZone`,
`truncated` (UDP answers with TC set, for a client to ask again over TCP), `_tcp_client` (what
the TCP side then does wrong) and `serve_dns` (TCP refused, or nothing listening at all)."""

from __future__ import annotations

import asyncio
import random
import struct

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from loadtests.embedded.config import EmbeddedSettings
from loadtests.embedded.faults import reset, until_client_leaves
from loadtests.embedded.stats import TargetStats

__all__ = ["DnsZone", "serve_dns", "truncated"]


class DnsZone:
    """The answers, as a pure function of the query bytes."""

    def __init__(self, domain: str, ttl: int = 300, mail_address: str = "127.0.0.1") -> None:
        self.origin = dns.name.from_text(domain)
        self.mail = dns.name.from_text(f"mail.{domain}")
        self.ttl = ttl
        self.mail_address = mail_address

    def answer(self, wire: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
            response = dns.message.make_response(query)  # FormError for a response (QR set)
        except (dns.exception.DNSException, ValueError, EOFError):
            return None  # not a DNS query: drop it, as servers do
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        name, rdtype = question.name, question.rdtype
        records: list[str] = []
        if name == self.origin and rdtype == dns.rdatatype.MX:
            records = [f"10 {self.mail}"]
        elif name == self.mail and rdtype == dns.rdatatype.A:
            records = [self.mail_address]
        elif name == self.mail and rdtype == dns.rdatatype.AAAA:
            records = ["::1"]
        elif not name.is_subdomain(self.origin):
            response.flags &= ~dns.flags.AA
            response.set_rcode(dns.rcode.REFUSED)
        elif name not in (self.origin, self.mail):
            response.set_rcode(dns.rcode.NXDOMAIN)
        if records:
            response.answer.append(
                dns.rrset.from_text_list(name, self.ttl, dns.rdataclass.IN, rdtype, records)
            )
        return response.to_wire()


class _FaultyZone(DnsZone):
    """`dns_fault`: "drop" answers nothing (a server that never answers; over TCP the
    connection closes), "garbage" answers with the query's id followed by bytes that are not
    a DNS message; either on `ratio` of the queries, the others answered as they should be."""

    def __init__(self, fault: str, domain: str, mail_address: str, ratio: float = 1.0) -> None:
        super().__init__(domain, mail_address=mail_address)
        self.fault, self.ratio = fault, ratio
        self._rng = random.Random()

    def answer(self, wire: bytes) -> bytes | None:
        if self._rng.random() >= self.ratio:
            return super().answer(wire)
        if self.fault == "drop":
            return None
        # the query's id, so the client takes it for the answer, then bytes that are not DNS
        return wire[:2] + b"\xff\xfe garbage, not a DNS answer \x00\x01"


def truncated(reply: bytes) -> bytes:
    """`reply` as a server sends it when it does not fit a datagram: TC set, no records (RFC
    2181 9: a client then asks again over TCP and uses none of this answer)."""
    msg = dns.message.from_wire(reply)
    msg.answer.clear()
    msg.authority.clear()
    msg.additional.clear()
    msg.flags |= dns.flags.TC
    return msg.to_wire()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, zone: DnsZone, stats: TargetStats, delay: float,
                 truncate: bool = False) -> None:
        self.zone, self.stats, self.delay, self.truncate = zone, stats, delay, truncate
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.stats.dns_queries += 1
        reply = self.zone.answer(data)
        if reply is None or self.transport is None:
            return
        if self.truncate:
            reply = truncated(reply)
        if self.delay > 0:
            asyncio.get_running_loop().call_later(self.delay, self.transport.sendto, reply, addr)
        else:
            self.transport.sendto(reply, addr)


async def _tcp_client(zone: DnsZone, stats: TargetStats, delay: float, fault: str,
                      reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer the queries of one TCP connection. `fault` (`dns_fault`): "truncate-tcp-reset"
    resets the connection at once, "truncate-tcp-stall" reads the query and never answers,
    "truncate-tcp-cut" closes the connection halfway through the answer."""
    try:
        if fault == "truncate-tcp-reset":
            reset(writer.transport)
            return
        while True:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            data = await reader.readexactly(length)
            stats.dns_queries += 1
            if fault == "truncate-tcp-stall":
                await until_client_leaves(reader)
                break
            reply = zone.answer(data)
            if reply is None:
                break
            if delay > 0:
                await asyncio.sleep(delay)
            message = struct.pack("!H", len(reply)) + reply
            if fault == "truncate-tcp-cut":
                writer.write(message[:len(message) // 2])
                await writer.drain()
                writer.transport.abort()
                break
            writer.write(message)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve_dns(settings: EmbeddedSettings, stats: TargetStats,
                    ) -> tuple[int, asyncio.DatagramTransport, asyncio.Server]:
    """Start UDP and TCP on the same port; returns (port, udp transport, tcp server).
    `dns_fault` "truncate-no-tcp" closes the TCP server once bound, "closed" both (the port
    stays reported: a client finds nothing listening there)."""
    loop = asyncio.get_running_loop()
    fault = settings.dns_fault
    zone = (_FaultyZone(fault, settings.domain, str(settings.mail_address),
                        settings.fault_ratio)
            if fault in ("drop", "garbage") else
            DnsZone(settings.domain, mail_address=str(settings.mail_address)))
    truncate = fault.startswith("truncate")
    delay = settings.dns_delay
    port = settings.dns_port
    # bind UDP first (port 0 -> any), then TCP on the same number; retry if TCP's is taken
    for _ in range(20):
        udp, _proto = await loop.create_datagram_endpoint(
            lambda: _Udp(zone, stats, delay, truncate), local_addr=(settings.host, port)
        )
        bound = udp.get_extra_info("sockname")[1]
        try:
            tcp = await asyncio.start_server(
                lambda r, w: _tcp_client(zone, stats, delay, fault, r, w), settings.host, bound
            )
        except OSError:
            udp.close()
            if port:
                raise
            continue
        if fault in ("truncate-no-tcp", "closed"):
            tcp.close()
        if fault == "closed":
            udp.close()
        return bound, udp, tcp
    raise OSError("no port free for DNS on both UDP and TCP")
