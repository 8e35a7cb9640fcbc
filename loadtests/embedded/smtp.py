"""The embedded SMTP server (aiosmtpd): accepts and counts mail for the test domain's users,
with per-reply delay and injected faults per connection.

One factory per listening port and `role`: `mx` (port 25's job: STARTTLS offered when there is
a TLS context, no AUTH), `submission` (STARTTLS required before AUTH, AUTH required before
MAIL), `smtps` (implicit TLS: the socket is TLS already; AUTH required). `auth_fault: echo`
answers every AUTH with a 535 that repeats the client's AUTH line (a server that leaks
credentials into its error text, for the redaction tests)."""

from __future__ import annotations

import asyncio
import random
import re
import ssl
import time
from typing import Any, AnyStr

from aiosmtpd.smtp import SMTP, Envelope, Session

from loadtests.embedded.config import EmbeddedSettings
from loadtests.embedded.delivery import LocalDelivery
from loadtests.embedded.faults import connection_fault
from loadtests.embedded.stats import TargetStats
from loadtests.embedded.tls import SmtpAuthenticator

__all__ = ["SmtpServerFactory"]

_USER = re.compile(r"user(\d+)")


class _CountingHandler:
    """aiosmtpd handler: recipients user0001..userNNNN@domain; mail is counted, and handed to
    local delivery when there is one (else not kept)."""

    def __init__(self, settings: EmbeddedSettings, stats: TargetStats, fault: str,
                 delivery: LocalDelivery | None) -> None:
        self.domain = settings.domain.lower()
        self.users = settings.users
        self.stats = stats
        self.fault = fault
        self.delivery = delivery

    def _known(self, address: str) -> bool:
        local, _, domain = address.rpartition("@")
        match = _USER.fullmatch(local.lower())
        return (domain.lower() == self.domain and match is not None
                and 1 <= int(match[1]) <= self.users)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if self.fault == "reply-4xx":
            return "451 4.3.0 mailswarm target: injected temporary failure"
        if self.fault == "reply-5xx":
            return "554 5.7.1 mailswarm target: injected permanent failure"
        if not self._known(address):
            self.stats.smtp_rejected_recipients += 1
            return f"550 5.1.1 <{address}>: recipient unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.fault == "close-mid-data":
            if isinstance(server.transport, asyncio.WriteTransport):
                server.transport.abort()
            return "421 4.4.2 closing"  # never reaches the client: the socket is gone
        self.stats.smtp_messages += 1
        self.stats.smtp_recipients += len(envelope.rcpt_tos)
        self.stats.smtp_bytes += len(envelope.original_content or b"")
        if self.delivery is not None:
            self.delivery.accept(envelope.rcpt_tos, envelope.original_content or b"")
        return "250 2.0.0 OK queued"


class _DelayedSMTP(SMTP):
    """aiosmtpd's server with a fixed delay before every reply (a slow server model)."""

    def __init__(self, *args: Any, delay: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._delay = delay

    async def push(self, status: AnyStr) -> None:
        await asyncio.sleep(self._delay)
        await super().push(status)


class _EchoAuthSMTP(_DelayedSMTP):
    """Refuses every AUTH with a reply that repeats what the client sent."""

    async def smtp_AUTH(self, arg: str) -> None:
        await self.push(f"535 5.7.8 authentication failed for: AUTH {arg}")


class _CloseAfter354(_DelayedSMTP):
    """Says 354 to DATA, then closes the connection while the client sends the message."""

    async def smtp_DATA(self, arg: str) -> None:
        if self.envelope is None or not self.envelope.rcpt_tos:
            await super().smtp_DATA(arg)  # aiosmtpd's own 503 for DATA without RCPT
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        if isinstance(self.transport, asyncio.WriteTransport):
            self.transport.abort()


class _StallAtMail(_DelayedSMTP):
    """Reads MAIL FROM and never answers it: alive, but stuck in the middle of a command."""

    async def smtp_MAIL(self, arg: str) -> None:
        await asyncio.get_running_loop().create_future()  # cancelled when the client leaves


_SESSION_FAULTS: dict[str, type[_DelayedSMTP]] = {"close-after-354": _CloseAfter354,
                                                   "stall-mail": _StallAtMail}
"""Faults in the middle of a session, by the server class that plays them."""


class SmtpServerFactory:
    """Protocol factory for `loop.create_server`: a healthy or a faulty server per connection."""

    def __init__(self, settings: EmbeddedSettings, stats: TargetStats,
                 delivery: LocalDelivery | None = None, *, role: str = "mx",
                 tls_context: ssl.SSLContext | None = None,
                 authenticator: SmtpAuthenticator | None = None) -> None:
        self.settings = settings
        self.role = role
        self.stats = stats
        self.started = time.monotonic()
        self._rng = random.Random()
        self._healthy = _CountingHandler(settings, stats, "none", delivery)
        self._faulty = _CountingHandler(settings, stats, settings.fault, delivery)
        self._tls_kwargs: dict[str, Any] = {}
        if role == "mx" and tls_context is not None:
            self._tls_kwargs = {"tls_context": tls_context}
        elif role == "submission":
            self._tls_kwargs = {"tls_context": tls_context, "require_starttls": True,
                                "auth_required": True, "authenticator": authenticator}
        elif role == "smtps":  # the connection is TLS from its start
            self._tls_kwargs = {"auth_required": True, "auth_require_tls": False,
                                "authenticator": authenticator}

    def _fault_now(self) -> bool:
        s = self.settings
        return (s.fault != "none" and time.monotonic() - self.started >= s.fault_after
                and self._rng.random() < s.fault_ratio)

    def __call__(self) -> asyncio.Protocol:
        self.stats.smtp_connections += 1
        handler = self._healthy
        if self._fault_now():
            self.stats.smtp_faults += 1
            fault = self.settings.fault
            protocol = connection_fault(
                fault, garbage=b"\x00\xff garbage, not an SMTP greeting \xfe\r\n",
                greeting=f"220 mail.{self.settings.domain} ESMTP mailswarm\r\n".encode())
            if protocol is not None:
                return protocol
            if fault in _SESSION_FAULTS:
                return _SESSION_FAULTS[fault](
                    self._healthy, delay=self.settings.command_delay,
                    hostname=f"mail.{self.settings.domain}", ident="mailswarm", **self._tls_kwargs)
            handler = self._faulty
        kwargs: dict[str, Any] = {**self._tls_kwargs,
                                  "hostname": f"mail.{self.settings.domain}", "ident": "mailswarm"}
        if self.role != "mx" and self.settings.auth_fault == "echo":
            return _EchoAuthSMTP(handler, delay=self.settings.command_delay, **kwargs)
        if self.settings.command_delay > 0:
            return _DelayedSMTP(handler, delay=self.settings.command_delay, **kwargs)
        return SMTP(handler, **kwargs)
