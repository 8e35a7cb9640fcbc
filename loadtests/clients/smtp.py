"""SMTP sessions on aiosmtplib's protocol layer, timed command by command.

`send_session` connects, says EHLO, sends each envelope (MAIL, RCPT per recipient, DATA) and
QUITs, recording CONNECT, EHLO, MAIL, RCPT, DATA and QUIT as steps. The first failure ends the
session: it is recorded with aiosmtplib's error (which carries the server's `.code` and
`.message`) and nothing is raised to the caller.

TLS (`SmtpOptions.tls`, a `TlsConfig`): with `starttls`, EHLO is followed by STARTTLS (its
220), the TLS handshake (step `TLS`) and EHLO again; with `implicit`, the handshake follows the
TCP connect before the greeting — CONNECT then covers connect, handshake and greeting, and the
`TLS` step (recorded right after it) the handshake alone. A handshake that fails (certificate,
name, expiry) is a `TlsError` with a readable cause. `auth` (`SmtpAuth`) adds an `AUTH` step
(PLAIN or LOGIN, RFC 4954) after the last EHLO; over a connection without TLS it is refused
unless the endpoint allows plaintext AUTH. Passwords and AUTH strings are blanked out of any
error text before a step records it (`StepRecorder.secrets`).

PIPELINING (RFC 2920, `SmtpOptions.pipelining`, on by default as Postfix's client does): when
the last EHLO reply offers it, MAIL, RCPT and DATA go out in one write and the message is sent
with QUIT after it when it is the session's last, so a one-message session takes 4 round trips
instead of 7. The steps and their records stay the same, each ending when its own reply is
read: MAIL then covers the group's round trip, RCPT and DATA's 354 are usually already there
(their steps take microseconds), DATA covers the message's round trip, QUIT its reply.

It drives `aiosmtplib.protocol.SMTPProtocol` (reply parsing, disconnect detection) directly
rather than the `SMTP` client class, whose per-call option handling, EHLO parsing, command lock
and timer per reply a load generator pays for on every session without needing them.
"""

from __future__ import annotations

import _socket
import asyncio
import collections
import errno
import ipaddress
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, cast

import aiosmtplib
from aiosmtplib.auth import auth_login_encode, auth_plain_encode
from aiosmtplib.email import quote_address
from aiosmtplib.protocol import (
    COMMAND_INJECTION_REGEX,
    MAX_LINE_LENGTH,
    MAX_RESPONSE_LENGTH,
    PERIOD_REGEX,
    normalize_message_line_endings,
)

from loadtests.clients import source
from loadtests.clients.errors import TlsError, tls_error
from loadtests.clients.message import build_message, new_message_id
from loadtests.clients.steps import StepRecorder
from loadtests.clients.tls import TlsConfig, tls_info

__all__ = ["AuthNotAllowed", "Envelope", "SmtpAuth", "SmtpOptions", "auth_secrets",
           "data_payload", "send_session"]

_READ_SIZE = 4096  # replies are small; asyncio's default read size is 256 KiB (see _Protocol)
_OK = (aiosmtplib.SMTPStatus.completed,)
_RCPT_OK = (aiosmtplib.SMTPStatus.completed, aiosmtplib.SMTPStatus.will_forward)
_BYE = (aiosmtplib.SMTPStatus.closing,)
_CONTINUE = aiosmtplib.SMTPStatus.auth_continue
_AUTH_OK = aiosmtplib.SMTPStatus.auth_successful
_ATOM = r"[A-Za-z0-9_+-]+"
_PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


@dataclass(frozen=True, slots=True)
class Envelope:
    recipients: list[str]
    size: int
    message_id: str = ""  # given by the caller that tracks delivery; else one is made


@dataclass(frozen=True, slots=True)
class SmtpOptions:
    sender: str
    connect_timeout: float = 10.0
    command_timeout: float = 30.0
    local_hostname: str = "mailswarm.test"  # never let aiosmtplib look up our own name
    tls: TlsConfig | None = None  # STARTTLS or implicit TLS, per the endpoint
    pipelining: bool = True  # MAIL, RCPT, DATA in one write when the server offers PIPELINING


@dataclass(frozen=True, slots=True)
class SmtpAuth:
    """Credentials of an authenticated (submission) session and the SASL mechanism."""

    user: str
    password: str = field(repr=False)
    mechanism: Literal["plain", "login"] = "plain"
    allow_plaintext: bool = False  # AUTH over a connection without TLS


