"""Fuzzing the embedded servers' command parsing: whatever a client sends, the IMAP syntax
functions (imap_proto) give a result or ImapSyntaxError, and a whole POP3 or IMAP session fed
from an in-memory `asyncio.StreamReader` answers with the protocol's normal errors (`-ERR`,
`BAD`), never the catch-all for bugs ("internal server error") and never hangs."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from aio import run_coro
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadtests.clients.pop3 import dot_unstuff
from loadtests.embedded import imap_proto
from loadtests.embedded.imap import ImapServer
from loadtests.embedded.imap_proto import ImapSyntaxError
from loadtests.embedded.mailstore import MailStore, Message, password_for
from loadtests.embedded.pop3 import Pop3Server, dot_stuff, top_of

FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
HANG = 5.0  # seconds for one fed session: they take milliseconds

MESSAGE = Message(7, (b"Date: Thu, 3 Dec 2026 09:00:00 +0000\r\nFrom: A <a@example.test>\r\n"
                      b"To: b@example.test\r\nSubject: hello\r\nMessage-ID: <1@x>\r\n\r\n"
                      b"line one\r\n.line two\r\n"))

_TOKENS = st.sampled_from([
    b" ", b"(", b")", b"[", b"]", b"<", b">", b'"', b"\\", b"{", b"}", b"{3}\r\n", b"{3+}\r\n",
    b"{" + b"9" * 5000 + b"}\r\n", b"*", b":", b",", b"1", b"1:*", b"0", b"-1", b"\xc2\xb2",
    b"\xd9\xa3", b"9" * 30, b"\xff", b"\x00", b"\r\n", b"UID", b"FETCH", b"SEARCH", b"STORE",
    b"BODY[]", b"BODY.PEEK[HEADER.FIELDS (FROM \xff)]", b"BODY[TEXT]<0.5>", b"RFC822.SIZE",
    b"FLAGS", b"+FLAGS", b"(\\Seen)", b"ALL", b"NOT", b"OR", b"HEADER", b"SUBJECT", b"SINCE",
    b"1-Jan-2020", b"32-Foo-2020", b"LARGER", b"CHARSET", b"UTF-8", b"ENVELOPE", b"INBOX",
    b"BODY[HEADER.FIELDS.NOT (TO)]<" + b"9" * 5000 + b">", b"FAST", b"RFC822",
])
IMAP_ARGS = st.lists(_TOKENS | st.binary(max_size=6), max_size=20).map(b"".join)
IMAP_LINE = st.tuples(st.sampled_from([b"a1", b"*", b"", b"a(", b"\xff"]),
                      st.sampled_from([b"FETCH", b"UID FETCH", b"SEARCH", b"UID SEARCH",
                                       b"STORE", b"UID STORE", b"NOOP", b"", b"\xff"]),
                      IMAP_ARGS).map(lambda t: b" ".join(t) + b"\r\n")


# -- imap_proto, without I/O --------------------------------------------------------------------

@FUZZ
@given(line=IMAP_LINE | st.binary(max_size=60))
def test_imap_command_parsing(line: bytes) -> None:
    """parse_command, then what the FETCH, SEARCH and STORE handlers do with its arguments:
    a result or ImapSyntaxError (answered BAD), and a FETCH answer renders to bytes."""
    literal = imap_proto.literal_size(line.rstrip(b"\r\n"))
    assert literal is None or literal[0] >= 0
    try:
        tag, name, args = imap_proto.parse_command(line)
    except ImapSyntaxError:
        return
    assert isinstance(tag, str) and isinstance(name, str) and isinstance(args, list)
    if name == "UID" and args and isinstance(args[0], str):
        name, args = args[0].upper(), args[1:]
    for attempt in (_fetch, _search, _seqset):
        with contextlib.suppress(ImapSyntaxError):
            attempt(args)


def _fetch(args: list[Any]) -> None:
    items = imap_proto.parse_fetch_items(args[-1] if args else "")
    for with_uid in (False, True):
        answer = imap_proto.render_fetch(3, MESSAGE, items, with_uid=with_uid)
        assert answer.startswith(b"* 3 FETCH (") and answer.endswith(b")\r\n")


def _search(args: list[Any]) -> None:
    match = imap_proto.compile_search(args, 5, lambda seq: seq + 6, 11)
    assert isinstance(match(1, MESSAGE), bool)


def _seqset(args: list[Any]) -> None:
    spec = args[0] if args and isinstance(args[0], str) else ""
    assert isinstance(imap_proto.parse_seqset(spec, 5)(3), bool)


@pytest.mark.parametrize("line", [
    b"a1 FETCH 1 {" + b"9" * 5000 + b"}\r\nx\r\n",             # a literal int() cannot read
    b"a1 FETCH 1 BODY[]<" + b"9" * 5000 + b">\r\n",              # a partial int() cannot read
    b"a1 FETCH 1 BODY[HEADER.FIELDS (FROM \xff)]\r\n",          # a field name not UTF-8
    b"a1 SEARCH " + b"NOT " * 2000 + b"ALL\r\n",                # nesting deeper than recursion
    b"a1 SEARCH " + b"(" * 2000 + b"ALL" + b")" * 2000 + b"\r\n",
    b"a1 SEARCH LARGER " + b"9" * 5000 + b"\r\n",
])
def test_imap_command_known_cases(line: bytes) -> None:
    """Commands the fuzzer (and a reading of the parser) found: each is a result or BAD."""
    test_imap_command_parsing.hypothesis.inner_test(line)  # type: ignore[attr-defined]


@pytest.mark.parametrize("line", [b"a1 FETCH 1 {" + b"9" * 5000 + b"}",
                                  b"x {" + b"9" * 5000 + b"+}"])
def test_literal_size_of_an_endless_number(line: bytes) -> None:
    """Not a literal this server takes (the command then gets BAD), not a ValueError."""
    assert imap_proto.literal_size(line) is None


# -- POP3 framing --------------------------------------------------------------------------------

@FUZZ
@given(data=st.binary(max_size=200), lines=st.integers(-3, 10))
def test_pop3_dot_stuff_and_top(data: bytes, lines: int) -> None:
    body = dot_stuff(data)
    assert body.endswith(b".\r\n")
    assert b"\r\n.\r\n" not in body[:-3] and not body[:-3].startswith(b".\r\n")  # no early end
    expected = data if not data or data.endswith(b"\r\n") else data + b"\r\n"
    assert dot_unstuff(body[:-3]) == expected
    assert len(top_of(data, lines)) <= len(data) + 2  # a last line gets its CRLF


# -- whole sessions over in-memory streams -------------------------------------------------------

class _Writer:
    """What the embedded servers use of a StreamWriter; all they write is kept."""

    def __init__(self) -> None:
        self.sent = bytearray()
        self.transport = self

    def write(self, data: bytes) -> None:
        self.sent += data

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        return None

    def close(self) -> None:
        return None

    def abort(self) -> None:
        return None

    async def wait_closed(self) -> None:
        return None


async def _session(server: Any, client: bytes, limit: int = 1 << 16) -> bytes:
    reader = asyncio.StreamReader(limit=limit)
    reader.feed_data(client)
    reader.feed_eof()
    writer = _Writer()
    async with asyncio.timeout(HANG):
        await server.handle(reader, writer)
    return bytes(writer.sent)


_POP3_LINES = st.lists(
    st.tuples(st.sampled_from(["USER", "PASS", "APOP", "AUTH", "STAT", "LIST", "UIDL", "RETR",
                               "TOP", "DELE", "RSET", "NOOP", "CAPA", "STLS", "user", "X", ""]),
              st.lists(st.sampled_from(["1", "2", "0", "-1", "\u00b2", "\u0663", "9" * 30,
                                        "PLAIN", "user0001", "AHVzZXIwMDAxAG1haWxzd2FybS10ZXN0",
                                        "=", "\ufffd", "\x00", " "]) | st.text(max_size=5),
                       max_size=3).map(" ".join)).map(lambda t: f"{t[0]} {t[1]}".encode()),
    max_size=12)
POP3_LOGIN = f"USER user0001\r\nPASS {password_for('user0001')}\r\n".encode()


@FUZZ
@given(lines=_POP3_LINES, login=st.booleans(), tail=st.binary(max_size=20))
def test_pop3_server_session(lines: list[bytes], login: bool, tail: bytes) -> None:
    """A POP3 client sending any commands (logged in or not) gets +OK/-ERR answers."""
    client = (POP3_LOGIN if login else b"") + b"".join(x + b"\r\n" for x in lines) + tail
    store = MailStore(users=3, messages_per_user=2, message_size=300)
    answer = run_coro(_session(Pop3Server(store), client))
    assert b"internal server error" not in answer, answer[-200:]


@pytest.mark.parametrize("command", [b"RETR \xc2\xb2", b"TOP 1 \xc2\xb2", b"DELE \xd9\xa3\xc2\xb2",
                                     b"LIST " + b"9" * 900])
def test_pop3_server_known_cases(command: bytes) -> None:
    """Message numbers the fuzzer found: digits that are not ASCII ("²".isdigit() is true)."""
    store = MailStore(users=3, messages_per_user=2, message_size=300)
    answer = run_coro(_session(Pop3Server(store), POP3_LOGIN + command + b"\r\nQUIT\r\n"))
    assert b"internal server error" not in answer
    assert answer.rstrip().endswith(b"+OK bye") or b"-ERR" in answer.splitlines()[-2]


IMAP_LOGIN = f"a0 LOGIN user0001 {password_for('user0001')}\r\na0 SELECT INBOX\r\n".encode()


@FUZZ
@given(lines=st.lists(IMAP_LINE, max_size=6), login=st.booleans())
def test_imap_server_session(lines: list[bytes], login: bool) -> None:
    """An IMAP client sending any commands gets tagged OK/NO/BAD answers, never the BYE of a
    bug."""
    client = (IMAP_LOGIN if login else b"") + b"".join(lines)
    store = MailStore(users=3, messages_per_user=3, message_size=300)
    server = ImapServer(store, autologout=HANG / 2)
    answer = run_coro(_session(server, client))
    assert b"Internal server error" not in answer, answer[-300:]


@pytest.mark.parametrize("command", [
    b"a1 LOGIN {5009}\r\nuser" + b"9" * 5000 + b"@example.test pw\r\n",
    b"a1 SEARCH " + b"NOT " * 2000 + b"ALL\r\n",
    b"a1 FETCH 1 BODY[HEADER.FIELDS (FROM \xff)]\r\n",
    b"a1 STORE 1 +FLAGS (\xff)\r\na2 FETCH 1 FLAGS\r\n",
])
def test_imap_server_known_cases(command: bytes) -> None:
    store = MailStore(users=3, messages_per_user=3, message_size=300)
    answer = run_coro(_session(ImapServer(store, autologout=HANG / 2),
                                  IMAP_LOGIN + command))
    assert b"Internal server error" not in answer, answer[-300:]
