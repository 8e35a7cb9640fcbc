"""SMTP sessions on aiosmtplib, timed command by command.

`send_session` connects, says EHLO, sends each envelope (MAIL, RCPT per recipient, DATA) and
QUITs, recording CONNECT, EHLO, MAIL, RCPT, DATA and QUIT as steps. The first failure ends the
session: it is recorded with aiosmtplib's error (which carries the server's `.code` and
`.message`) and nothing is raised to the caller.
"""

from __future__ import annotations

import _socket
import asyncio
import ipaddress
import socket
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import aiosmtplib
from aiosmtplib.email import quote_address

from loadtests.clients.message import build_message, new_message_id
from loadtests.clients.steps import StepRecorder

__all__ = ["Envelope", "SmtpOptions", "send_session"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Envelope:
    recipients: list[str]
    size: int


@dataclass(frozen=True, slots=True)
class SmtpOptions:
    sender: str
    connect_timeout: float = 10.0
    command_timeout: float = 30.0
    local_hostname: str = "mailswarm.test"  # never let aiosmtplib look up our own name


async def send_session(host: str, port: int, envelopes: Sequence[Envelope], options: SmtpOptions,
                       rec: StepRecorder) -> int:
    """Send `envelopes` in one session; returns how many messages the server accepted."""
    accepted = 0
    smtp: aiosmtplib.SMTP | None = None
    deadline = _CommandDeadline(options.command_timeout)
    try:
        smtp = await rec.step("CONNECT", _connect(host, port, options))
        await rec.step("EHLO", deadline.run(smtp.ehlo(timeout=None)))
        for env in envelopes:
            await rec.step("MAIL", deadline.run(_mail(smtp, options.sender)))
            for rcpt in env.recipients:
                await rec.step("RCPT", deadline.run(_rcpt(smtp, rcpt)))
            data = build_message(sender=options.sender, recipients=env.recipients, size=env.size,
                                 message_id=new_message_id(), sent_at=time.time())
            await rec.step("DATA", deadline.run(smtp.data(data, timeout=None)), length=len(data))
            accepted += 1
        await rec.step("QUIT", deadline.run(smtp.quit(timeout=None)))
    except Exception:
        pass  # recorded by the failing step; the session ends here
    finally:
        deadline.close()
        if smtp is not None:
            smtp.close()
    return accepted


class _CommandDeadline:
    """`command_timeout` for each command step, kept by one timer per session.

    aiosmtplib's own timeout is an `asyncio.wait_for` around every reply it reads (~9 µs each,
    seven a session); here one loop timer is re-armed lazily: a step only moves the due time, and
    when the timer fires early it re-schedules itself for the current due time. When a step
    overruns, the session's task is cancelled and the step raises aiosmtplib's
    `SMTPReadTimeoutError` instead (as `asyncio.timeout` does, a cancellation from elsewhere —
    the bridge stopping a user — is not swallowed). A timed-out step covers the whole command,
    e.g. DATA, its 354, the message and the final reply.
    """

    def __init__(self, timeout: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._timeout = timeout
        self._due = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._expired = False

    async def run(self, action: Awaitable[T]) -> T:
        task = self._task
        assert task is not None, "send_session runs in a task"
        self._due = self._loop.time() + self._timeout
        if self._handle is None:
            self._handle = self._loop.call_at(self._due, self._on_timer)
        cancelling = task.cancelling()
        try:
            return await action
        except asyncio.CancelledError:
            if self._expired and task.uncancel() <= cancelling:
                raise aiosmtplib.SMTPReadTimeoutError(
                    f"Timed out waiting for server response ({self._timeout:g} s)") from None
            raise
        finally:
            self._expired = False

    def _on_timer(self) -> None:
        if self._loop.time() >= self._due:
            self._handle = None
            self._expired = True
            if self._task is not None:
                self._task.cancel()
        else:
            self._handle = self._loop.call_at(self._due, self._on_timer)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


async def _connect(host: str, port: int, options: SmtpOptions) -> aiosmtplib.SMTP:
    """Connect and read the greeting; the client is closed again if that fails.

    For an IP literal the TCP connection is made here on a plain C-level socket and handed to
    aiosmtplib: under gevent's monkey-patching `socket.socket` is gevent's cooperative wrapper,
    whose Python-level connect/send/recv/close (and watcher clean-up on close) asyncio does not
    need — it drives a non-blocking socket through its own selector. Names go through
    aiosmtplib's own connect.
    """
    family = _literal_family(host)
    if family is None:
        smtp = _client(hostname=host, port=port, options=options)
        await smtp.connect(timeout=options.connect_timeout)
        return smtp
    sock = _socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        try:
            async with asyncio.timeout(options.connect_timeout):
                await asyncio.get_running_loop().sock_connect(sock, (host.strip("[]"), port))
        except TimeoutError as exc:  # also ETIMEDOUT from the kernel, an OSError
            raise aiosmtplib.SMTPConnectTimeoutError(
                f"Timed out connecting to {host} on port {port}") from exc
        except OSError as exc:
            raise aiosmtplib.SMTPConnectError(
                f"Error connecting to {host} on port {port}: {exc}") from exc
        smtp = _client(hostname=host, port=None, options=options)
        await smtp.connect(sock=sock, timeout=options.connect_timeout)  # closes itself on error
    except BaseException:
        sock.close()  # no-op once the transport owns and has closed it
        raise
    return smtp


def _client(*, hostname: str, port: int | None, options: SmtpOptions) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=hostname, port=port, timeout=options.command_timeout,
        local_hostname=options.local_hostname, start_tls=False, use_tls=False,
    )


@lru_cache(maxsize=1024)
def _literal_family(host: str) -> int | None:
    """AF_INET / AF_INET6 for an IP literal (brackets allowed), None for a name."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


# `SMTP.mail()` / `SMTP.rcpt()` quote the address with email.utils.parseaddr on every call
# (~12 µs each); the same few addresses come back all the time, so quote each once and send the
# command ourselves, with aiosmtplib's own checks and exceptions.
@lru_cache(maxsize=65536)
def _quoted(address: str) -> bytes:
    return quote_address(address).encode("ascii")


async def _mail(smtp: aiosmtplib.SMTP, sender: str) -> aiosmtplib.SMTPResponse:
    response = await smtp.execute_command(b"MAIL", b"FROM:" + _quoted(sender), timeout=None)
    if response.code != aiosmtplib.SMTPStatus.completed:
        raise aiosmtplib.SMTPSenderRefused(response.code, response.message, sender)
    return response


async def _rcpt(smtp: aiosmtplib.SMTP, recipient: str) -> aiosmtplib.SMTPResponse:
    response = await smtp.execute_command(b"RCPT", b"TO:" + _quoted(recipient), timeout=None)
    if response.code not in (aiosmtplib.SMTPStatus.completed,
                             aiosmtplib.SMTPStatus.will_forward):
        raise aiosmtplib.SMTPRecipientRefused(response.code, response.message, recipient)
    return response
