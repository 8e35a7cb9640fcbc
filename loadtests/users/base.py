"""The base of every mailswarm Locust user: one task that runs one iteration when the schedule
says so, and turns the client's timed steps into Locust request events."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar

from locust import User, constant, task

from loadtests import bridge
from loadtests.clients.steps import Step
from loadtests.clients.tls import TlsConfig, endpoint_tls, picks_tls
from loadtests.profiles import ArrivalSchedule, RampSchedule, Scenario
from loadtests.protocols import user_class
from loadtests.schedule.pacing import ArrivalPacer, Token
from loadtests.schedule.sessions import gauge
from loadtests.targets import Endpoint, Target
from loadtests.users.requests import Request, fire_requests

T = TypeVar("T")

__all__ = ["ScenarioUser", "scenario_attrs", "user_class_for"]


class ScenarioUser(User):
    """Abstract: subclasses implement `iteration(token)` and set `kind` (the profile's `user:`)."""

    abstract = True
    kind: ClassVar[str] = ""
    scenario: ClassVar[Scenario]
    target: ClassVar[Target]
    pacer: ClassVar[ArrivalPacer | None] = None
    allow_remote: ClassVar[bool] = False
    seed: ClassVar[int | None] = None
    _numbers: ClassVar[itertools.count[int]]
    _sessions: ClassVar[itertools.count[int]]  # sessions started: which use TLS (tls_share)
    _tls_phase: ClassVar[float] = 0.0

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.number = next(type(self)._numbers)
        self._rng: random.Random | None = None

    @property
    def rng(self) -> random.Random:
        """This user's random numbers, reproducible with the profile's seed; made on first use
        (a Random is ~3 KB, and an idle IMAP user never needs one)."""
        if self._rng is None:
            seed = None if self.seed is None else f"{self.seed}/{self.scenario.name}/{self.number}"
            self._rng = random.Random(seed)
        return self._rng

    @task
    def _one_iteration(self) -> None:
        pacer = self.pacer
        if pacer is None:
            self.iteration(None)
            return
        token = pacer.take()
        completed = False
        try:
            self.iteration(token)
            completed = True
        finally:
            pacer.finish(completed)

    def iteration(self, token: Token | None) -> None:
        raise NotImplementedError

    def session_tls(self, endpoint: Endpoint, *, resume: bool) -> tuple[int, TlsConfig | None]:
        """The port and TLS of the next session: the endpoint's TLS for the scenario's
        `tls_share` of sessions (picked evenly by the session count, the seed setting the
        phase), else plain — STARTTLS skipped, or an implicit-TLS endpoint's `plain_port`."""
        config = endpoint_tls(endpoint.host, endpoint.port, endpoint.tls_options(),
                              resume=resume)
        share = self.scenario.tls_share
        if config is None or share >= 1.0:
            return endpoint.port, config
        cls = type(self)
        if picks_tls(share, next(cls._sessions), cls._tls_phase):
            return endpoint.port, config
        if endpoint.tls == "implicit":
            assert endpoint.plain_port is not None, "checked against the profile before the run"
            return endpoint.plain_port, None
        return endpoint.port, None

    def run_session(self, protocol: str, coro: Coroutine[Any, Any, T]) -> T:
        """Run one client session on the bridge, counted as an open `protocol` session."""
        gauge.opening(protocol)
        try:
            return bridge.run(coro)
        finally:
            gauge.closed(protocol)

    # -- recording -------------------------------------------------------------------------
    def request(self, step: Step, extra: dict[str, Any] | None = None) -> Request:
        """The step's request event (its `events.request` keyword arguments); `extra` adds to
        its context (e.g. a message's id)."""
        context: dict[str, Any] = {"scenario": self.scenario.name} if extra is None else \
            {"scenario": self.scenario.name, **extra}
        if step.info is not None:  # a TLS step: its version and cipher (loadtests.stream.tls)
            context["tls_version"] = step.info.get("version")
            context["tls_cipher"] = step.info.get("cipher")
        return {"request_type": step.protocol, "name": step.name, "response_time": step.ms,
                "response_length": step.length, "exception": step.error,
                "start_time": step.started, "context": context, "response": None, "url": None}

    def session_request(self, protocol: str, token: Token | None, started_wall: float,
                        started_mono: float, error: BaseException | None,
                        length: int = 0) -> Request:
        """The request event of the whole session, timed from the intended start in the open
        model."""
        now = time.monotonic()
        context: dict[str, Any] = {"scenario": self.scenario.name}
        if token is not None:
            elapsed, start = now - token.mono, token.wall
            context["lag_ms"] = round(token.lag * 1000, 3)
        else:
            elapsed, start = now - started_mono, started_wall
        return {"request_type": protocol, "name": "session", "response_time": elapsed * 1000,
                "response_length": length, "exception": error, "start_time": start,
                "context": context, "response": None, "url": None}

    def fire(self, step: Step, extra: dict[str, Any] | None = None) -> None:
        """The step's request event, now (a long session reports its steps as they end)."""
        self.environment.events.request.fire(**self.request(step, extra))

    def fire_session(self, protocol: str, token: Token | None, started_wall: float,
                     started_mono: float, error: BaseException | None, length: int = 0) -> None:
        """One record for the whole session, timed from the intended start in the open model."""
        self.environment.events.request.fire(**self.session_request(
            protocol, token, started_wall, started_mono, error, length))

    def fire_all(self, requests: list[Request]) -> None:
        """A finished session's request events at once (see loadtests.users.requests)."""
        fire_requests(self.environment.events.request, requests)


def user_class_for(scenario: Scenario, target: Target, *, pacer: ArrivalPacer | None,
                   allow_remote: bool, seed: int | None) -> type[ScenarioUser]:
    """A concrete Locust user class for one scenario, its count fixed by the schedule."""
    base = user_class(scenario.user)
    assert issubclass(base, ScenarioUser) and base.kind == scenario.user, base
    attrs = {"abstract": False, "__module__": __name__,
             **scenario_attrs(scenario, target, pacer=pacer, allow_remote=allow_remote,
                              seed=seed)}
    return type(f"{base.__name__}_{scenario.name}", (base,), attrs)


def scenario_attrs(scenario: Scenario, target: Target, *, pacer: ArrivalPacer | None,
                   allow_remote: bool, seed: int | None) -> dict[str, Any]:
    """The class attributes that make a `ScenarioUser` class run `scenario` against `target`:
    what `user_class_for` builds a profile's class from and a locustfile's class is configured
    with (loadtests.locust); the count is fixed by the schedule."""
    schedule = scenario.schedule
    if isinstance(schedule, ArrivalSchedule):
        count, wait = schedule.max_in_flight, constant(0)
    elif isinstance(schedule, RampSchedule):
        count, wait = 0, constant(0)  # the ceiling shape sets the count, step by step
    else:
        count, wait = schedule.users, constant(schedule.think_time)
    return {"scenario": scenario, "target": target, "pacer": pacer,
            "allow_remote": allow_remote, "seed": seed, "fixed_count": count,
            "wait_time": wait, "_numbers": itertools.count(), "_sessions": itertools.count(),
            "_tls_phase": 0.0 if seed is None else
            random.Random(f"{seed}/{scenario.name}/tls").random()}
