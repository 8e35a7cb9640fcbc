"""The embedded target answers malformed input the way its protocols do, never with its
catch-all for bugs: an IMAP line too long gets `* BAD [TOOBIG]` and a close, a DNS datagram that
is a response (QR set) or not DNS at all is dropped (and the server goes on answering)."""

from __future__ import annotations

import socket

import dns.flags
import dns.message
import dns.query

from loadtests.embedded.dns import DnsZone


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_an_imap_line_of_1_mb_is_answered_too_big_and_closed(embedded) -> None:
    with socket.create_connection(("127.0.0.1", embedded.ready["imap_port"]), timeout=5) as sock:
        assert sock.recv(4096).startswith(b"* OK")
        sock.sendall(b"a1 LOGIN " + b"x" * (1 << 20) + b"\r\n")
        reply = _read_all(sock)  # ends: the server closed the connection
    assert reply.startswith(b"* BAD [TOOBIG]"), reply[:200]
    assert b"Internal server error" not in reply


def test_a_huge_imap_literal_is_refused_too(embedded) -> None:
    with socket.create_connection(("127.0.0.1", embedded.ready["imap_port"]), timeout=5) as sock:
        sock.recv(4096)
        sock.sendall(b"a1 LOGIN {99999999}\r\n")
        assert _read_all(sock).startswith(b"* BAD [TOOBIG]")


def test_a_dns_response_is_not_answered() -> None:
    zone = DnsZone("example.test")
    query = dns.message.make_query("example.test", "MX")
    response = dns.message.make_response(query)
    assert response.flags & dns.flags.QR
    assert zone.answer(response.to_wire()) is None
    assert zone.answer(b"") is None and zone.answer(b"\x12\x34\x81\x80") is None
    assert zone.answer(query.to_wire()) is not None


def test_the_dns_server_drops_a_response_and_goes_on(embedded) -> None:
    port = embedded.ready["dns_port"]
    query = dns.message.make_query("example.test", "MX")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        sock.sendto(dns.message.make_response(query).to_wire(), ("127.0.0.1", port))
        try:
            unexpected = sock.recv(4096)
        except TimeoutError:
            unexpected = b""
    assert unexpected == b""
    answer = dns.query.udp(query, "127.0.0.1", port=port, timeout=3)
    assert [r.to_text() for r in answer.answer[0]] == ["10 mail.example.test."]
