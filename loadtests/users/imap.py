"""IMAP users: `ImapIdleUser` holds long idle sessions, `ImapActiveUser` reads mail.

An idle user logs in, SELECTs INBOX and stays `hold` seconds in IDLE (or NOOP polling) — the
seed's corporate users who leave sessions open for hours — counting what the server pushes. When
the server drops it, the drop is recorded (a failed step and `sessions.IMAP.dropped`) and the user
reconnects after a back-off that doubles up to `reconnect.max`. When Locust stops the user, the
session sends DONE and LOGOUT before it goes (see loadtests.bridge).
"""

from __future__ import annotations

import time

import gevent

from loadtests.clients.imap import active_session, idle_session
from loadtests.clients.steps import StepRecorder
from loadtests.pacing import Token
from loadtests.sessions import gauge
from loadtests.users.base import ScenarioUser

__all__ = ["ImapActiveUser", "ImapIdleUser"]


class _ImapUser(ScenarioUser):
    abstract = True

    def mailbox(self) -> tuple[str, int, str, str]:
        endpoint = self.target.endpoint(self.scenario.endpoint or "imap")
        assert endpoint is not None, "checked against the profile before the run"
        user = self.target.users.name(self.number % self.target.users.count)
        return endpoint.host, endpoint.port, user, self.target.secret() or ""

    def recorder(self) -> StepRecorder:
        """Steps go to the stream as they happen: an idle session may last hours."""
        return StepRecorder("IMAP", on_step=self.fire)

    def report(self, rec: StepRecorder, token: Token | None, started: tuple[float, float],
               length: int = 0) -> None:
        error = next((s.error for s in rec.steps if s.error is not None), None)
        self.fire_session("IMAP", token, started[0], started[1], error, length)


class ImapIdleUser(_ImapUser):
    abstract = True
    kind = "imap-idle"

    def on_start(self) -> None:
        self.backoff = 0.0

    def iteration(self, token: Token | None) -> None:
        settings = self.scenario.imap
        host, port, user, password = self.mailbox()
        started = (time.time(), time.monotonic())
        rec = self.recorder()
        result = self.run_session("IMAP", idle_session(
            host, port, user, password, rec=rec, hold=settings.hold, mode=settings.mode,
            noop_interval=settings.noop_interval, idle_rearm=settings.idle_rearm,
            connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout))
        self.report(rec, token, started)
        if result.dropped or result.failed:
            if result.dropped:
                gauge.dropped("IMAP")
            self.backoff = min(settings.reconnect.max,
                               self.backoff * 2 if self.backoff else settings.reconnect.first)
            gevent.sleep(self.backoff * (0.5 + self.rng.random()))  # jittered: no stampede
        else:
            self.backoff = 0.0


class ImapActiveUser(_ImapUser):
    abstract = True
    kind = "imap-active"

    def iteration(self, token: Token | None) -> None:
        settings = self.scenario.imap
        host, port, user, password = self.mailbox()
        started = (time.time(), time.monotonic())
        rec = self.recorder()
        result = self.run_session("IMAP", active_session(
            host, port, user, password, rec=rec, rng=self.rng, actions=settings.actions,
            search=settings.search, flag_changes=settings.flag_changes, expunge=settings.expunge,
            connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout))
        if result.dropped:
            gauge.dropped("IMAP")
        self.report(rec, token, started, result.bytes)
