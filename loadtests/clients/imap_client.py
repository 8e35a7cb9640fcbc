"""An IMAP client on aioimaplib with typed errors and separate connect and read timeouts.

    client = ImapClient("127.0.0.1", 143, connect_timeout=10, read_timeout=30)
    await client.connect(); await client.login(user, password)
    info = await client.select("INBOX")
    await client.idle_start(); lines = await client.wait_push(60); client.idle_done()
    await client.idle_finish(); await client.logout(); client.close()

TLS (a `TlsConfig`): implicit TLS does the handshake on the new TCP connection before the
greeting (timed apart, `handshake`); `starttls()` sends STARTTLS and upgrades the transport
(aioimaplib knows the command but has no method for it). `authenticate_plain` is AUTHENTICATE
PLAIN with an initial response (RFC 4959 SASL-IR), next to LOGIN.

What aioimaplib does not do, done here (aioimaplib 2.0):
- a connection closed by the server does not fail the pending command (it waits for its
  timeout; IDLE has none): every command races the connection's end;
- a `* BYE` greeting (`Connection queue full`) or a garbage greeting raises inside a task
  nobody awaits and the caller waits for the timeout: the protocol here spots them;
- IMAP4(timeout=) is the only timeout, for connect and commands alike: the connect timeout is
  applied to the TCP connect + greeting, the read timeout to each command;
- `wait_server_push` returns keepalives (`OK Still here`) like real changes: `wait_push`
  skips them (counted in `keepalives`);
- LOGOUT waits behind an open IDLE: `stop()` sends DONE first, bounded in time;
- thousands of connections sit idle for hours, so each holds little (~11 KiB of Python
  objects): the IDLE push queue is a list, asyncio's Event/Condition/Lock waiters lists instead
  of deques, capability sets are shared, the done connect task is dropped, and a push wait is
  one coroutine under a timeout rather than a task racing the connection's end.
Build the client inside a coroutine on the running loop (aioimaplib needs the running loop).
"""

from __future__ import annotations

import asyncio
import base64
import errno
import socket
import time
from collections.abc import Awaitable, Coroutine, Sequence
from typing import Any, TypeVar

import aioimaplib
from aioimaplib.aioimaplib import (
    AUTH,
    CONNECTED,
    STOP_WAIT_SERVER_PUSH,
    AllowedVersions,
    Command,
    IMAP4ClientProtocol,
    Response,
    change_state,
    quoted,
)

from loadtests.clients import source
from loadtests.clients.errors import TlsError, tls_error
from loadtests.clients.imap_errors import (
    ImapByeError,
    ImapConnectError,
    ImapConnectTimeout,
    ImapDisconnected,
    ImapError,
    ImapProtocolError,
    ImapReadTimeout,
    ImapReplyError,
)
from loadtests.clients.imap_replies import (
    FetchedMessage,
    MailboxInfo,
    is_keepalive,
    parse_expunge,
    parse_fetch,
    parse_mailbox,
    parse_search,
    parse_status,
    pushes_in,
)
from loadtests.clients.tls import TlsConfig, tls_info

__all__ = ["ImapClient"]

T = TypeVar("T")


class _PushQueue:
    """The part of asyncio.Queue aioimaplib's IDLE uses (put_nowait, put, get), without its
    three deques and Event (~3 KiB per connection). `fail` ends every wait with an error."""

    __slots__ = ("_error", "_getters", "_items")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._getters: list[asyncio.Future[None]] = []
        self._error: BaseException | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        self._wake()

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    def get_nowait(self) -> Any:
        if not self._items:
            if self._error is not None:
                raise self._error
            raise asyncio.QueueEmpty
        return self._items.pop(0)

    async def get(self) -> Any:
        while not self._items and self._error is None:
            getter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._getters.append(getter)
            try:
                await getter
            finally:
                self._getters.remove(getter)
        return self.get_nowait()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._wake()

    def _wake(self) -> None:
        for getter in self._getters:  # each getter re-checks: woken and empty, it waits again
            if not getter.done():
                getter.set_result(None)


_CAPABILITY_SETS: dict[frozenset[str], frozenset[str]] = {}


def _slim(*primitives: Any) -> None:
    """asyncio's Event, Condition and Lock keep their waiters in a deque (~760 B each, per
    connection and per command); they only append, remove and iterate it: a list does."""
    for primitive in primitives:
        primitive._waiters = []


def _capability_words(line: bytes) -> list[str]:
    """The atoms of a CAPABILITY line; latin-1 decodes any byte, so a server's atom that is
    not UTF-8 is kept (and written out later) instead of failing the session."""
    return bytes(line).decode("latin-1").split()


class _Protocol(IMAP4ClientProtocol):
    """aioimaplib's protocol, plus: the greeting, `* BYE` lines and the connection's end
    become a future (`ended`) that every command of ImapClient races (and that ends a wait for
    IDLE pushes); leaner per connection: a list-based push queue, asyncio primitives without
    deques, capability sets shared between connections."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.ended: asyncio.Future[None] = loop.create_future()
        self.greeting: bytes | None = None
        self.bye: bytes | None = None
        self.idle_queue = _PushQueue()
        _slim(self._idle_event, self.state_condition, self.state_condition._lock)

    @property
    def capabilities(self) -> frozenset[str]:
        return self._capabilities

    @capabilities.setter
    def capabilities(self, value: set[str] | frozenset[str]) -> None:
        frozen = frozenset(value)
        self._capabilities = _CAPABILITY_SETS.setdefault(frozen, frozen)

    async def capability(self) -> None:
        """aioimaplib's CAPABILITY after the greeting, tolerant of atoms that are not UTF-8
        (aioimaplib decodes strictly: its greeting task would die and the connect time out)."""
        response = await self.execute(Command("CAPABILITY", self.new_tag(), loop=self.loop))
        words = _capability_words(response.lines[0] if response.lines else b"")
        self.capabilities = set(words)
        versions = [w.upper() for w in words if w.upper() in AllowedVersions]
        if not versions:
            raise aioimaplib.Error("server not IMAP4 compliant")
        self.imap_version = versions[-1]

    @change_state
    async def login(self, user: str, password: str) -> Response:
        """aioimaplib's LOGIN, reading a CAPABILITY in its reply as `capability` does."""
        response = await self.execute(
            Command("LOGIN", self.new_tag(), user, quoted(password), loop=self.loop),
            scrub=password)
        if response.result == "OK":
            self.state = AUTH
            for line in response.lines:
                if b"CAPABILITY" in line:
                    self.capabilities = self.capabilities | {
                        w for w in _capability_words(bytes(line)) if w != "CAPABILITY"}
        return response

    def execute(self, command: Command,
                scrub: str | None = None) -> Coroutine[Any, Any, Response]:
        _slim(command._event)
        return super().execute(command, scrub)

    def _end(self, exc: ImapError) -> None:
        if not self.ended.done():
            self.ended.set_exception(exc)
            self.ended.exception()  # retrieved: no "never retrieved" warning if nobody waits
            self.idle_queue.fail(exc)

    def _handle_line(self, line: bytes, current_cmd: Command | None) -> Command | None:
        if line.startswith(b"* BYE"):
            self.bye = line[5:].strip()
        if self.state == CONNECTED and line:
            self.greeting = line
            if line.startswith(b"* BYE"):
                return None  # aioimaplib would raise in a task nobody awaits
            if not line.startswith((b"* OK", b"* PREAUTH")):
                self._end(ImapProtocolError(f"not an IMAP greeting: {line[:200]!r}"))
                if self.transport is not None:
                    self.transport.close()
                return None
        return super()._handle_line(line, current_cmd)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.bye is not None:
            self._end(ImapByeError(self.bye.decode("utf-8", "replace")))
        else:
            reason = f": {exc}" if exc else ""
            self._end(ImapDisconnected(f"connection closed by the server{reason}"))
        super().connection_lost(exc)


