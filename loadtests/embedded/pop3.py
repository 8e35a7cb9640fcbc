"""The embedded POP3 server (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS) serving the shared
`MailStore`: one coroutine per connection, usable as `asyncio.start_server(server.handle, ...)`.

States as the RFC has them: AUTHORIZATION (USER/PASS or APOP against the store's shared
password; the greeting carries an APOP timestamp), TRANSACTION (STAT, LIST, UIDL, RETR, TOP,
DELE, RSET, NOOP on a snapshot of the mailbox taken at login) and UPDATE (QUIT expunges what
was marked deleted; a dropped connection deletes nothing). Messages go out dot-stuffed.

Knobs: `command_delay` before every reply (a slow server model), `login_failure_delay` before a
failed login's -ERR (real servers' penalty), `ssl_context` to offer STLS, and `fault` (see
`POP3_FAULTS`) to misbehave on purpose. `handle` never raises and always closes the writer.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import os
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from loadtests.clients.pop3 import apop_digest
from loadtests.counts import SessionCounts
from loadtests.embedded.faults import reset, trickle, until_client_leaves
from loadtests.embedded.mailstore import Mailbox, MailStore, Message, password_for

__all__ = ["POP3_CONNECTION_FIELDS", "POP3_FAULTS", "Pop3Counters", "Pop3Server", "dot_stuff",
           "top_of"]

POP3_CONNECTION_FIELDS = {"opened": "connections", "open": "active"}
"""The server's connections as the target's stats file names them."""

POP3_FAULTS: tuple[str, ...] = (
    "none",            # healthy
    "stall",           # accept, never greet
    "reset",           # accept, answer with a TCP reset
    "garbage",         # greet with bytes that are not POP3, close
    "trickle",         # greet one byte every half second
    "reply-err",       # every login fails with -ERR [SYS/TEMP]
    "stall-retr",      # RETR and TOP never answer
    "close-mid-retr",  # close the connection halfway through a RETR/TOP body
    "echo",            # every PASS fails with -ERR echoing the command, password included
)
"""Faults `Pop3Server(fault=...)` can inject, on every connection it serves (the connect-time
ones on `fault_ratio` of them)."""
_CONNECT_FAULTS = ("stall", "reset", "garbage", "trickle")

_MAX_LINE = 1024  # RFC 2449: commands are at most 255 octets; be lenient, not unbounded
_ids = itertools.count(1)


def _is_number(text: str) -> bool:
    """ASCII digits, not too many ("²".isdigit() is true too, and int() takes at most 4300)."""
    return text.isascii() and text.isdigit() and len(text) <= 10


def dot_stuff(data: bytes) -> bytes:
    """Message bytes -> a multi-line response body with its terminator: every line starting
    with "." gets one more, the data ends with CRLF, then ".\\r\\n"."""
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..")
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def top_of(data: bytes, lines: int) -> bytes:
    """TOP: the headers, the blank line after them and the first `lines` lines of the body."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return data
    parts = body.split(b"\r\n") if body else []
    if body.endswith(b"\r\n"):
        parts.pop()  # the empty piece after the last line end
    return head + sep + b"".join(line + b"\r\n" for line in parts[:max(lines, 0)])


@dataclass
class Pop3Counters:
    """What the server did, for the target's stats (safe across connection threads)."""

    connections: SessionCounts = field(default_factory=SessionCounts)
    logins: int = 0
    failed_logins: int = 0
    retrieved: int = 0
    retrieved_bytes: int = 0
    deleted: int = 0
    faults: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def opening(self) -> None:
        with self._lock:
            self.connections.opening()

    def closed(self) -> None:
        with self._lock:
            self.connections.closed()


class _Closed(Exception):
    """The session is over (QUIT, a dropped client, an injected fault)."""


@dataclass
class _Session:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    timestamp: str
    user: str | None = None
    mailbox: Mailbox | None = None
    messages: list[Message] = field(default_factory=list)
    deleted: set[int] = field(default_factory=set)  # message numbers, 1-based
    tls: bool = False

    def message(self, arg: str) -> tuple[int, Message] | str:
        """(number, message) for a message-number argument, else the -ERR text."""
        if not _is_number(arg):
            return "invalid message number"
        n = int(arg)
        if not 1 <= n <= len(self.messages):
            return "no such message"
        if n in self.deleted:
            return "message already deleted"
        return n, self.messages[n - 1]

    def live(self) -> list[tuple[int, Message]]:
        return [(n, m) for n, m in enumerate(self.messages, 1) if n not in self.deleted]