class AuthNotAllowed(aiosmtplib.SMTPException):
    """AUTH was due on a connection without TLS, and the endpoint does not allow that."""


def auth_secrets(user: str, password: str) -> tuple[str, ...]:
    """Every form of a password an AUTH exchange sends (PLAIN, LOGIN) and the password."""
    if not password:
        return ()
    plain = auth_plain_encode(user, password).decode()
    return (password, plain, plain.rstrip("="), *(p.decode() for p in
                                                   auth_login_encode(user, password)[1:]))


async def send_session(host: str, port: int, envelopes: Sequence[Envelope], options: SmtpOptions,
                       rec: StepRecorder, auth: SmtpAuth | None = None) -> int:
    """Send `envelopes` in one session; returns how many messages the server accepted."""
    accepted = 0
    session = _Session(options)
    sender = options.sender
    tls = options.tls
    if auth is not None:
        rec.secrets = (*rec.secrets, *auth_secrets(auth.user, auth.password))
    try:
        implicit = tls is not None and tls.mode == "implicit"
        await rec.step("CONNECT", session.connect(host, port, tls if implicit else None))
        if session.handshake is not None:
            rec.record("TLS", *session.handshake)
        ehlo = await rec.step("EHLO", session.command(
            b"EHLO ", options.local_hostname, aiosmtplib.SMTPHeloError))
        if tls is not None and tls.mode == "starttls":
            if "STARTTLS" not in ehlo.message.upper():
                await rec.step("STARTTLS", session.refuse(aiosmtplib.SMTPNotSupported(
                    "the server does not offer STARTTLS")))
            await rec.step("STARTTLS", session.command(
                b"STARTTLS", "", aiosmtplib.SMTPResponseException, (220,)))
            await rec.step("TLS", session.starttls(tls, host), info=True)
            ehlo = await rec.step("EHLO", session.command(
                b"EHLO ", options.local_hostname, aiosmtplib.SMTPHeloError))
        if auth is not None:
            await rec.step("AUTH", session.auth(auth))
        if options.pipelining and _offers_pipelining(ehlo.message):
            accepted = await _pipelined(session, envelopes, sender, rec)
        else:
            for env in envelopes:
                await rec.step("MAIL", session.command(
                    b"MAIL FROM:", sender, aiosmtplib.SMTPSenderRefused, address=True))
                for rcpt in env.recipients:
                    await rec.step("RCPT", session.command(
                        b"RCPT TO:", rcpt, aiosmtplib.SMTPRecipientRefused, _RCPT_OK,
                        address=True))
                data = _message(sender, env)
                await rec.step("DATA", session.data(data), length=len(data))
                accepted += 1
            await rec.step("QUIT", session.command(
                b"QUIT", "", aiosmtplib.SMTPResponseException, _BYE))
    except Exception:
        pass  # recorded by the failing step; the session ends here
    finally:
        if tls is not None:
            tls.remember(session.transport)
        session.close()
    return accepted


async def _pipelined(session: _Session, envelopes: Sequence[Envelope], sender: str,
                     rec: StepRecorder) -> int:
    """The envelopes and QUIT with PIPELINING: per message, MAIL + RCPTs + DATA in one write
    (inside the MAIL step), each reply read by its own step; the last message's body goes out
    with QUIT. Returns how many messages the server accepted."""
    accepted = 0
    last = len(envelopes) - 1
    for i, env in enumerate(envelopes):
        group = [_line(b"RCPT TO:", rcpt, True) for rcpt in env.recipients]
        group.append(b"DATA\r\n")
        await rec.step("MAIL", session.command(
            b"MAIL FROM:", sender, aiosmtplib.SMTPSenderRefused, address=True,
            more=b"".join(group)))
        for rcpt in env.recipients:
            await rec.step("RCPT", session.command(
                b"RCPT TO:", rcpt, aiosmtplib.SMTPRecipientRefused, _RCPT_OK, address=True,
                sent=True))
        data = _message(sender, env)
        await rec.step("DATA", session.data(data, sent=True,
                                            then=b"QUIT\r\n" if i == last else b""),
                       length=len(data))
        accepted += 1
    await rec.step("QUIT", session.command(
        b"QUIT", "", aiosmtplib.SMTPResponseException, _BYE, sent=bool(envelopes)))
    return accepted


def _message(sender: str, env: Envelope) -> bytes:
    return build_message(sender=sender, recipients=env.recipients, size=env.size,
                         message_id=env.message_id or new_message_id(), sent_at=time.time())