async def _stream_address(loop: asyncio.AbstractEventLoop, host: str,
                          port: int) -> tuple[socket.AddressFamily, tuple[Any, ...]]:
    """Where to connect: an IP address as it is (as asyncio's create_connection does: no
    resolver thread, whose pool and per-thread heaps the generator then carries), a name
    through the loop's resolver."""
    name = host.strip("[]")
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, name)
        except OSError:
            continue
        return family, ((name, port) if family == socket.AF_INET else (name, port, 0, 0))
    (family, _, _, _, address), *_ = await loop.getaddrinfo(name, port, type=socket.SOCK_STREAM)
    return family, address


class _IMAP4(aioimaplib.IMAP4):
    """aioimaplib's client on our protocol; with `tls` (implicit TLS) the TCP connect and the
    TLS handshake are two awaits, so the handshake is timed on its own (`handshake`)."""

    def __init__(self, host: str, port: int, tls: TlsConfig | None = None) -> None:
        self.tls = tls
        self.handshake: tuple[float, float, dict[str, Any] | None] | None = None
        super().__init__(host, port, timeout=None)

    def create_client(self, host: str, port: int, loop: asyncio.AbstractEventLoop | None,
                      conn_lost_cb: Any = None, ssl_context: Any = None) -> None:
        local_loop = loop if loop is not None else asyncio.get_running_loop()
        self.protocol = _Protocol(local_loop)
        if self.tls is None:
            self._client_task = local_loop.create_task(local_loop.create_connection(
                lambda: self.protocol, host, port, ssl=ssl_context,
                local_addr=source.local_addr(host, port)))
        else:
            self._client_task = local_loop.create_task(self._open_tls(local_loop, host, port))

    async def _open_tls(self, loop: asyncio.AbstractEventLoop, host: str,
                        port: int) -> tuple[asyncio.Transport, _Protocol]:
        """TCP connect, then the TLS handshake on that socket (a readable TlsError when it
        fails). Upgrading a connected transport with `start_tls` instead loses connections
        here now and then before the greeting, so the handshake is the socket's first use."""
        assert self.tls is not None
        family, address = await _stream_address(loop, host, port)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            if (local := source.local_addr(host, port)) is not None:
                sock.bind(local)
            await loop.sock_connect(sock, address)
            began, t0 = time.time(), time.perf_counter()
            try:
                transport, _ = await loop.create_connection(
                    lambda: self.protocol, sock=sock, ssl=self.tls.context,
                    server_hostname=self.tls.server_hostname(host))
            except (OSError, EOFError) as exc:
                raise tls_error(exc) from None
        except BaseException:
            sock.close()
            raise
        self.handshake = (began, (time.perf_counter() - t0) * 1000, tls_info(transport))
        protocol = self.protocol
        assert isinstance(protocol, _Protocol)
        return transport, protocol


