"""A POP3 client on asyncio streams (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH
PLAIN), timed per command, over plain TCP, STLS or implicit TLS (a `TlsConfig`).

There is no maintained asyncio POP3 library, so this is a small one in the style of aiosmtplib:

- pure functions for the wire format (`parse_status_line`, `dot_unstuff`, `parse_capa`,
  `parse_scan_listing`, `apop_digest`, `greeting_timestamp`), tested without sockets;
- `Pop3Client`, one connection, one async method per command, returning parsed values;
- `check_mail`, the session a mail client runs when it checks for mail, each command recorded
  as a step on a `StepRecorder`; the first failure ends it and nothing is raised to the caller.

Errors form one tree under `Pop3Error` (a `ClientError`: `.code` is `-ERR` for a reply error,
else None; `.text` what the server or the socket said): `Pop3ReplyError` carries the server's
`-ERR` text (and its RFC 2449 response code, e.g. `AUTH`); `Pop3ConnectError` (a
ConnectionError) and `Pop3ConnectTimeout` cover reaching the server and its greeting;
`Pop3ReadTimeout` (a TimeoutError) a server that stops answering; `Pop3ProtocolError` a reply
that is not POP3, and its `Pop3ServerDisconnected` (also a ConnectionError) a close in the
middle of a reply.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import errno
import hashlib
import os
import re
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from loadtests.clients import source
from loadtests.clients.errors import ClientError, TlsError, tls_error
from loadtests.clients.steps import StepRecorder
from loadtests.clients.tls import TlsConfig, TlsOptions, tls_info

__all__ = [
    "CheckResult",
    "Pop3Client",
    "Pop3ConnectError",
    "Pop3ConnectTimeout",
    "Pop3Error",
    "Pop3ProtocolError",
    "Pop3ReadTimeout",
    "Pop3ReplyError",
    "Pop3ServerDisconnected",
    "Pop3Timeout",
    "apop_digest",
    "auth_plain",
    "check_mail",
    "dot_unstuff",
    "greeting_timestamp",
    "parse_capa",
    "parse_scan_listing",
    "parse_status_line",
    "unverified_context",
]

LINE_LIMIT = 64 * 1024
"""Longest reply line accepted (RFC 1939 allows 512 octets; be generous with real servers)."""

_TERMINATOR = b".\r\n"
_TIMESTAMP = re.compile(rb"<[^<>\s]+>")
_RESP_CODE = re.compile(r"\[([^\]]+)\]")


# --- errors ---------------------------------------------------------------------------------

class Pop3Error(ClientError):
    """Base of every error this client raises: `.code` (`-ERR` for a reply, else None) and
    `.text`."""


class Pop3ReplyError(Pop3Error):
    """The server answered `-ERR`; `message` is its text, `resp_code` its RFC 2449 code."""

    def __init__(self, code: str, message: str, command: str = "") -> None:
        super().__init__(message, code=code)
        self.message = message
        self.command = command
        match = _RESP_CODE.match(message)
        self.resp_code: str | None = match[1].upper() if match else None

    def __str__(self) -> str:
        return f"{self.code} {self.message}".rstrip()

    def __reduce__(self) -> tuple[type[Pop3ReplyError], tuple[str, str, str]]:
        return type(self), (str(self.code), self.message, self.command)  # pickles whole


class Pop3ConnectError(Pop3Error, ConnectionError):
    """The server could not be reached (refused, unreachable) or would not greet."""


class Pop3Timeout(Pop3Error, TimeoutError):
    """Base of the two timeouts."""


class Pop3ConnectTimeout(Pop3Timeout, Pop3ConnectError):
    """No connection and greeting within `connect_timeout`."""


class Pop3ReadTimeout(Pop3Timeout):
    """The server stopped answering: no reply (or no progress in one) within `read_timeout`."""


class Pop3ProtocolError(Pop3Error):
    """What came back is not POP3: garbage, an over-long line, a malformed listing."""


class Pop3ServerDisconnected(Pop3ProtocolError, ConnectionError):
    """The connection closed (or was reset) before the reply was complete."""


# --- the wire format, without I/O --------------------------------------------------------------

def parse_status_line(line: bytes, *, command: str = "") -> str:
    """The text after `+OK`; raises Pop3ReplyError for `-ERR`, Pop3ProtocolError otherwise."""
    if not line.endswith(b"\n"):
        raise Pop3ServerDisconnected(f"connection closed mid-reply: {line[:80]!r}")
    text = line.rstrip(b"\r\n").decode("utf-8", "replace")
    if text == "+OK" or text.startswith("+OK "):
        return text[4:]
    if text == "-ERR" or text.startswith("-ERR "):
        raise Pop3ReplyError("-ERR", text[5:], command=command)
    raise Pop3ProtocolError(f"not a POP3 reply: {line[:80]!r}")


def dot_unstuff(block: bytes) -> bytes:
    """A multi-line response body as sent (CRLF lines, without the final ".\\r\\n") -> the data:
    one leading "." is removed from every line that starts with one."""
    if block.startswith(b"."):
        block = block[1:]
    return block.replace(b"\r\n.", b"\r\n")


def _lines(block: bytes) -> list[str]:
    return block.decode("utf-8", "replace").splitlines()


def parse_capa(block: bytes) -> dict[str, list[str]]:
    """CAPA's listing -> {capability name (upper case): its arguments}."""
    capabilities: dict[str, list[str]] = {}
    for line in _lines(block):
        words = line.split()
        if words:
            capabilities[words[0].upper()] = words[1:]
    return capabilities