def _offers_pipelining(ehlo: str) -> bool:
    """Does an EHLO reply's text (its lines joined by newlines) list the PIPELINING keyword?"""
    return any(line.split(" ", 1)[0].upper() == "PIPELINING" for line in ehlo.split("\n"))


class _Protocol(asyncio.BufferedProtocol):
    """SMTP replies from a connection, in order, however they arrive: one per packet, several
    in one (PIPELINING), or one split across packets.

    Replies are parsed as aiosmtplib's `SMTPProtocol` parses them (its codes, joined lines,
    malformed-line and too-long errors, `SMTPServerDisconnected` when the connection ends) but
    none is dropped: a reply read later than it arrived is queued, and a read of a reply already
    there returns without waiting (no loop pass). Once the connection is lost, the replies that
    came before still read; then the loss is raised.

    Read through a small buffer of its own: a plain `Protocol` makes asyncio's transport
    `recv(256 KiB)` for every reply. Unless glibc's dynamic mmap threshold has already risen past
    that size, each such buffer is mapped with mmap, its first page faulted in, shrunk with
    mremap and unmapped again: three system calls and a page fault per reply, a quarter of the
    CPU of a bare session loop here. `recv_into` a 4 KiB buffer never does that.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._read_buffer = memoryview(bytearray(_READ_SIZE))
        self._buffer = bytearray()
        self._replies: collections.deque[aiosmtplib.SMTPResponse | Exception] = \
            collections.deque()
        self._waiter: asyncio.Future[aiosmtplib.SMTPResponse | Exception] | None = None
        self._lost: str | None = None  # why the connection ended: later reads raise it
        self._lost_cause: BaseException | None = None
        self.transport: asyncio.BaseTransport | None = None
        self._over_ssl = False

    # -- asyncio's side ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._over_ssl = transport.get_extra_info("sslcontext") is not None

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._read_buffer[:nbytes])

    def data_received(self, data: bytes | memoryview) -> None:
        if self._lost is not None:
            return
        buffer = self._buffer
        buffer += data
        while (reply := self._parse(buffer)) is not None:
            self._deliver(reply)
        if len(buffer) > MAX_RESPONSE_LENGTH:
            buffer.clear()
            self._deliver(aiosmtplib.SMTPResponseException(
                aiosmtplib.SMTPStatus.invalid_response, "Response too long"))

    def eof_received(self) -> bool:
        self._end("Unexpected EOF received", None)
        return False  # asyncio closes the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._end("Connection lost", exc)
        _unlink(self.transport)
        self.transport = None

    # -- the session's side ------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        cast(asyncio.WriteTransport, transport).write(data)

    async def read_response(self) -> aiosmtplib.SMTPResponse:
        """The next reply (the oldest not read yet); waits only when none has arrived."""
        if self._replies:
            reply = self._replies.popleft()
        elif self._lost is not None:
            reply = self._disconnected()
        else:
            waiter = self._waiter = self._loop.create_future()
            try:
                reply = await waiter
            finally:
                self._waiter = None
        if isinstance(reply, Exception):
            raise reply
        return reply

    # -- replies ---------------------------------------------------------------------------
    @staticmethod
    def _parse(buffer: bytearray) -> aiosmtplib.SMTPResponse | Exception | None:
        """Take the first complete reply off `buffer` (None: not complete yet)."""
        offset = 0
        lines: list[bytes] = []
        while True:
            end = buffer.find(b"\n", offset)
            if end == -1:
                return None
            line = bytes(buffer[offset:end + 1])
            offset = end + 1
            if len(line) > MAX_LINE_LENGTH:
                buffer.clear()
                return aiosmtplib.SMTPResponseException(
                    aiosmtplib.SMTPStatus.invalid_response, "Response too long")
            try:
                code = int(line[:3])
            except ValueError:
                buffer.clear()
                text = line.decode("utf-8", errors="ignore")
                return aiosmtplib.SMTPResponseException(
                    aiosmtplib.SMTPStatus.invalid_response,
                    f"Malformed SMTP response line: {text}")
            lines.append(line[4:].strip(b" \t\r\n"))
            if line[3:4] != b"-":
                del buffer[:offset]
                return aiosmtplib.SMTPResponse(
                    code, b"\n".join(lines).decode("utf-8", "surrogateescape"))

    def _deliver(self, reply: aiosmtplib.SMTPResponse | Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)
            self._waiter = None
        else:
            self._replies.append(reply)

    def _end(self, why: str, cause: BaseException | None) -> None:
        if self._lost is not None:
            return
        self._lost, self._lost_cause = why, cause
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(self._disconnected())
            self._waiter = None

    def _disconnected(self) -> aiosmtplib.SMTPServerDisconnected:
        exc = aiosmtplib.SMTPServerDisconnected(self._lost or "Connection lost")
        exc.__cause__ = self._lost_cause
        return exc


class _Session:
    """One client connection: one command at a time, each under the session's one timer.

    Instead of a `wait_for` (a timer and a task) per reply, a step only moves the due time of
    one loop timer; when the timer fires early it re-schedules itself for the current due time.
    When a step overruns, the connection is aborted — the pending read then fails and the step
    raises aiosmtplib's timeout error — or, before there is a connection, the task is cancelled
    and the cancellation taken back (as `asyncio.timeout` does; a cancellation from elsewhere,
    the bridge stopping a user, is not swallowed). A timed-out step covers the whole command,
    e.g. DATA, its 354, the message and the final reply.
    """

    def __init__(self, options: SmtpOptions) -> None:
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None, "send_session runs in a task"
        self._task = task
        self._options = options
        self._protocol = _Protocol(self._loop)
        self._transport: asyncio.Transport | None = None
        self._sock: _socket.socket | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._due = 0.0
        self._expired = False
        self.handshake: tuple[float, float, dict[str, Any] | None] | None = None

    @property
    def transport(self) -> asyncio.Transport | None:
        return self._transport

    # -- the timer -------------------------------------------------------------------------
    def _arm(self, timeout: float) -> int:
        """Set the current step's due time; returns the task's cancel count to compare with."""
        due = self._loop.time() + timeout
        self._due = due
        timer = self._timer
        if timer is None or timer.when() > due:
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(due, self._on_timer)
        return self._task.cancelling()

    def _on_timer(self) -> None:
        if self._loop.time() < self._due:
            self._timer = self._loop.call_at(self._due, self._on_timer)
            return
        self._timer = None
        self._expired = True
        if self._transport is not None:
            self._transport.abort()  # the read in progress fails with SMTPServerDisconnected
        else:
            self._task.cancel()

    def _timed_out(self, cancelling: int) -> bool:
        """After a CancelledError: was it our timer (then it is taken back) or someone else?"""
        return self._expired and self._task.uncancel() <= cancelling

    # -- the steps -------------------------------------------------------------------------
    async def connect(self, host: str, port: int,
                      tls: TlsConfig | None = None) -> aiosmtplib.SMTPResponse:
        """TCP connect, the TLS handshake (with `tls`: implicit TLS; timed into `handshake`)
        and the server's greeting, within `connect_timeout`."""
        cancelling = self._arm(self._options.connect_timeout)
        try:
            self._transport = await self._open(host, port, plain=tls is None)
        except asyncio.CancelledError:
            if not self._timed_out(cancelling):
                raise
            raise aiosmtplib.SMTPConnectTimeoutError(
                f"Timed out connecting to {host} on port {port}") from None
        except OSError as exc:
            raise aiosmtplib.SMTPConnectError(
                f"Error connecting to {host} on port {port}: {exc}") from exc
        if tls is not None:
            started, t0 = time.time(), time.perf_counter()
            info = await self._handshake(tls, host, cancelling, self._options.connect_timeout)
            self.handshake = (started, (time.perf_counter() - t0) * 1000, info)
        try:
            response = await self._protocol.read_response()
        except asyncio.CancelledError:
            if not self._timed_out(cancelling):
                raise
            raise aiosmtplib.SMTPConnectTimeoutError(
                "Timed out waiting for server ready message") from None
        except aiosmtplib.SMTPServerDisconnected as exc:
            if self._expired:
                raise aiosmtplib.SMTPConnectTimeoutError(
                    "Timed out waiting for server ready message") from None
            raise aiosmtplib.SMTPConnectError(
                f"Error connecting to {host} on port {port}: {exc}") from exc
        if response.code != aiosmtplib.SMTPStatus.ready:
            raise aiosmtplib.SMTPConnectResponseError(response.code, response.message)
        return response

    async def starttls(self, tls: TlsConfig, host: str) -> dict[str, Any] | None:
        """The TLS handshake after STARTTLS's 220, within `command_timeout`."""
        timeout = self._options.command_timeout
        return await self._handshake(tls, host, self._arm(timeout), timeout)

    async def _handshake(self, tls: TlsConfig, host: str, cancelling: int,
                         timeout: float) -> dict[str, Any] | None:
        """Upgrade the transport to TLS; failures become a readable `TlsError`."""
        assert self._transport is not None
        try:
            transport = await self._loop.start_tls(
                self._transport, self._protocol, tls.context, server_side=False,
                server_hostname=tls.server_hostname(host), ssl_handshake_timeout=timeout)
        except asyncio.CancelledError:
            if not self._timed_out(cancelling):
                raise
            raise TlsError(f"TLS handshake not done within {timeout:g} s",
                           code="TIMEOUT") from None
        except (OSError, EOFError) as exc:
            if self._expired:
                raise TlsError(f"TLS handshake not done within {timeout:g} s",
                               code="TIMEOUT") from None
            raise tls_error(exc) from None
        if transport is None:
            raise TlsError("the connection closed during the TLS handshake", code="HANDSHAKE")
        self._transport = transport
        self._protocol.transport = transport
        self._protocol._over_ssl = True
        return tls_info(transport)

    async def refuse(self, error: Exception) -> Any:
        """A step that fails at once with `error` (a check the client makes itself)."""
        raise error

    async def auth(self, auth: SmtpAuth) -> aiosmtplib.SMTPResponse:
        """AUTH PLAIN (one line) or LOGIN (user, then password, each after a 334).

        The lines are built here, never through the command cache: they hold the password."""
        if not (self._protocol._over_ssl or auth.allow_plaintext):
            raise AuthNotAllowed("AUTH refused: the connection is not encrypted (set "
                                 "allow_plaintext_auth: true on the endpoint to allow it)")
        if auth.mechanism == "plain":
            response = await self._exchange(
                b"AUTH PLAIN " + auth_plain_encode(auth.user, auth.password) + b"\r\n")
        else:
            user, password = auth_login_encode(auth.user, auth.password)
            response = await self._exchange(b"AUTH LOGIN\r\n")
            for line in (user, password):
                if response.code != _CONTINUE:
                    break
                response = await self._exchange(line + b"\r\n")
        if response.code != _AUTH_OK:
            raise aiosmtplib.SMTPAuthenticationError(response.code, response.message)
        return response

    async def _open(self, host: str, port: int, *, plain: bool = False) -> asyncio.Transport:
        """The transport; for an IP literal over a plain C-level socket.

        Under gevent's monkey-patching `socket.socket` is gevent's cooperative wrapper, whose
        Python-level connect/send/recv/close asyncio does not need: it drives a non-blocking
        socket through its own selector. On loopback the handshake is complete by the time a
        non-blocking connect returns, so a second connect usually confirms it at once and the
        selector round for writability is skipped. Names go through asyncio's own connect.

        `plain` (no TLS to start on it): the connected socket becomes asyncio's own socket
        transport directly, without `create_connection`'s wait for `connection_made` (a
        future and a task wake-up per session): `connection_made` and the transport's reader
        are queued on the loop before anything of ours can read.
        """
        family = _literal_family(host)
        local = source.local_addr(host, port)
        if family is None:
            transport, _ = await self._loop.create_connection(
                lambda: self._protocol, host, port, local_addr=local)
            return transport
        # asyncio only calls the C-level socket's methods; its stubs ask for socket.socket
        self._sock = sock = cast(socket.socket,
                                 _socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK))
        if local is not None:
            sock.bind(local)
        address = (host.strip("[]"), port)
        err = sock.connect_ex(address)
        if err == errno.EINPROGRESS:
            err = sock.connect_ex(address)
        if err in (errno.EALREADY, errno.EINPROGRESS):
            await self._loop.sock_connect(sock, address)
        elif err not in (0, errno.EISCONN):
            raise OSError(err, os.strerror(err))
        make = getattr(self._loop, "_make_socket_transport", None)  # asyncio's selector loop
        if plain and make is not None:
            return cast(asyncio.Transport, make(sock, self._protocol))
        transport, _ = await self._loop.create_connection(lambda: self._protocol, sock=sock)
        return transport

    async def command(self, verb: bytes, argument: str,
                      refused: Callable[..., aiosmtplib.SMTPResponseException],
                      ok: tuple[int, ...] = _OK, *, address: bool = False,
                      more: bytes = b"", sent: bool = False) -> aiosmtplib.SMTPResponse:
        """Send `verb` + `argument` (quoted as aiosmtplib quotes an `address`); a reply code
        not in `ok` raises `refused` (aiosmtplib's exception for that command, which for an
        address also names it). Pipelining: `more` (commands) goes out in the same write;
        `sent`: the command went out with an earlier one, only its reply is read."""
        line = b"" if sent else _line(verb, argument, address) + more
        response = await self._exchange(line)
        if response.code not in ok:
            if address:
                raise refused(response.code, response.message, argument)
            raise refused(response.code, response.message)
        return response

    async def data(self, message: bytes, *, sent: bool = False,
                   then: bytes = b"") -> aiosmtplib.SMTPResponse:
        """DATA, its 354, the message and the final reply, as one step (`sent`: DATA went out
        pipelined, only its 354 is read; `then`: commands written right after the message)."""
        response = await self._exchange(b"" if sent else b"DATA\r\n",
                                        data_payload(message) + then)
        if response.code != aiosmtplib.SMTPStatus.completed:
            raise aiosmtplib.SMTPDataError(response.code, response.message)
        return response

    async def _exchange(self, line: bytes, payload: bytes = b"") -> aiosmtplib.SMTPResponse:
        """Write `line` (b"": it went out earlier, pipelined) and read its reply; with a
        `payload` (DATA), send it after a 354 and read the final reply. Replies are read in
        the order their commands were written."""
        protocol = self._protocol
        cancelling = self._arm(self._options.command_timeout)
        try:
            if line:
                protocol.write(line)
            response = await protocol.read_response()
            if payload:
                if response.code != aiosmtplib.SMTPStatus.start_input:
                    raise aiosmtplib.SMTPDataError(response.code, response.message)
                protocol.write(payload)
                response = await protocol.read_response()
        except aiosmtplib.SMTPServerDisconnected:
            if self._expired:
                raise _read_timeout(self._options.command_timeout) from None
            raise
        except asyncio.CancelledError:  # our timer, when it fired as the connect step ended
            if not self._timed_out(cancelling):
                raise
            raise _read_timeout(self._options.command_timeout) from None
        return response

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()  # a no-op when already closing
        elif self._sock is not None:
            self._sock.close()