class Pop3Server:
    """Serves POP3 from `store`; one instance serves any number of connections."""

    def __init__(self, store: MailStore, *, hostname: str = "mail.example.test",
                 command_delay: float = 0.0, login_failure_delay: float = 0.0,
                 ssl_context: ssl.SSLContext | None = None, fault: str | None = None,
                 fault_ratio: float = 1.0) -> None:
        if (fault or "none") not in POP3_FAULTS:
            raise ValueError(f"unknown POP3 fault {fault!r}; one of {', '.join(POP3_FAULTS)}")
        self.store = store
        self.hostname = hostname
        self.command_delay = command_delay
        self.login_failure_delay = login_failure_delay
        self.ssl_context = ssl_context
        self.fault = fault or "none"
        self.fault_ratio = fault_ratio  # share of connections a connect-time fault hits
        self.counters = Pop3Counters()
        self._rng = random.Random()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection from greeting to close; never raises."""
        self.counters.opening()
        try:
            await self._serve(reader, writer)
        except (_Closed, OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client went away, or the session ended on purpose
        except Exception:  # a bug here must not take the listener down
            with contextlib.suppress(Exception):
                writer.write(b"-ERR [SYS/TEMP] internal server error\r\n")
        finally:
            self.counters.closed()
            with contextlib.suppress(Exception):
                writer.close()

    # the session

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # a connect-time fault hits `fault_ratio` of the connections; the rest are healthy
        if self.fault != "none" and (self.fault not in _CONNECT_FAULTS
                                     or self._rng.random() < self.fault_ratio):
            self.counters.add(faults=1)
            if await self._fault_at_connect(reader, writer):
                return
        timestamp = f"<{os.getpid()}.{next(_ids)}.{int(time.time())}@{self.hostname}>"
        session = _Session(reader, writer, timestamp,
                           tls=writer.get_extra_info("sslcontext") is not None)
        await self._reply(session, f"+OK mailswarm POP3 server ready {timestamp}")
        while True:
            line = await self._read_command(session)
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if session.mailbox is None:
                handler = _AUTHORIZATION.get(verb)
            else:
                handler = _TRANSACTION.get(verb)
            if handler is None:
                await self._reply(session, f"-ERR unknown command or wrong state: {verb[:20]}")
                continue
            await handler(self, session, arg.strip())

    async def _fault_at_connect(self, reader: asyncio.StreamReader,
                                writer: asyncio.StreamWriter) -> bool:
        """Apply a connection-level fault; True when the connection is done with."""
        if self.fault == "stall":
            await until_client_leaves(reader)
            return True
        if self.fault == "reset":
            reset(writer.transport)
            return True
        if self.fault == "garbage":
            writer.write(b"\x00\xff garbage, not a POP3 greeting \xfe\r\n")
            await writer.drain()
            return True
        if self.fault == "trickle":
            await trickle(reader, writer, f"+OK mailswarm POP3 {self.hostname}\r\n".encode())
            return True
        return False

    async def _read_command(self, session: _Session) -> str:
        try:
            raw = await session.reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            await self._reply(session, "-ERR command line too long")
            raise _Closed from None
        except asyncio.IncompleteReadError:
            raise _Closed from None  # the client closed: no UPDATE state, nothing deleted
        if len(raw) > _MAX_LINE:
            await self._reply(session, "-ERR command line too long")
            raise _Closed
        return raw.rstrip(b"\r\n").decode("utf-8", "replace")

    async def _reply(self, session: _Session, line: str, body: bytes | None = None) -> None:
        if self.command_delay > 0:
            await asyncio.sleep(self.command_delay)
        session.writer.write(line.encode() + b"\r\n")
        if body is not None:
            session.writer.write(body)
        await session.writer.drain()

    # AUTHORIZATION

    def _capabilities(self, session: _Session) -> list[str]:
        caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        if session.mailbox is None:
            caps += ["USER", "SASL PLAIN"]
            if self.ssl_context is not None and not session.tls:
                caps.append("STLS")
        caps.append("IMPLEMENTATION mailswarm")
        return caps

    async def _capa(self, session: _Session, arg: str) -> None:
        body = "".join(f"{c}\r\n" for c in self._capabilities(session)).encode()
        await self._reply(session, "+OK capability list follows", body + b".\r\n")

    async def _user(self, session: _Session, arg: str) -> None:
        if not arg:
            await self._reply(session, "-ERR USER needs a name")
            return
        session.user = arg
        await self._reply(session, "+OK send your password")

    async def _pass(self, session: _Session, arg: str) -> None:
        if session.user is None:
            await self._reply(session, "-ERR USER first")
            return
        user, session.user = session.user, None
        if self.fault == "echo":  # a careless server: the client must not record this as is
            await self._reply(session, f"-ERR you said: PASS {arg}")
            return
        await self._login(session, self.store.authenticate(user, arg))

    async def _auth(self, session: _Session, arg: str) -> None:
        """AUTH PLAIN (RFC 5034), with the initial response or after a `+ `."""
        mechanism, _, initial = arg.partition(" ")
        if mechanism.upper() != "PLAIN":
            await self._reply(session, "-ERR unsupported authentication mechanism")
            return
        if not initial:
            await self._reply(session, "+ ")
            initial = await self._read_command(session)
        try:
            _, login, password = base64.b64decode(initial, validate=True).decode().split("\0")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            await self._reply(session, "-ERR malformed AUTH PLAIN response")
            return
        await self._login(session, self.store.authenticate(login, password))

    async def _apop(self, session: _Session, arg: str) -> None:
        user, _, digest = arg.partition(" ")
        box = None
        expected = apop_digest(session.timestamp, password_for(user))
        if self.store.user_number(user) is not None and digest.strip().lower() == expected:
            box = self.store.get(user)
        await self._login(session, box)

    async def _login(self, session: _Session, box: Mailbox | None) -> None:
        if self.fault == "reply-err":
            await self._reply(session, "-ERR [SYS/TEMP] mailswarm target: injected failure")
            return
        if box is None:
            self.counters.add(failed_logins=1)
            if self.login_failure_delay > 0:
                await asyncio.sleep(self.login_failure_delay)
            await self._reply(session, "-ERR [AUTH] invalid user name or password")
            return
        session.mailbox = box
        session.messages = box.snapshot()
        self.counters.add(logins=1)
        size = sum(m.size for m in session.messages)
        await self._reply(session, f"+OK {len(session.messages)} messages ({size} octets)")

    async def _stls(self, session: _Session, arg: str) -> None:
        if self.ssl_context is None or session.tls:
            await self._reply(session, "-ERR STLS not available")
            return
        await self._reply(session, "+OK begin TLS negotiation")
        await session.writer.start_tls(self.ssl_context)
        session.tls = True

    async def _quit_auth(self, session: _Session, arg: str) -> None:
        await self._reply(session, f"+OK {self.hostname} POP3 server signing off")
        raise _Closed

    # TRANSACTION

    async def _stat(self, session: _Session, arg: str) -> None:
        live = session.live()
        await self._reply(session, f"+OK {len(live)} {sum(m.size for _, m in live)}")

    async def _list(self, session: _Session, arg: str) -> None:
        await self._listing(session, arg, lambda m: str(m.size))

    async def _uidl(self, session: _Session, arg: str) -> None:
        await self._listing(session, arg, lambda m: m.unique_id)

    async def _listing(self, session: _Session, arg: str, value: Callable[[Message], str]) -> None:
        if arg:
            found = session.message(arg)
            if isinstance(found, str):
                await self._reply(session, f"-ERR {found}")
            else:
                await self._reply(session, f"+OK {found[0]} {value(found[1])}")
            return
        live = session.live()
        body = "".join(f"{n} {value(m)}\r\n" for n, m in live).encode() + b".\r\n"
        await self._reply(session, f"+OK {len(live)} messages", body)

    async def _retr(self, session: _Session, arg: str) -> None:
        found = session.message(arg)
        if isinstance(found, str):
            await self._reply(session, f"-ERR {found}")
            return
        await self._send_message(session, found[1], found[1].data)

    async def _top(self, session: _Session, arg: str) -> None:
        which, _, lines = arg.partition(" ")
        found = session.message(which)
        if isinstance(found, str) or not _is_number(lines.strip()):
            await self._reply(session, f"-ERR {found if isinstance(found, str) else 'bad lines'}")
            return
        await self._send_message(session, found[1], top_of(found[1].data, int(lines)))

    async def _send_message(self, session: _Session, message: Message, data: bytes) -> None:
        if self.fault == "stall-retr":
            await until_client_leaves(session.reader)
            raise _Closed
        body = dot_stuff(data)
        if self.fault == "close-mid-retr":
            await self._reply(session, f"+OK {message.size} octets", body[: len(body) // 2])
            session.writer.transport.abort()
            raise _Closed
        await self._reply(session, f"+OK {message.size} octets", body)
        self.counters.add(retrieved=1, retrieved_bytes=len(data))

    async def _dele(self, session: _Session, arg: str) -> None:
        found = session.message(arg)
        if isinstance(found, str):
            await self._reply(session, f"-ERR {found}")
            return
        session.deleted.add(found[0])
        await self._reply(session, f"+OK message {found[0]} deleted")

    async def _rset(self, session: _Session, arg: str) -> None:
        session.deleted.clear()
        await self._reply(session, f"+OK {len(session.messages)} messages")

    async def _noop(self, session: _Session, arg: str) -> None:
        await self._reply(session, "+OK")

    async def _quit(self, session: _Session, arg: str) -> None:
        """UPDATE: expunge the messages marked deleted, then sign off."""
        assert session.mailbox is not None
        uids = {session.messages[n - 1].uid for n in session.deleted}
        if uids:
            session.mailbox.expunge(uids)
            self.counters.add(deleted=len(uids))
        left = len(session.mailbox.snapshot())
        await self._reply(session, f"+OK {self.hostname} POP3 server signing off "
                                   f"({left} messages left)")
        raise _Closed


_AUTHORIZATION = {
    "CAPA": Pop3Server._capa, "USER": Pop3Server._user, "PASS": Pop3Server._pass,
    "APOP": Pop3Server._apop, "AUTH": Pop3Server._auth, "STLS": Pop3Server._stls,
    "QUIT": Pop3Server._quit_auth,
}
_TRANSACTION = {
    "CAPA": Pop3Server._capa, "STAT": Pop3Server._stat, "LIST": Pop3Server._list,
    "UIDL": Pop3Server._uidl, "RETR": Pop3Server._retr, "TOP": Pop3Server._top,
    "DELE": Pop3Server._dele, "RSET": Pop3Server._rset, "NOOP": Pop3Server._noop,
    "QUIT": Pop3Server._quit,
}
