"""`Pop3CheckMailUser`: one iteration is one check-mail session of a random user of the target.

CONNECT, USER/PASS (or APOP), STAT, LIST, UIDL, RETR what is new (DELE when the profile says so),
QUIT — each a POP3 step — and one `POP3 session` record. With `session_time` (or a population's)
the session is held open that long before QUIT, as a real client on a slow line keeps it, so
the concurrency the seed's formula predicts can be measured. Mail left on the server is
remembered per mailbox (UIDL), like a client's "leave mail on server" setting.
"""

from __future__ import annotations

import time
from typing import ClassVar

from loadtests.clients.pop3 import check_mail
from loadtests.clients.steps import StepRecorder
from loadtests.profiles import ArrivalSchedule
from loadtests.schedule.pacing import Token
from loadtests.users.base import ScenarioUser

__all__ = ["Pop3CheckMailUser"]


class Pop3CheckMailUser(ScenarioUser):
    abstract = True
    kind = "pop3"
    _known: ClassVar[dict[str, set[str]]]  # mailbox -> UIDs its client has already fetched

    def on_start(self) -> None:
        cls = type(self)
        if "_known" not in cls.__dict__:
            cls._known = {}

    def hold(self) -> float:
        settings, schedule = self.scenario.pop3, self.scenario.schedule
        if settings.session_time is not None:
            return settings.session_time
        if isinstance(schedule, ArrivalSchedule) and schedule.population is not None:
            return schedule.population.session_time
        return 0.0

    def iteration(self, token: Token | None) -> None:
        started_wall, started_mono = time.time(), time.monotonic()
        settings = self.scenario.pop3
        endpoint = self.target.endpoint(self.scenario.endpoint or "pop3")
        assert endpoint is not None, "checked against the profile before the run"
        user = self.target.users.name(self.rng.randrange(self.target.users.count))
        port, tls = self.session_tls(endpoint, resume=settings.tls_resume)
        rec = StepRecorder("POP3", on_step=self.fire)  # recorded as they happen
        result = self.run_session("POP3", check_mail(
            endpoint.host, port, user, self.target.secret() or "", rec=rec,
            retrieve=settings.retrieve, delete=settings.delete,
            known_uids=self._known.get(user), use_apop=settings.apop, auth=settings.auth,
            tls=tls,
            connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout,
            hold=self.hold()))
        if settings.retrieve == "new":
            self._known[user] = result.known_uids
        self.fire_session("POP3", token, started_wall, started_mono, result.error,
                          result.retrieved_bytes)