def _is_number(text: str) -> bool:
    """ASCII digits, at most 20 ("²".isdigit() is true too, and int() takes at most 4300)."""
    return text.isascii() and text.isdigit() and len(text) <= 20


def parse_scan_listing(text: str) -> tuple[int, str]:
    """One "n value" line of LIST/UIDL (or STAT's "count size") -> (n, value)."""
    parts = text.split()
    if len(parts) < 2 or not _is_number(parts[0]):
        raise Pop3ProtocolError(f"malformed listing line: {text[:80]!r}")
    return int(parts[0]), parts[1]


def _int_listing(text: str) -> tuple[int, int]:
    n, value = parse_scan_listing(text)
    if not _is_number(value):
        raise Pop3ProtocolError(f"malformed size in listing line: {text[:80]!r}")
    return n, int(value)


def greeting_timestamp(greeting: str) -> str | None:
    """The APOP timestamp (`<...>`) in a server greeting, if it offers one."""
    match = _TIMESTAMP.search(greeting.encode("utf-8", "replace"))
    return match[0].decode() if match else None


def apop_digest(timestamp: str, secret: str) -> str:
    """APOP's digest: hex MD5 of the greeting's timestamp followed by the shared secret."""
    return hashlib.md5((timestamp + secret).encode(), usedforsecurity=False).hexdigest()


def unverified_context() -> ssl.SSLContext:
    """A TLS context that accepts any certificate (test servers use self-signed ones)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def auth_plain(user: str, password: str) -> str:
    """SASL PLAIN's initial response: base64 of NUL user NUL password (RFC 4616)."""
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def _arg(value: str | int) -> str:
    text = str(value)
    if "\r" in text or "\n" in text:
        raise ValueError("POP3 arguments cannot contain line breaks")
    return text


# --- the client -------------------------------------------------------------------------------

class Pop3Client:
    """One POP3 connection. `async with Pop3Client(host, port) as pop:` connects and QUITs.

    `connect_timeout` covers the TCP connection and the server's greeting; `read_timeout` each
    later wait for the server (a reply line, a piece of a multi-line reply, a blocked write).
    After a timeout or a broken reply the connection is closed: the protocol state is unknown.
    """

    def __init__(self, host: str, port: int = 110, *, connect_timeout: float = 10.0,
                 read_timeout: float = 30.0, max_response: int = 64 * 1024 * 1024,
                 tls: TlsConfig | None = None) -> None:
        self.host = host
        self.tls = tls  # implicit: TLS right after the connect; starttls: `starttls()`
        self.handshake: tuple[float, float, dict[str, object] | None] | None = None
        self.port = port
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_response = max_response
        self.greeting: str = ""
        self.apop_timestamp: str | None = None
        self.capabilities: dict[str, list[str]] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def connected(self) -> bool:
        return self._writer is not None

    async def __aenter__(self) -> Pop3Client:
        await self.connect()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if exc is None and self.connected:
            try:
                await self.quit()
            finally:
                self.close()
        else:
            self.close()

    # connection

    async def connect(self) -> str:
        """Connect and read the greeting; returns its text (APOP timestamp kept)."""
        try:
            async with asyncio.timeout(self.connect_timeout):
                self._reader, self._writer = await asyncio.open_connection(
                    self.host, self.port, limit=LINE_LIMIT,
                    local_addr=source.local_addr(self.host, self.port))
                if self.tls is not None and self.tls.mode == "implicit":
                    began, t0 = time.time(), time.perf_counter()
                    info = await self._start_tls(self.tls)
                    self.handshake = (began, (time.perf_counter() - t0) * 1000, info)
                line = await self._reader.readline()
        except TimeoutError:
            self.close()
            raise Pop3ConnectTimeout(
                f"no connection and greeting from {self.host}:{self.port} within "
                f"{self.connect_timeout} s") from None
        except ValueError as exc:  # an over-long greeting line
            self.close()
            raise Pop3ProtocolError(f"greeting line too long: {exc}") from None
        except TlsError:
            self.close()
            raise
        except OSError as exc:
            self.close()
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            error = Pop3ConnectError(  # code: the errno name (EADDRNOTAVAIL: out of ports)
                f"cannot connect to {self.host}:{self.port}: {reason}",
                code=errno.errorcode.get(exc.errno) if exc.errno else None)
            error.errno = exc.errno  # ECONNREFUSED, EADDRNOTAVAIL (the generator's own limit)...
            raise error from exc
        try:
            self.greeting = parse_status_line(line, command="greeting")
        except Pop3Error:
            self.close()
            raise
        self.apop_timestamp = greeting_timestamp(self.greeting)
        return self.greeting

    def close(self) -> None:
        """Drop the connection without QUIT (pending deletes are not applied)."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()

    async def stls(self) -> str:
        """The STLS command alone (its +OK); `tls_handshake` follows it."""
        return await self._command("STLS")

    async def tls_handshake(self, tls: TlsConfig | None = None) -> dict[str, object] | None:
        """TLS on this connection after STLS's +OK (`tls` default: this client's, else any
        certificate accepted); returns the version, cipher and resumption."""
        tls = tls or self.tls or TlsConfig(TlsOptions(mode="starttls", verify=False))
        try:
            async with asyncio.timeout(self.read_timeout):
                info = await self._start_tls(tls)
        except TimeoutError:
            self.close()
            raise TlsError(f"TLS handshake not done within {self.read_timeout} s",
                           code="TIMEOUT") from None
        except TlsError:
            self.close()
            raise
        self.capabilities = {}  # RFC 2595: forget what was learnt before TLS
        return info

    async def starttls(self, tls: TlsConfig | None = None) -> str:
        """STLS, then TLS on this connection."""
        text = await self.stls()
        await self.tls_handshake(tls)
        return text

    async def _start_tls(self, tls: TlsConfig) -> dict[str, object] | None:
        writer = self._live()[1]
        try:
            await writer.start_tls(tls.context, server_hostname=tls.server_hostname(self.host))
        except (OSError, EOFError) as exc:
            raise tls_error(exc) from None
        return tls_info(writer.transport)

    @property
    def transport(self) -> asyncio.BaseTransport | None:
        return self._writer.transport if self._writer is not None else None

    # authorization

    async def capa(self) -> dict[str, list[str]]:
        await self._command("CAPA")
        self.capabilities = parse_capa(await self._read_block())
        return self.capabilities

    async def user(self, name: str) -> str:
        return await self._command(f"USER {_arg(name)}")

    async def pass_(self, password: str) -> str:
        return await self._command(f"PASS {_arg(password)}", name="PASS")

    async def login(self, name: str, password: str) -> str:
        """USER then PASS."""
        await self.user(name)
        return await self.pass_(password)

    async def auth_plain(self, name: str, password: str) -> str:
        """AUTH PLAIN with an initial response (RFC 5034)."""
        return await self._command(f"AUTH PLAIN {auth_plain(_arg(name), _arg(password))}",
                                   name="AUTH")

    async def apop(self, name: str, secret: str) -> str:
        if self.apop_timestamp is None:
            raise Pop3ProtocolError("the greeting offers no APOP timestamp")
        return await self._command(
            f"APOP {_arg(name)} {apop_digest(self.apop_timestamp, secret)}", name="APOP")

    # transaction

    async def stat(self) -> tuple[int, int]:
        """(message count, mailbox size in octets)."""
        return _int_listing(await self._command("STAT"))

    async def list(self) -> list[tuple[int, int]]:
        """[(message number, size)] for every message not marked deleted."""
        await self._command("LIST")
        return [_int_listing(line) for line in _lines(await self._read_block())]

    async def list_one(self, which: int) -> tuple[int, int]:
        return _int_listing(await self._command(f"LIST {_arg(which)}"))

    async def uidl(self) -> builtins.list[tuple[int, str]]:  # `list` is the LIST method here
        """[(message number, unique id)] for every message not marked deleted."""
        await self._command("UIDL")
        return [parse_scan_listing(line) for line in _lines(await self._read_block())]

    async def uidl_one(self, which: int) -> tuple[int, str]:
        return parse_scan_listing(await self._command(f"UIDL {_arg(which)}"))

    async def retr(self, which: int) -> bytes:
        """The whole message, exactly as stored (dot-unstuffed, CRLF line ends)."""
        await self._command(f"RETR {_arg(which)}")
        return await self._read_block()

    async def top(self, which: int, lines: int) -> bytes:
        """The headers, the blank line and the first `lines` lines of the body."""
        await self._command(f"TOP {_arg(which)} {_arg(lines)}")
        return await self._read_block()

    async def dele(self, which: int) -> str:
        return await self._command(f"DELE {_arg(which)}")

    async def rset(self) -> str:
        return await self._command("RSET")

    async def noop(self) -> str:
        return await self._command("NOOP")

    async def quit(self) -> str:
        """QUIT (deletes are applied) and close."""
        try:
            return await self._command("QUIT")
        finally:
            self.close()

    # framing

    def _live(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            raise Pop3ServerDisconnected("not connected")
        return self._reader, self._writer

    @contextlib.asynccontextmanager
    async def _waiting(self, what: str) -> AsyncIterator[asyncio.Timeout]:
        """Waits for the server under the read timeout (the yielded scope, which a long reply
        pushes back as it makes progress); errors become Pop3 ones and close the connection."""
        try:
            async with asyncio.timeout(self.read_timeout) as scope:
                yield scope
        except TimeoutError:
            self.close()
            raise Pop3ReadTimeout(f"no {what} within {self.read_timeout} s") from None
        except asyncio.IncompleteReadError as exc:
            self.close()
            raise Pop3ServerDisconnected(
                f"connection closed during {what} ({len(exc.partial)} bytes of it read)") from None
        except ValueError as exc:  # readline's limit
            self.close()
            raise Pop3ProtocolError(f"{what}: line longer than {LINE_LIMIT} bytes") from exc
        except OSError as exc:
            self.close()
            raise Pop3ServerDisconnected(f"connection lost during {what}: {exc}") from exc

    async def _command(self, line: str, *, name: str = "") -> str:
        reader, writer = self._live()
        verb = name or line.split(" ", 1)[0]
        async with self._waiting(f"reply to {verb}"):
            writer.write(line.encode() + b"\r\n")
            await writer.drain()
            reply = await reader.readline()
        try:
            return parse_status_line(reply, command=verb)
        except Pop3ProtocolError:
            self.close()
            raise

    async def _read_block(self) -> bytes:
        """The rest of a multi-line reply, up to its terminating line, dot-unstuffed."""
        reader = self._live()[0]
        loop = asyncio.get_running_loop()
        buf = bytearray()
        async with self._waiting("end of a multi-line reply") as scope:
            pushed = loop.time()
            while True:
                buf += await _read_chunk(reader)
                if buf.endswith(b"\r\n.\r\n") or buf == _TERMINATOR:
                    break
                if len(buf) > self.max_response:
                    self.close()
                    raise Pop3ProtocolError(
                        f"multi-line reply longer than {self.max_response} bytes")
                now = loop.time()
                if now - pushed > self.read_timeout / 8:  # progress: the server still answers
                    scope.reschedule(now + self.read_timeout)
                    pushed = now
        return dot_unstuff(bytes(buf[:-3]))


async def _read_chunk(reader: asyncio.StreamReader) -> bytes:
    """Up to and including the next ".\r\n", or, after a long stretch without one, the part of
    that stretch that cannot belong to it (so large messages need no large buffer)."""
    try:
        return await reader.readuntil(_TERMINATOR)
    except asyncio.LimitOverrunError as exc:
        return await reader.readexactly(exc.consumed)


# --- the check-mail session -------------------------------------------------------------------

Retrieve = Literal["new", "all", "none"]


@dataclass(slots=True)
class CheckResult:
    """What one check-mail session saw and did; `error` is its first failure (already recorded
    as a step), None when the session went through to QUIT."""

    count: int = 0
    size: int = 0
    new: int = 0
    retrieved: int = 0
    retrieved_bytes: int = 0
    deleted: int = 0
    known_uids: set[str] = field(default_factory=set)
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


async def check_mail(host: str, port: int, user: str, password: str, *, rec: StepRecorder,
                     retrieve: Retrieve = "new", delete: bool = False,
                     known_uids: set[str] | None = None, use_apop: bool = False,
                     auth: Literal["user", "apop", "plain"] | None = None,
                     tls: TlsConfig | None = None, use_capa: bool = False,
                     use_list: bool = True, top_lines: int | None = None,
                     max_messages: int | None = None, connect_timeout: float = 10.0,
                     read_timeout: float = 30.0, hold: float = 0.0) -> CheckResult:
    """Check one mailbox as a mail client does: CONNECT, (STLS, TLS), (CAPA), USER+PASS, APOP or
    AUTH PLAIN (`auth`; `use_apop` is `auth="apop"`), STAT,
    (LIST), UIDL, then RETR (or TOP `top_lines`) each message to fetch, DELE it when `delete`,
    and QUIT. Every command is a step on `rec`; the first failure ends the session and is
    returned in `CheckResult.error`, never raised.

    `retrieve`: "new" fetches messages whose UID is not in `known_uids` (all when None), "all"
    every message, "none" only looks. `CheckResult.known_uids` is what the client knows after
    the session (UIDs still on the server that were known or fetched now; after a failure,
    those known before plus those fetched): pass it back next time to leave mail on the
    server. `max_messages` caps how many are fetched per session. `hold` keeps the session open
    until that many seconds after CONNECT began, before QUIT (a slow client's session time).
    With `tls` (implicit) a `TLS` step follows CONNECT (the handshake inside it); with STLS,
    the STLS and TLS steps follow it. The password and the AUTH string never reach an error.
    """
    result = CheckResult()
    known = set(known_uids or ())
    fetched: set[str] = set()
    pop = Pop3Client(host, port, connect_timeout=connect_timeout, read_timeout=read_timeout,
                     tls=tls)
    began = time.monotonic()
    method = auth or ("apop" if use_apop else "user")
    if password:
        plain = auth_plain(user, password)
        rec.secrets = (*rec.secrets, password, plain, plain.rstrip("="))
    try:
        await rec.step("CONNECT", pop.connect())
        if pop.handshake is not None:
            rec.record("TLS", *pop.handshake)
        if tls is not None and tls.mode == "starttls":
            await rec.step("STLS", pop.stls())
            await rec.step("TLS", pop.tls_handshake(), info=True)
        if use_capa:
            await rec.step("CAPA", pop.capa())
        if method == "apop":
            await rec.step("APOP", pop.apop(user, password))
        elif method == "plain":
            await rec.step("AUTH", pop.auth_plain(user, password))
        else:
            await rec.step("USER", pop.user(user))
            await rec.step("PASS", pop.pass_(password))
        result.count, result.size = await rec.step("STAT", pop.stat())
        if use_list:
            await rec.step("LIST", pop.list())
        uids = await rec.step("UIDL", pop.uidl())
        fetch = [(n, uid) for n, uid in uids
                 if retrieve == "all" or (retrieve == "new" and uid not in known)]
        result.new = sum(1 for _, uid in uids if uid not in known)
        if max_messages is not None:
            fetch = fetch[:max_messages]
        for n, uid in fetch:
            if top_lines is None:
                data = await rec.step("RETR", pop.retr(n), length=len)
            else:
                data = await rec.step("TOP", pop.top(n, top_lines), length=len)
            result.retrieved += 1
            result.retrieved_bytes += len(data)
            fetched.add(uid)
            if delete:
                await rec.step("DELE", pop.dele(n))
                result.deleted += 1
        gone = fetched if delete else set()
        result.known_uids = {uid for _, uid in uids if uid in known or uid in fetched} - gone
        if hold > 0:
            await asyncio.sleep(max(0.0, began + hold - time.monotonic()))
        await rec.step("QUIT", pop.quit())
    except Exception as exc:  # recorded by the failing step; the session ends here
        result.error = exc
        result.known_uids = known | fetched  # no DELE applied without QUIT; fetched is fetched
    finally:
        if tls is not None:
            tls.remember(pop.transport)
        pop.close()
    return result

