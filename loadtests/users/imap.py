"""IMAP users: `ImapIdleUser` holds long idle sessions, `ImapActiveUser` reads mail.

An idle user logs in, SELECTs INBOX and stays `hold` seconds in IDLE (or NOOP polling) — the
seed's corporate users who leave sessions open for hours — counting what the server pushes. When
the server drops it, the drop is recorded (a failed step and `sessions.IMAP.dropped`) and the user
reconnects after a back-off that doubles up to `reconnect.max`. When Locust stops the user, the
session sends DONE and LOGOUT before it goes (see loadtests.bridge).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent

from loadtests.clients.imap import (
    ActiveResult,
    ImapClient,
    MailboxInfo,
    active_session,
    idle_session,
    read_mail,
)
from loadtests.clients.steps import StepRecorder
from loadtests.clients.tls import TlsConfig
from loadtests.schedule.pacing import Token
from loadtests.schedule.sessions import gauge
from loadtests.users.base import ScenarioUser

__all__ = ["ImapActiveUser", "ImapIdleUser"]


class _ImapUser(ScenarioUser):
    abstract = True

    def mailbox(self) -> tuple[str, int, TlsConfig | None, str, str]:
        """Host, port and TLS of the next session (tls_share), the user and the password."""
        endpoint = self.target.endpoint(self.scenario.endpoint or "imap")
        assert endpoint is not None, "checked against the profile before the run"
        port, tls = self.session_tls(endpoint, resume=self.scenario.imap.tls_resume)
        user = self.target.users.name(self.number % self.target.users.count)
        return endpoint.host, port, tls, user, self.target.secret() or ""

    def recorder(self) -> StepRecorder:
        """Steps go to the stream as they happen and only failed ones are kept: an idle
        session may last hours (a step per IDLE re-arm or NOOP)."""
        return StepRecorder("IMAP", on_step=self.fire, failures_only=True)

    def session(self, token: Token | None, client_session: Callable[..., Any],
                **options: Any) -> Any:
        """Run one client session (idle_session or active_session) to its end, record it as
        an IMAP session, and count it dropped when the server ended it."""
        settings = self.scenario.imap
        host, port, tls, user, password = self.mailbox()
        started_wall, started_mono = time.time(), time.monotonic()
        rec = self.recorder()
        result = self.run_session("IMAP", client_session(
            host, port, user, password, rec=rec, connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout, tls=tls, auth=settings.auth, **options))
        if result.dropped:
            gauge.dropped("IMAP")
        error = next((s.error for s in rec.steps if s.error is not None), None)
        self.fire_session("IMAP", token, started_wall, started_mono, error,
                          getattr(result, "bytes", 0))
        return result


class ImapIdleUser(_ImapUser):
    abstract = True
    kind = "imap-idle"

    def on_start(self) -> None:
        self.backoff = 0.0

    def iteration(self, token: Token | None) -> None:
        settings = self.scenario.imap
        result = self.session(token, idle_session, hold=settings.hold, mode=settings.mode,
                              noop_interval=settings.noop_interval,
                              idle_rearm=settings.idle_rearm)
        if result.dropped or result.failed:
            self.backoff = min(settings.reconnect.max,
                               self.backoff * 2 if self.backoff else settings.reconnect.first)
            gevent.sleep(self.backoff * (0.5 + self.rng.random()))  # jittered: no stampede
        else:
            self.backoff = 0.0


class ImapActiveUser(_ImapUser):
    abstract = True
    kind = "imap-active"

    def iteration(self, token: Token | None) -> None:
        self.session(token, active_session, rng=self.rng, after_select=self.after_select)

    async def after_select(self, client: ImapClient, rec: StepRecorder, info: MailboxInfo,
                           result: ActiveResult) -> None:
        """What the session does between SELECT INBOX and LOGOUT: the profile's `actions`
        read rounds. Override it for other behaviour: time each command with
        `await rec.step("NAME", client.command(...))` and fill `result` as it goes."""
        settings = self.scenario.imap
        await read_mail(client, rec, self.rng, info, result, actions=settings.actions,
                        search=settings.search, flag_changes=settings.flag_changes,
                        expunge=settings.expunge)
