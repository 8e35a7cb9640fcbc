"""Fuzzing the protocol clients' reply parsers: whatever a server sends, each parser gives a
result or its client's own error type (Pop3Error, aiosmtplib's SMTPException, a DNS parse
error; imap_replies' parsers leave out what they cannot read), never another exception and
never a hang. Parsers reachable only through I/O are fed from an in-memory
`asyncio.StreamReader` or straight into their protocol object."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import aiosmtplib
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdatatype
import dns.rrset
import pytest
from aio import run_coro
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadtests.clients import imap_replies, pop3
from loadtests.clients.dns import DnsLookupError, _Memo, _parse, _Query, _UdpSocket
from loadtests.clients.pop3 import Pop3Client, Pop3Error
from loadtests.clients.smtp import _Protocol as SmtpProtocol
from loadtests.embedded.pop3 import dot_stuff

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HANG = 2.0  # seconds: a parser fed everything and an EOF has long finished by then

# bytes made mostly of the pieces replies are built from, so the parsers get past their first
# check; plus raw bytes for the rest
_PIECES = st.sampled_from([
    b"\r\n", b"\n", b"\r", b".", b"..", b".\r\n", b"\r\n.\r\n", b" ", b"+OK", b"-ERR", b"+OK ",
    b"1", b"0", b"42", b"\xc2\xb2", b"\xd9\xa3", b"9" * 5000, b"-", b"250", b"250-", b"354 ",
    b"(", b")", b"[", b"]", b"{5}", b"* ", b"FETCH", b"EXISTS", b"UID", b"FLAGS (", b"\\Seen",
    b"RFC822.SIZE", b"STATUS", b"SEARCH", b"\xff", b"\x00", b"<a@b>", b"[AUTH]", b"\t",
])
WIRE = st.lists(_PIECES | st.binary(max_size=12), max_size=40).map(b"".join)
LINES = st.lists(WIRE | WIRE.map(bytearray), max_size=8)


# -- POP3 ---------------------------------------------------------------------------------------

@FUZZ
@given(line=WIRE)
def test_pop3_status_line(line: bytes) -> None:
    with contextlib.suppress(Pop3Error):
        assert isinstance(pop3.parse_status_line(line), str)


@FUZZ
@given(block=WIRE, text=WIRE.map(lambda b: b.decode("utf-8", "replace")))
def test_pop3_listings(block: bytes, text: str) -> None:
    capabilities = pop3.parse_capa(block)
    assert all(isinstance(v, list) for v in capabilities.values())
    assert isinstance(pop3.dot_unstuff(block), bytes)
    for parse in (pop3.parse_scan_listing, pop3._int_listing):
        try:
            n, _ = parse(text)
        except Pop3Error:
            continue
        assert n >= 0
    stamp = pop3.greeting_timestamp(text)
    assert stamp is None or (stamp.startswith("<") and stamp.endswith(">"))


class _Writer:
    """What Pop3Client needs of a StreamWriter; the commands it writes are kept."""

    def __init__(self) -> None:
        self.sent = bytearray()

    def write(self, data: bytes) -> None:
        self.sent += data

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        return None


async def _pop3_over(server: bytes, calls: Sequence[str], limit: int) -> list[Any]:
    """Run `calls` on a Pop3Client whose server sent `server` (then EOF); what each returned."""
    reader = asyncio.StreamReader(limit=limit)
    reader.feed_data(server)
    reader.feed_eof()
    client = Pop3Client("127.0.0.1", read_timeout=HANG, max_response=1 << 16)
    client._reader, client._writer = reader, _Writer()  # type: ignore[assignment]
    out: list[Any] = []
    for name in calls:
        if not client.connected:
            break
        method = getattr(client, name)
        try:
            async with asyncio.timeout(HANG * 2):
                out.append(await (method(1) if name in ("retr", "list_one", "uidl_one")
                                  else method()))
        except Pop3Error as exc:
            out.append(exc)
    return out


@FUZZ
@given(server=WIRE, calls=st.lists(st.sampled_from(
    ["stat", "list", "uidl", "retr", "capa", "noop", "list_one", "uidl_one"]), min_size=1,
    max_size=4), limit=st.sampled_from([16, 64, pop3.LINE_LIMIT]))
def test_pop3_client_reads_anything(server: bytes, calls: list[str], limit: int) -> None:
    """A POP3 'server' sending arbitrary bytes gets results or Pop3Errors, in bounded time."""
    run_coro(_pop3_over(server, calls, limit))


@FUZZ
@given(message=st.lists(st.sampled_from([b"\r\n", b".", b"..", b".\r\n", b"a", b"\n", b"\r",
                                         b"x" * 40]) | st.binary(max_size=8),
                        max_size=30).map(b"".join),
       limit=st.sampled_from([8, 64, pop3.LINE_LIMIT]))
def test_pop3_retr_dot_stuffing_round_trip(message: bytes, limit: int) -> None:
    """What the embedded server dot-stuffs, the client's RETR reads back unchanged (CRLF-ended),
    even when the reader's buffer is smaller than the message's lines."""
    sent = b"+OK\r\n" + dot_stuff(message)
    (got,) = run_coro(_pop3_over(sent, ["retr"], limit))
    expected = message if not message or message.endswith(b"\r\n") else message + b"\r\n"
    assert got == expected


# -- IMAP ---------------------------------------------------------------------------------------

@FUZZ
@given(lines=LINES)
def test_imap_reply_parsers(lines: list[bytes | bytearray]) -> None:
    """Every parser of imap_replies takes any lines aioimaplib may hand back (and never
    raises: what it cannot read it leaves out)."""
    imap_replies.parse_mailbox(lines)
    assert all(m.seq >= 0 for m in imap_replies.parse_fetch(lines))
    assert all(n >= 0 for n in imap_replies.parse_search(lines))
    assert all(v >= 0 for v in imap_replies.parse_status(lines).values())
    assert all(n >= 0 for n in imap_replies.parse_expunge(lines))
    assert all(isinstance(x, bytes) for x in imap_replies.pushes_in(lines))
    for line in lines:
        assert isinstance(imap_replies.is_keepalive(line), bool)


@pytest.mark.parametrize("text", ["\u00b2 1", "1 \u00b2", "\u0663 1", "9" * 5000 + " 1"])
def test_pop3_listing_known_cases(text: str) -> None:
    """Listings the fuzzer found: digits that are not ASCII ("²".isdigit() is true), numbers
    longer than int() takes."""
    with pytest.raises(Pop3Error):
        pop3._int_listing(text)


@pytest.mark.parametrize("parse, lines", [
    (imap_replies.parse_mailbox, [b"FLAGS (\\Seen \xff)", b"OK done"]),
    (imap_replies.parse_fetch, [b"1 FETCH (FLAGS (\xff))", b"OK done"]),
    (imap_replies.parse_status, [b'STATUS INBOX (MESSAGES x)', b"OK done"]),
    (imap_replies.parse_status, [b'STATUS INBOX (MESSAGES \xff)', b"OK done"]),
    (imap_replies.parse_mailbox, [b"9" * 5000 + b" EXISTS", b"OK done"]),
    (imap_replies.parse_fetch, [b"1 FETCH (UID " + b"9" * 5000 + b")", b"OK done"]),
    (imap_replies.parse_search, [b"SEARCH 1 " + b"9" * 5000, b"OK done"]),
])
def test_imap_reply_parsers_known_cases(parse: Any, lines: list[bytes]) -> None:
    """Replies the fuzzer found: non-UTF-8 flags, non-numeric STATUS values, numbers longer
    than int() takes."""
    parse(lines)


# -- SMTP (aiosmtplib's reply parser, driven as loadtests/clients/smtp.py drives it) ------------

class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def is_closing(self) -> bool:
        return self.closed

    def write(self, data: Any) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


async def _smtp_replies(chunks: Sequence[bytes]) -> list[Any]:
    """Feed `chunks` to the SMTP client's protocol, reading replies as the client does (one
    read per command), then close; what each read gave."""
    protocol = SmtpProtocol(asyncio.get_running_loop())
    protocol.connection_made(_Transport())
    out: list[Any] = []
    reading = asyncio.ensure_future(protocol.read_response())
    for chunk in chunks:
        await asyncio.sleep(0)
        protocol.data_received(chunk)
        await asyncio.sleep(0)
        if reading.done():
            out.append(reading.exception() or reading.result())
            if isinstance(out[-1], aiosmtplib.SMTPServerDisconnected):
                return out
            reading = asyncio.ensure_future(protocol.read_response())
    protocol.connection_lost(None)
    async with asyncio.timeout(HANG):
        try:
            out.append(await reading)
        except aiosmtplib.SMTPException as exc:
            out.append(exc)
    return out


@FUZZ
@given(chunks=st.lists(WIRE, min_size=1, max_size=6))
def test_smtp_replies_from_anything(chunks: list[bytes]) -> None:
    for reply in run_coro(_smtp_replies(chunks)):
        assert isinstance(reply, aiosmtplib.SMTPResponse | aiosmtplib.SMTPException), reply


@FUZZ
@given(code=st.integers(200, 599),
       lines=st.lists(st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
                      min_size=1, max_size=6),
       cut=st.integers(1, 50))
def test_smtp_multiline_reply(code: int, lines: list[str], cut: int) -> None:
    """A well-formed multi-line reply, however it is split into packets, is one reply: its code
    and its lines joined."""
    wire = b"".join(f"{code}{'-' if i < len(lines) - 1 else ' '}{text}\r\n".encode()
                    for i, text in enumerate(lines))
    chunks = [wire[i:i + cut] for i in range(0, len(wire), cut)]
    first = run_coro(_smtp_replies(chunks))[0]
    assert isinstance(first, aiosmtplib.SMTPResponse)
    assert first.code == code
    shown = [text.strip() for text in lines if text.strip()]
    assert [text for text in first.message.split("\n") if text] == shown


# -- DNS ----------------------------------------------------------------------------------------

def _answer(qname: str, rdtype: str, records: Sequence[str]) -> bytes:
    query = dns.message.make_query(qname, rdtype)
    response = dns.message.make_response(query)
    if records:
        response.answer.append(dns.rrset.from_text(qname, 300, "IN", rdtype, *records))
    return response.to_wire()


VALID = [
    _answer("example.test.", "MX", ["10 mail.example.test.", "0 ."]),
    _answer("mail.example.test.", "A", ["127.0.0.1", "127.0.0.2"]),
    _answer("mail.example.test.", "AAAA", ["::1"]),
    _answer("example.test.", "MX", []),
]


@st.composite
def _mutated_answer(draw: st.DrawFn) -> bytes:
    wire = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert"]))
        at = draw(st.integers(0, len(wire)))
        if kind == "flip" and at < len(wire):
            wire[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del wire[at:at + draw(st.integers(1, 8))]
        else:
            wire[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(wire)


DNS_WIRE = _mutated_answer() | st.binary(max_size=80)


@FUZZ
@given(wire=DNS_WIRE)
def test_dns_answer_parse(wire: bytes) -> None:
    """The TCP path turns DNSException and ValueError into DnsProtocolError: nothing else."""
    try:
        answer = _parse(wire)
    except (dns.exception.DNSException, ValueError):
        return
    assert isinstance(answer.values, tuple)
    assert all(isinstance(v, str) for v in answer.values)


@FUZZ
@given(wire=DNS_WIRE)
def test_dns_datagram_handling(wire: bytes) -> None:
    """A datagram carrying any bytes with a waiting query's id: the query ends with an answer
    or a DnsLookupError, or keeps waiting (another question); the protocol never raises."""
    async def deliver() -> None:
        loop = asyncio.get_running_loop()
        protocol = _UdpSocket(_Memo())
        future: asyncio.Future[Any] = loop.create_future()
        qid = int.from_bytes(wire[:2].ljust(2, b"\0"), "big")
        protocol.pending[qid] = _Query(protocol, qid, b"", ("example.test.", 15), future, 0.0)
        protocol.datagram_received(wire, ("127.0.0.1", 53))
        if future.done() and future.exception() is not None:
            assert isinstance(future.exception(), DnsLookupError)
    run_coro(deliver())


def test_dns_parse_keeps_valid_answers() -> None:
    """The mutation seeds parse: MX without the null MX, both addresses."""
    assert _parse(VALID[0]).values == ("mail.example.test",)
    assert sorted(_parse(VALID[1]).values) == ["127.0.0.1", "127.0.0.2"]
    assert dns.flags.QR & dns.message.from_wire(VALID[3]).flags
    assert dns.name.from_text("example.test.") is not None
    assert dns.rdatatype.MX == 15
