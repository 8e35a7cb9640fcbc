"""`SmtpUser`: one iteration is one SMTP session, preceded by the MX lookup a mail server does.

Records: DNS `MX` and `A` steps, SMTP `CONNECT`, `EHLO`, `MAIL`, `RCPT`, `DATA`, `QUIT` steps
(and `STARTTLS`, `TLS` on a TLS endpoint; `AUTH` for a submission user), and one `SMTP session`
record timed from the intended start (open model) or the actual start. An MX answer off loopback
(without --allow-remote) is a failed `CONNECT` (RemoteAddressRefused) and a failed session,
after the DNS steps that led there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from functools import lru_cache
from typing import Any, ClassVar

from loadtests.clients.dns import MxResolver
from loadtests.clients.message import new_message_id
from loadtests.clients.smtp import Envelope, SmtpAuth, SmtpOptions, send_session
from loadtests.clients.steps import StepRecorder
from loadtests.clients.tls import endpoint_tls
from loadtests.schedule.pacing import Token
from loadtests.targets import Endpoint, is_loopback
from loadtests.users.base import ScenarioUser

__all__ = ["RemoteAddressRefused", "SmtpUser"]

_is_loopback = lru_cache(maxsize=1024)(is_loopback)  # parsing the address costs ~4 µs a session


class RemoteAddressRefused(ConnectionRefusedError):
    """The MX lookup pointed off this machine and --allow-remote was not given."""


class SmtpUser(ScenarioUser):
    abstract = True
    kind = "smtp"
    _resolver: ClassVar[MxResolver | None] = None
    _options: ClassVar[SmtpOptions | None] = None
    mx_lookups: ClassVar[bool] = True  # a mail server looks the domain's MX up; a client not

    @classmethod
    def resolver(cls) -> MxResolver:
        """One resolver per scenario class and process, so the concurrency cap is shared."""
        if cls.__dict__.get("_resolver") is None:
            dns_ep = cls.target.endpoint("dns")
            assert dns_ep is not None, "checked against the profile before the run"
            settings = cls.scenario.dns
            cls._resolver = MxResolver(
                dns_ep.host, dns_ep.port, max_concurrent=settings.max_concurrent,
                cache=settings.cache, timeout=settings.timeout, aaaa=settings.aaaa,
            )
        assert cls._resolver is not None
        return cls._resolver

    @classmethod
    def smtp_options(cls) -> SmtpOptions:
        """The client's options, the same for every session of the scenario: made once."""
        options = cls.__dict__.get("_options")
        if options is None:
            smtp = cls.scenario.smtp
            endpoint = cls.endpoint()
            options = cls._options = SmtpOptions(
                sender=cls.target.sender, connect_timeout=smtp.connect_timeout,
                command_timeout=smtp.command_timeout, pipelining=smtp.pipelining,
                tls=endpoint_tls(endpoint.host, endpoint.port, endpoint.tls_options(),
                                 resume=smtp.tls_resume))
        return options

    @classmethod
    def endpoint(cls) -> Endpoint:
        endpoint = cls.target.endpoint(cls.scenario.endpoint or "smtp")
        assert endpoint is not None, "checked against the profile before the run"
        return endpoint

    def auth(self) -> SmtpAuth | None:
        """The credentials a session authenticates with (None: an unauthenticated MTA)."""
        return None

    def envelopes(self) -> list[Envelope]:
        smtp, users, domain = self.scenario.smtp, self.target.users, self.target.domain
        return [
            Envelope(
                recipients=[f"{users.name(self.rng.randrange(users.count))}@{domain}"
                            for _ in range(smtp.recipients_per_message)],
                size=smtp.size.draw(self.rng),
                message_id=new_message_id(),
            )
            for _ in range(smtp.messages_per_session)
        ]

    async def _session(self, envelopes: list[Envelope]) -> tuple[StepRecorder, StepRecorder]:
        smtp = self.scenario.smtp
        endpoint = self.endpoint()
        dns_rec, smtp_rec = StepRecorder("DNS"), StepRecorder("SMTP")
        host = endpoint.host
        if smtp.mx_lookup and self.mx_lookups:
            try:
                _name, addresses = await self.resolver().resolve_mail_host(
                    self.target.domain, dns_rec)
            except Exception:
                return dns_rec, smtp_rec  # recorded as a failed DNS step
            if smtp.connect_to == "mx":
                host = addresses[0]
        if not (self.allow_remote or _is_loopback(host)):
            # a failed CONNECT step (the session fails with this cause), DNS steps kept
            with contextlib.suppress(RemoteAddressRefused):
                await smtp_rec.step("CONNECT", _refuse(host))
        else:
            options, port = self.smtp_options(), endpoint.port
            if options.tls is not None and self.scenario.tls_share < 1:
                port, tls = self.session_tls(endpoint, resume=smtp.tls_resume)
                if tls is None:  # one of the sessions tls_share leaves plain
                    options = dataclasses.replace(options, tls=None)
            await send_session(host, port, envelopes, options, smtp_rec, self.auth())
        return dns_rec, smtp_rec

    def iteration(self, token: Token | None) -> None:
        started_wall, started_mono = time.time(), time.monotonic()
        envelopes = self.envelopes()
        dns_rec, smtp_rec = self.run_session("SMTP", self._session(envelopes))
        error: BaseException | None = None
        messages = iter(envelopes)  # DATA steps come in envelope order
        requests = []
        for step in (*dns_rec.steps, *smtp_rec.steps):
            if step.name == "DATA" and step.protocol == "SMTP":
                env = next(messages)  # its id and recipients: delivery tracking's `sent`
                requests.append(self.request(step, {"message_id": env.message_id,
                                                    "rcpt": env.recipients}))
            else:
                requests.append(self.request(step))
            error = error or step.error
        if not smtp_rec.steps and error is None:
            error = RuntimeError("session ended before connecting")
        sent = sum(s.length for s in smtp_rec.steps if s.name == "DATA" and s.error is None)
        requests.append(self.session_request("SMTP", token, started_wall, started_mono, error,
                                             sent))
        self.fire_all(requests)


async def _refuse(host: str) -> Any:
    raise RemoteAddressRefused(f"the MX answer {host} is not a loopback address; pass "
                               "--allow-remote to use it")
