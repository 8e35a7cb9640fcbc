"""Profiles: what load to run (scenarios, each a user behaviour plus a schedule), as typed objects.

A profile (YAML)::

    name: smtp-50mps
    duration: 30s
    scenarios:
      - name: smtp
        user: smtp
        schedule: {kind: arrival, rate: 50, process: fixed, max_in_flight: 100}
        smtp: {messages_per_session: 1, size: {fixed: 2KiB}, mx_lookup: true}
        dns: {max_concurrent: 20, cache: false}

Loading rejects unknown keys and reports every bad field with its path at once.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from loadtests.configfile import ByteSize, Duration, StrictModel, load_yaml_model
from loadtests.embedded.config import EmbeddedSettings
from loadtests.schedule.population import Derived, derive
from loadtests.targets import Target

__all__ = [
    "ArrivalSchedule",
    "ClosedSchedule",
    "DnsSettings",
    "MessageSize",
    "Profile",
    "Scenario",
    "SizeChoice",
    "SmtpSettings",
    "check_against_target",
    "load_profile",
]

SCHEDULE_KINDS = ("arrival", "closed", "ramp")
USER_KINDS = ("smtp", "pop3", "imap-idle", "imap-active", "webuser")
PROTOCOL_OF_USER = {"smtp": "smtp", "pop3": "pop3", "imap-idle": "imap", "imap-active": "imap",
                    "webuser": "http"}


class Population(StrictModel):
    """The seed's model: `users` each checking `checks_per_user` times in `peak_window`,
    a check lasting `session_time`; the rate is users x checks / window (see population.py)."""

    users: int = Field(ge=1)
    checks_per_user: float = Field(gt=0)
    session_time: Duration = Field(gt=0)
    peak_window: Duration = Field(gt=0)

    def derived(self) -> Derived:
        return derive(self.users, self.checks_per_user, self.session_time, self.peak_window)


class Bursts(StrictModel):
    """`share` of the sessions start together at the top of every `every` (over `spread`)."""

    share: float = Field(gt=0, le=1)
    every: Duration = Field(default=60.0, gt=0)
    spread: Duration = Field(default=1.0, ge=0)


class ArrivalSchedule(StrictModel):
    """Open model: sessions start at a rate whatever the target does (k6 constant-arrival-rate).

    `max_in_flight` caps sessions running at once (a mail server's "SMTP channels"). A session due
    while all are busy waits for one up to `max_wait`, then is counted as dropped (0: dropped at
    once, as k6 does). One that starts more than `late_after` after its intended time is counted
    as late. Latency of whole sessions is measured from the intended time.
    """

    kind: Literal["arrival"]
    rate: float | None = Field(default=None, gt=0, description="sessions started per second")
    population: Population | None = Field(
        default=None, description="derive the rate from a user population (instead of rate)")
    process: Literal["fixed", "poisson"] = "fixed"
    bursts: Bursts | None = None
    max_in_flight: int = Field(default=100, ge=1, le=20000)
    late_after: Duration = Field(default=0.05, gt=0)
    max_wait: Duration = Field(default=1.0, ge=0)

    @model_validator(mode="after")
    def _rate_or_population(self) -> ArrivalSchedule:
        if (self.rate is None) == (self.population is None):
            raise ValueError("give exactly one of rate or population")
        return self

    @property
    def sessions_per_s(self) -> float:
        if self.population is not None:
            return self.population.derived().rate_per_s
        assert self.rate is not None
        return self.rate


class ClosedSchedule(StrictModel):
    """Closed model: a fixed number of users, each starting its next session after think time."""

    kind: Literal["closed"]
    users: int = Field(ge=1, le=100000)
    spawn_rate: float | None = Field(default=None, gt=0)
    think_time: Duration = 0.0


class StopWhen(StrictModel):
    """When a ramp step counts as failed: too many failed requests in the step, or too slow."""

    failure_percent: float = Field(default=1.0, ge=0, le=100)
    latency_percentile: float = Field(default=95.0, gt=0, le=100)
    latency_over: Duration = Field(default=5.0, gt=0)


class RampSchedule(StrictModel):
    """Ceiling search: `start` users, then `step` more every `hold` seconds (counted from when a
    step's users are all spawned) up to `max`; the run stops at the first step that fails
    `stop_when`, and the ceiling is the last good step. A ramp profile has one scenario."""

    kind: Literal["ramp"]
    start: int = Field(ge=1, le=100000)
    step: int = Field(ge=1, le=100000)
    max: int = Field(ge=1, le=100000)
    hold: Duration = Field(default=10.0, gt=0)
    spawn_rate: float = Field(default=100.0, gt=0)
    stop_when: StopWhen = StopWhen()


Schedule = Annotated[ArrivalSchedule | ClosedSchedule | RampSchedule,
                     Field(discriminator="kind")]


class SizeChoice(StrictModel):
    size: ByteSize = Field(ge=0)
    weight: float = Field(gt=0)


class MessageSize(StrictModel):
    """`fixed: 2KiB`, or `choices: [{size: 2KiB, weight: 8}, {size: 40KiB, weight: 2}]`."""

    fixed: ByteSize | None = Field(default=None, ge=0)
    choices: list[SizeChoice] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_of(self) -> MessageSize:
        if (self.fixed is None) == (self.choices is None):
            raise ValueError("give exactly one of fixed or choices")
        return self

    def draw(self, rng: random.Random) -> int:
        if self.fixed is not None:
            return self.fixed
        assert self.choices is not None
        return rng.choices([c.size for c in self.choices], [c.weight for c in self.choices])[0]


class SmtpSettings(StrictModel):
    messages_per_session: int = Field(default=1, ge=1, le=100000)
    recipients_per_message: int = Field(default=1, ge=1, le=1000)
    size: MessageSize = MessageSize(fixed=2048)
    mx_lookup: bool = True
    connect_to: Literal["mx", "endpoint"] = Field(
        default="mx",
        description="mx: the address the MX lookup gave, on the endpoint's port; "
                    "endpoint: the endpoint's own address",
    )
    connect_timeout: Duration = Field(default=10.0, gt=0)
    command_timeout: Duration = Field(default=30.0, gt=0)


class DnsSettings(StrictModel):
    max_concurrent: int = Field(default=20, ge=1, le=10000)
    cache: bool = False
    timeout: Duration = Field(default=5.0, gt=0)
    aaaa: bool = False


class Pop3Settings(StrictModel):
    """A check-mail session: log in, STAT/UIDL, RETR what is new, QUIT."""

    retrieve: Literal["new", "all", "none"] = "new"
    delete: bool = Field(default=False, description="DELE what was retrieved (else leave mail)")
    apop: bool = False
    session_time: Duration | None = Field(
        default=None, ge=0,
        description="hold each session about this long before QUIT, like a slow real client "
                    "(default: the population's session_time, else no holding)")
    connect_timeout: Duration = Field(default=10.0, gt=0)
    read_timeout: Duration = Field(default=30.0, gt=0)


class Backoff(StrictModel):
    first: Duration = Field(default=1.0, gt=0)
    max: Duration = Field(default=60.0, gt=0)


class ImapSettings(StrictModel):
    """imap-idle: log in, SELECT INBOX, stay `hold` in IDLE (or NOOP polling), LOGOUT.
    imap-active: a mail-reading session of `actions` FETCH/SEARCH/STORE steps."""

    mode: Literal["idle", "noop"] = "idle"
    hold: Duration = Field(default=60.0, gt=0, description="how long an idle session stays")
    noop_interval: Duration = Field(default=60.0, gt=0)
    idle_rearm: Duration = Field(default=25 * 60.0, gt=0, le=29 * 60.0)
    reconnect: Backoff = Backoff()
    actions: int = Field(default=5, ge=1, le=1000)
    search: bool = True
    flag_changes: bool = True
    expunge: bool = False
    connect_timeout: Duration = Field(default=10.0, gt=0)
    read_timeout: Duration = Field(default=30.0, gt=0)


class WebSettings(StrictModel):
    """A webmail session: log in, open the inbox, poll, open messages, sometimes send, log out."""

    app: Literal["embedded", "roundcube"] = "embedded"
    connection: Literal["keep-alive", "close"] = "close"
    session_length: Duration = Field(default=300.0, gt=0)
    poll_interval: Duration = Field(default=60.0, gt=0)
    open_message_ratio: float = Field(default=0.3, ge=0, le=1)
    send_ratio: float = Field(default=0.05, ge=0, le=1)
    request_timeout: Duration = Field(default=30.0, gt=0)


class Scenario(StrictModel):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    user: Literal["smtp", "pop3", "imap-idle", "imap-active", "webuser"]
    endpoint: str | None = None
    schedule: Schedule
    smtp: SmtpSettings = SmtpSettings()
    dns: DnsSettings = DnsSettings()
    pop3: Pop3Settings = Pop3Settings()
    imap: ImapSettings = ImapSettings()
    web: WebSettings = WebSettings()

    @property
    def protocol(self) -> str:
        return PROTOCOL_OF_USER[self.user]


class QosSettings(StrictModel):
    """The verdict a run must pass (SPECmail-style defaults): for each protocol step, more than
    `percent` % of operations finish under `under`, and errors stay under `max_error_percent` %.
    `steps` overrides `under` per step, e.g. {"SMTP DATA": 10s, "IMAP session": 60s}."""

    percent: float = Field(default=95.0, gt=0, le=100)
    under: Duration = Field(default=5.0, gt=0)
    max_error_percent: float = Field(default=1.0, ge=0, le=100)
    steps: dict[str, Duration] = {}
    exclude: list[str] = Field(
        default=["session"],
        description="step names not judged by time (whole sessions of idle users last hours)")


class Profile(StrictModel):
    name: str = Field(min_length=1)
    description: str = ""
    duration: Duration = Field(default=30.0, gt=0)
    drain: Duration = Field(default=10.0, ge=0)
    seed: int | None = None
    scenarios: list[Scenario] = Field(min_length=1)
    qos: QosSettings = QosSettings()
    embedded: EmbeddedSettings = Field(
        default=EmbeddedSettings(),
        description="settings of the embedded target, used when the run names no target file",
    )



def _one_scenario_per_ramp(data: Any) -> list[str]:
    scenarios = data.get("scenarios") if isinstance(data, dict) else None
    if not isinstance(scenarios, list) or len(scenarios) < 2:
        return []
    if any(isinstance(s, dict) and isinstance(s.get("schedule"), dict)
           and s["schedule"].get("kind") == "ramp" for s in scenarios):
        return ["scenarios: a ramp (ceiling search) profile has exactly one scenario"]
    return []


def _unique_scenario_names(data: Any) -> list[str]:
    scenarios = data.get("scenarios") if isinstance(data, dict) else None
    if not isinstance(scenarios, list):
        return []
    names = [s.get("name") for s in scenarios if isinstance(s, dict) and s.get("name")]
    dupes = sorted({str(n) for n in names if names.count(n) > 1})
    return [f"scenarios: names must be unique; repeated: {', '.join(dupes)}"] if dupes else []


def load_profile(path: str | Path) -> Profile:
    # the raw check lists duplicate names even when other fields are wrong too
    return load_yaml_model(Profile, path, tags=SCHEDULE_KINDS,
                           checks=[_unique_scenario_names, _one_scenario_per_ramp])


def check_against_target(profile: Profile, target: Target) -> list[str]:
    """What the profile needs that the target does not offer, as `path: problem` lines."""
    problems = []
    for i, sc in enumerate(profile.scenarios):
        wanted = sc.endpoint or sc.protocol
        ep = target.endpoint(wanted)
        if ep is None:
            problems.append(f"scenarios[{i}].endpoint: the target has no endpoint {wanted!r}")
        elif ep.protocol != sc.protocol:
            problems.append(f"scenarios[{i}].endpoint: {wanted!r} is {ep.protocol}, the "
                            f"{sc.user} user needs {sc.protocol}")
        if sc.user == "smtp" and sc.smtp.mx_lookup and target.endpoint("dns") is None:
            problems.append(f"scenarios[{i}].smtp.mx_lookup: the target has no dns endpoint")
    return problems