class ImapClient:
    """One IMAP connection. Every method raises an ImapError (see imap_errors) on failure."""

    def __init__(self, host: str, port: int, *, connect_timeout: float = 10.0,
                 read_timeout: float = 30.0, tls: TlsConfig | None = None) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.handshake: tuple[float, float, dict[str, Any] | None] | None = None
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.keepalives = 0  # `* OK Still here` lines seen while idling
        self._imap: _IMAP4 | None = None
        self._idle: asyncio.Future[Response] | None = None

    # ---- plumbing ------------------------------------------------------------------------
    @property
    def imap(self) -> _IMAP4:
        if self._imap is None:
            raise ImapError("not connected")
        return self._imap

    @property
    def protocol(self) -> _Protocol:
        proto = self.imap.protocol
        assert isinstance(proto, _Protocol)
        return proto

    @property
    def state(self) -> str:
        """aioimaplib's state: STARTED, CONNECTED, NONAUTH, AUTH, SELECTED, LOGOUT."""
        return "STARTED" if self._imap is None else self.protocol.state

    @property
    def idling(self) -> bool:
        return self._idle is not None and not self._idle.done()

    async def _race(self, action: Awaitable[T], timeout: float, what: str,
                    timeout_error: type[ImapError] = ImapReadTimeout) -> T:
        """Run `action`, failing early when the connection ends and late after `timeout`."""
        task = asyncio.ensure_future(action)
        ended = self.protocol.ended
        racing: set[asyncio.Future[Any]] = {task, ended}
        try:
            done, _ = await asyncio.wait(racing, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            task.cancel()
            raise
        if task in done:
            try:
                return task.result()
            except ImapError:
                raise
            except aioimaplib.CommandTimeout:
                raise timeout_error(f"{what}: no reply within {timeout:.3g} s") from None
            except aioimaplib.Abort as exc:
                raise ImapProtocolError(f"{what}: {exc}") from exc
            except (ConnectionError, OSError) as exc:
                raise ImapDisconnected(f"{what}: {exc}") from exc
        task.cancel()
        if ended in done:
            ended.result()  # raises ImapDisconnected / ImapByeError / ImapProtocolError
        raise timeout_error(f"{what}: no reply within {timeout:.3g} s")

    async def _command(self, name: str, action: Awaitable[Response]) -> Response:
        response = await self._race(action, self.read_timeout, name)
        if response.result != "OK":
            text = bytes(response.lines[-1]) if response.lines else b""
            raise ImapReplyError(name, response.result, text.decode("utf-8", "replace"))
        return response

    # ---- connection ----------------------------------------------------------------------
    async def connect(self) -> str:
        """TCP connect and the server's greeting (returned), within `connect_timeout`."""
        implicit = self.tls if self.tls is not None and self.tls.mode == "implicit" else None
        self._imap = _IMAP4(self.host, self.port, implicit)
        started = time.monotonic()
        try:
            await asyncio.wait_for(self.imap._client_task, self.connect_timeout)
        except TimeoutError:
            raise ImapConnectTimeout(
                f"connect to {self.host}:{self.port}: no connection within "
                f"{self.connect_timeout} s") from None
        except TlsError:
            raise
        except OSError as exc:
            raise ImapConnectError(  # code: the errno name (EADDRNOTAVAIL: out of ports)
                f"connect to {self.host}:{self.port}: {exc}",
                code=errno.errorcode.get(exc.errno) if exc.errno else None) from exc
        del self.imap._client_task  # done; it would keep the connect coroutine for hours
        self.handshake = self.imap.handshake
        left = max(0.0, self.connect_timeout - (time.monotonic() - started))
        await self._race(self.protocol.wait("AUTH|NONAUTH"), left, "greeting",
                         ImapConnectTimeout)
        return (self.protocol.greeting or b"").decode("utf-8", "replace")

    async def _handshake(self, tls: TlsConfig, timeout: float) -> dict[str, Any] | None:
        """Upgrade the connection's transport to TLS; failures become a readable TlsError."""
        protocol = self.protocol
        loop = asyncio.get_running_loop()
        try:
            transport = await asyncio.wait_for(loop.start_tls(
                protocol.transport, protocol, tls.context, server_side=False,
                server_hostname=tls.server_hostname(self.host)), timeout)
        except TimeoutError:
            raise TlsError(f"TLS handshake not done within {timeout:.3g} s",
                           code="TIMEOUT") from None
        except (OSError, EOFError) as exc:
            raise tls_error(exc) from None
        if transport is None:
            raise TlsError("the connection closed during the TLS handshake", code="HANDSHAKE")
        protocol.transport = transport
        return tls_info(transport)

    async def starttls(self) -> str:
        """STARTTLS (its tagged OK); `tls_handshake` follows it."""
        response = await self._command("STARTTLS", self.imap.protocol.execute(
            Command("STARTTLS", self.imap.protocol.new_tag(), loop=self.imap.protocol.loop)))
        return (bytes(response.lines[-1]) if response.lines else b"").decode("utf-8", "replace")

    async def tls_handshake(self) -> dict[str, Any] | None:
        """The TLS handshake after STARTTLS's OK; capabilities learnt before it are dropped."""
        assert self.tls is not None, "a TLS endpoint"
        info = await self._handshake(self.tls, self.read_timeout)
        self.protocol.capabilities = frozenset()
        return info

    @property
    def transport(self) -> Any:
        return None if self._imap is None else self.protocol.transport

    def close(self) -> None:
        """Drop the connection now (no LOGOUT) and forget pending work."""
        if self._imap is None:
            return
        if self._idle is not None:
            self._idle.cancel()
        for task in list(self.imap.tasks) + list(self.protocol.tasks):
            task.cancel()
        connecting = getattr(self.imap, "_client_task", None)
        if connecting is not None and not connecting.done():
            connecting.cancel()
        if self.protocol.transport is not None:
            self.protocol.transport.close()

    async def stop(self, timeout: float = 1.0) -> None:
        """Leave politely within `timeout`: DONE if idling, then LOGOUT; then close. Never
        raises (used when the session is cancelled)."""
        if self._imap is None:
            return
        try:
            async with asyncio.timeout(timeout):
                if self.idling:
                    self.idle_done()
                    await self.idle_finish()
                if self.state in ("NONAUTH", "AUTH", "SELECTED"):
                    await self.logout()
        except (Exception, asyncio.CancelledError):  # best effort, bounded
            pass
        finally:
            self.close()

    # ---- commands ------------------------------------------------------------------------
    async def login(self, user: str, password: str) -> None:
        await self._command("LOGIN", self.imap.protocol.login(quoted(user), password))

    async def authenticate_plain(self, user: str, password: str) -> None:
        """AUTHENTICATE PLAIN with the SASL-IR initial response (RFC 4959, RFC 4616)."""
        proto = self.imap.protocol
        initial = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        await self._command("AUTHENTICATE", proto.execute(
            Command("AUTHENTICATE", proto.new_tag(), "PLAIN", initial, loop=proto.loop),
            scrub=initial))
        proto.state = "AUTH"

    async def capability(self) -> set[str]:
        response = await self._command("CAPABILITY", self.imap.protocol.execute(
            Command("CAPABILITY", self.imap.protocol.new_tag(), loop=self.imap.protocol.loop)))
        caps: set[str] = set()
        for line in response.lines[:-1]:
            words = _capability_words(bytes(line))
            caps.update(words[1:] if line.upper().startswith(b"CAPABILITY") else words)
        self.protocol.capabilities |= caps
        return caps

    async def select(self, mailbox: str = "INBOX") -> MailboxInfo:
        return parse_mailbox((await self._command("SELECT",
                                                  self.imap.protocol.select(mailbox))).lines)

    async def examine(self, mailbox: str = "INBOX") -> MailboxInfo:
        response = await self._command(
            "EXAMINE", self.imap.protocol.simple_command("EXAMINE", mailbox))
        self.protocol.state = "SELECTED"  # aioimaplib does not track EXAMINE's state change
        return parse_mailbox(response.lines)

    async def noop(self) -> list[bytes]:
        """NOOP; returns the mailbox changes the server reported with it."""
        response = await self._command("NOOP", self.imap.protocol.simple_command("NOOP"))
        return pushes_in(response.lines)

    async def status(self, mailbox: str = "INBOX",
                     items: Sequence[str] = ("MESSAGES", "UNSEEN", "UIDNEXT")) -> dict[str, int]:
        response = await self._command("STATUS", self.imap.protocol.simple_command(
            "STATUS", mailbox, "(" + " ".join(items) + ")"))
        return parse_status(response.lines)

    async def fetch(self, message_set: str, parts: str, *,
                    by_uid: bool = False) -> list[FetchedMessage]:
        """FETCH (or UID FETCH) `parts`, e.g. "(UID FLAGS BODY.PEEK[HEADER])", "BODY[]"."""
        response = await self._command("FETCH", self.imap.protocol.fetch(
            message_set, parts, by_uid=by_uid))
        return parse_fetch(response.lines)

    async def fetch_changes(self, message_set: str, parts: str, *, by_uid: bool = False
                            ) -> tuple[list[FetchedMessage], list[bytes]]:
        """`fetch`, and the mailbox changes (`N EXISTS`, `N EXPUNGE`) the server reported with
        its reply: a change reported there is not pushed again at the next IDLE."""
        response = await self._command("FETCH", self.imap.protocol.fetch(
            message_set, parts, by_uid=by_uid))
        changes = [x for x in pushes_in(response.lines) if b" FETCH" not in x.upper()]
        return parse_fetch(response.lines), changes

    async def fetch_headers(self, message_set: str, *,
                            by_uid: bool = False) -> list[FetchedMessage]:
        return await self.fetch(message_set, "(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER])",
                                by_uid=by_uid)

    async def fetch_message(self, message_set: str, *, by_uid: bool = False,
                            peek: bool = False) -> list[FetchedMessage]:
        part = "BODY.PEEK[]" if peek else "BODY[]"
        return await self.fetch(message_set, f"(UID FLAGS {part})", by_uid=by_uid)

    async def search(self, criteria: str = "ALL", *, by_uid: bool = True,
                     charset: str | None = None) -> list[int]:
        """(UID) SEARCH with a criteria string, e.g. 'UNSEEN', 'TEXT "hello"'."""
        response = await self._command("SEARCH", self.imap.protocol.search(
            criteria, charset=charset, by_uid=by_uid))
        return parse_search(response.lines)

    async def store(self, message_set: str, action: str, flags: str, *,
                    by_uid: bool = True) -> list[FetchedMessage]:
        """STORE, e.g. store("7", "+FLAGS", "(\\\\Seen)"); returns the FETCH answers."""
        response = await self._command("STORE", self.imap.protocol.store(
            message_set, action, flags, by_uid=by_uid))
        return parse_fetch(response.lines)

    async def expunge(self) -> list[int]:
        """EXPUNGE; returns the sequence numbers the server reported removed."""
        response = await self._command("EXPUNGE", self.imap.protocol.expunge())
        return parse_expunge(response.lines)

    async def logout(self) -> None:
        await self._command("LOGOUT", self.imap.protocol.logout())

    # ---- IDLE ----------------------------------------------------------------------------
    async def idle_start(self) -> None:
        """Send IDLE and wait for the server's `+` continuation (within the read timeout)."""
        proto = self.imap.protocol
        idle = asyncio.ensure_future(proto.idle())
        ack = asyncio.ensure_future(proto.wait_for_idle_response())
        self._idle = idle
        try:
            await self._race(asyncio.wait({idle, ack}, return_when=asyncio.FIRST_COMPLETED),
                             self.read_timeout, "IDLE")
        finally:
            ack.cancel()
        if idle.done():
            self._idle = None
            if idle.cancelled():
                raise ImapProtocolError("IDLE was cancelled")
            exc = idle.exception()
            if exc is not None:
                raise ImapProtocolError(f"IDLE: {exc}")
            response = idle.result()
            text = bytes(response.lines[-1]) if response.lines else b""
            raise ImapReplyError("IDLE", response.result, text.decode("utf-8", "replace"))

    async def wait_push(self, timeout: float) -> list[bytes]:
        """While idling, wait up to `timeout` s for mailbox changes (`N EXISTS`, `N EXPUNGE`,
        `N FETCH`); keepalives are skipped. Returns [] when nothing changed in time."""
        deadline = time.monotonic() + timeout
        queue = self.protocol.idle_queue  # fails with the connection's end (no race task)
        while (left := deadline - time.monotonic()) > 0:
            try:
                async with asyncio.timeout(left):
                    lines = await queue.get()
            except TimeoutError:
                return []
            if lines is STOP_WAIT_SERVER_PUSH or lines == STOP_WAIT_SERVER_PUSH:
                continue
            self.keepalives += sum(1 for x in lines if is_keepalive(x))
            if pushes := pushes_in(lines):
                return pushes
        return []

    def idle_done(self) -> None:
        """Send DONE (synchronous, as aioimaplib's); `idle_finish` waits for the tagged OK."""
        if self.idling:
            self.imap.idle_done()

    async def idle_finish(self) -> None:
        if self._idle is None:
            return
        idle, self._idle = self._idle, None
        response = await self._race(idle, self.read_timeout, "IDLE")
        if response.result != "OK":
            text = bytes(response.lines[-1]) if response.lines else b""
            raise ImapReplyError("IDLE", response.result, text.decode("utf-8", "replace"))