def _unlink(transport: asyncio.BaseTransport | None) -> None:
    """Drop the bound method of itself that asyncio's plain socket transport keeps (its read
    callback): a reference cycle per connection, otherwise left to the cyclic garbage
    collector with the transport and its socket, the generator's main source of garbage
    cycles. Once the connection is lost nothing reads any more; None is the callback the
    transport starts with."""
    if getattr(transport, "_read_ready_cb", None) is not None:
        transport._read_ready_cb = None  # type: ignore[union-attr]  # asyncio private


def _read_timeout(timeout: float) -> aiosmtplib.SMTPReadTimeoutError:
    return aiosmtplib.SMTPReadTimeoutError(
        f"Timed out waiting for server response ({timeout:g} s)")


def data_payload(message: bytes) -> bytes:
    """What follows DATA on the wire: `message` with CRLF line endings, leading dots doubled,
    and the ending `.` line — as aiosmtplib sends it, without its two regex passes over a
    message that needs neither (mailswarm's own messages never do)."""
    crlf = message.count(b"\r\n")
    if (crlf == message.count(b"\n") == message.count(b"\r") and message.endswith(b"\r\n")
            and b"\n." not in message and not message.startswith(b".")):
        return message + b".\r\n"
    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(message)) + b".\r\n"


@lru_cache(maxsize=65536)
def _line(verb: bytes, argument: str, address: bool) -> bytes:
    """A command line (`verb` ends with its separator); the same few lines recur, so each is
    built and checked once. Control characters are refused, as aiosmtplib refuses them."""
    arg = _quoted(argument) if address else argument.encode("ascii")
    if COMMAND_INJECTION_REGEX.search(arg):
        raise ValueError("Command arg contains a prohibited control character")
    return verb + arg + b"\r\n"


@lru_cache(maxsize=65536)
def _quoted(address: str) -> bytes:
    """`<address>` as aiosmtplib's mail()/rcpt() quote it (email.utils.parseaddr, ~12 µs);
    a plain `local@domain` of letters, digits and `._+-` comes out of it unchanged."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return b"<" + address.encode("ascii") + b">"
    return quote_address(address).encode("ascii")


@lru_cache(maxsize=1024)
def _literal_family(host: str) -> int | None:
    """AF_INET / AF_INET6 for an IP literal (brackets allowed), None for a name."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET
