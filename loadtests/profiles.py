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

Loading rejects unknown keys and reports every bad field with its path at once. Every number
has a finite range (infinity and NaN are refused everywhere): durations 0 to 30 days, rates up
to MAX_RATE (100,000 sessions/s, also for a rate derived from a population), users up to
100,000 per scenario (10,000,000 in a population), message sizes up to 64 MiB, `seed` a
non-negative 63-bit integer; the fields below give each bound.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from loadtests.configfile import Duration, RawCheck, StrictModel, load_yaml_model
from loadtests.delivery.settings import ENDPOINT_PROTOCOL, DeliverySettings
from loadtests.protocols import USER_KINDS, UserKindName, protocol_of, user_kind
from loadtests.protocols.settings import (
    DnsSettings,
    ImapSettings,
    MessageSize,
    Pop3Settings,
    SizeChoice,
    SmtpSettings,
    WebSettings,
)
from loadtests.schedule.population import Derived, derive
from loadtests.targets import Target

__all__ = [
    "EMBEDDED_DELIVERY_KNOBS",
    "ArrivalSchedule",
    "ClosedSchedule",
    "DnsSettings",
    "MessageSize",
    "Profile",
    "Scenario",
    "SizeChoice",
    "SmtpSettings",
    "check_against_target",
    "check_embedded_delivery",
    "load_profile",
]

SCHEDULE_KINDS = ("arrival", "closed", "ramp")
MAX_RATE = 100_000.0
"""Sessions (or users spawned) per second at most: far above one generator's reach, and finite,
so the pacer cannot be asked for an endless stream of tokens due at once."""


class Population(StrictModel):
    """The seed's model: `users` each checking `checks_per_user` times in `peak_window`,
    a check lasting `session_time`; the rate is users x checks / window (see population.py)."""

    users: int = Field(ge=1, le=10_000_000)
    checks_per_user: float = Field(gt=0, le=100_000)
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
    rate: float | None = Field(default=None, gt=0, le=MAX_RATE,
                               description="sessions started per second")
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
        if self.population is not None and self.sessions_per_s > MAX_RATE:
            raise ValueError(f"the population gives {self.sessions_per_s:,.0f} sessions/s; "
                             f"at most {MAX_RATE:,.0f}")
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
    spawn_rate: float | None = Field(default=None, gt=0, le=MAX_RATE)
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
    spawn_rate: float = Field(default=100.0, gt=0, le=MAX_RATE)
    stop_when: StopWhen = StopWhen()


Schedule = Annotated[ArrivalSchedule | ClosedSchedule | RampSchedule,
                     Field(discriminator="kind")]


class Scenario(StrictModel):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    user: UserKindName
    endpoint: str | None = None
    schedule: Schedule
    smtp: SmtpSettings = SmtpSettings()
    dns: DnsSettings = DnsSettings()
    pop3: Pop3Settings = Pop3Settings()
    imap: ImapSettings = ImapSettings()
    web: WebSettings = WebSettings()
    tls_share: float = Field(
        default=1.0, ge=0, le=1,
        description="share of sessions that use the endpoint's TLS (like Postal's -s), picked "
                    "evenly from the session count (the seed sets the phase); the others go "
                    "plain: STARTTLS skipped, or the implicit-TLS endpoint's plain_port. "
                    "SMTP, submission, POP3 and IMAP users")

    @property
    def protocol(self) -> str:
        """The protocol its sessions speak (from the registry)."""
        return protocol_of(self.user)

    @property
    def settings(self) -> StrictModel:
        """Its own settings section (`smtp:`, `pop3:`, `imap:` or `web:`)."""
        section: StrictModel = getattr(self, user_kind(self.user).section)
        return section


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
    name: str = Field(
        min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="letters, digits, `_`, `.` and `-`, starting with a letter or digit: it "
                    "names the default output folder reports/<name>-<time>, which must stay "
                    "inside reports/")
    description: str = ""
    duration: Duration = Field(default=30.0, gt=0)
    drain: Duration = Field(default=10.0, ge=0)
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    scenarios: list[Scenario] = Field(min_length=1)
    qos: QosSettings = QosSettings()
    delivery: DeliverySettings | None = Field(
        default=None, description="track the delivery of the mail SMTP scenarios send")
    embedded: dict[str, Any] = Field(
        default_factory=dict,
        description="settings of the embedded target, used when the run names no target file; "
                    "opaque here: the embedded target's launcher validates them "
                    "(`load_profile(path, checks=...)` lets the CLI report them with the rest)",
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


def _mail_scenarios(scenarios: list[Any]) -> dict[str, str]:
    """Scenario name -> user kind, of the raw scenarios that name both."""
    return {str(s["name"]): str(s["user"]) for s in scenarios
            if isinstance(s, dict) and s.get("name") is not None and s.get("user") is not None}


def _delivery_scenarios_known(data: Any) -> list[str]:
    """`delivery.scenarios` names scenarios of this profile that send mail (an SMTP user kind);
    a profile that tracks delivery has at least one such scenario."""
    delivery = data.get("delivery") if isinstance(data, dict) else None
    scenarios = data.get("scenarios")
    if not isinstance(delivery, dict) or not isinstance(scenarios, list):
        return []
    kinds = _mail_scenarios(scenarios)
    senders = [n for n, k in kinds.items() if k in USER_KINDS and protocol_of(k) == "smtp"]
    problems = []
    named = delivery.get("scenarios")
    for i, name in enumerate(named if isinstance(named, list) else []):
        if not isinstance(name, str):
            continue  # the model names the bad type
        if name not in kinds:
            problems.append(f"delivery.scenarios[{i}]: {name!r} is not a scenario of this "
                            f"profile (scenarios: {', '.join(kinds) or 'none'})")
        elif name not in senders:
            problems.append(f"delivery.scenarios[{i}]: {name!r} is a {kinds[name]} scenario; "
                            "only smtp and submission scenarios send mail to track")
    if not senders and kinds:
        problems.append("delivery: no scenario sends mail (user: smtp or submission), so "
                        "there is nothing to track")
    return problems


EMBEDDED_DELIVERY_KNOBS = ("delivery_delay", "drop_one_in", "corrupt_one_in",
                           "duplicate_one_in")
"""The embedded target's local delivery settings, which only act with `smtp_deliver: true`."""


def _embedded_delivery_knobs(data: Any) -> list[str]:
    """Local delivery's delay and faults in `embedded:` without `smtp_deliver: true` would
    silently do nothing."""
    embedded = data.get("embedded") if isinstance(data, dict) else None
    if not isinstance(embedded, dict) or embedded.get("smtp_deliver") is True:
        return []
    return [f"embedded.{knob}: acts only with `smtp_deliver: true` (the embedded target "
            "delivers nothing otherwise)"
            for knob in EMBEDDED_DELIVERY_KNOBS if embedded.get(knob) not in (None, 0, "0s")]


def check_embedded_delivery(profile: Profile) -> list[str]:
    """Against the embedded target (a run without a target file): a profile that tracks
    delivery must say whether the target delivers what it accepts (`embedded.smtp_deliver`),
    rather than have every message reported lost because it was left out."""
    if profile.delivery is None or "smtp_deliver" in profile.embedded:
        return []
    return ["embedded.smtp_deliver: required when the profile tracks delivery (`delivery:`) "
            "against the embedded target: true (the target puts accepted mail into the "
            "mailboxes its POP3 and IMAP serve) or false (it keeps nothing: every copy is lost)"]


def load_profile(path: str | Path, checks: Iterable[RawCheck] = ()) -> Profile:
    """The profile in `path`, or ConfigError naming every problem; `checks` add problems found
    on the raw data (the CLI checks the `embedded:` section this way)."""
    # the raw checks list duplicate names even when other fields are wrong too
    return load_yaml_model(Profile, path, tags=SCHEDULE_KINDS,
                           checks=[_unique_scenario_names, _one_scenario_per_ramp,
                                   _delivery_scenarios_known, _embedded_delivery_knobs,
                                   *checks])


def check_against_target(profile: Profile, target: Target) -> list[str]:
    """What the profile needs that the target does not offer, as `path: problem` lines."""
    problems = []
    for i, sc in enumerate(profile.scenarios):
        kind = user_kind(sc.user)
        wanted = sc.endpoint or sc.protocol
        ep = target.endpoint(wanted)
        if ep is None:
            problems.append(f"scenarios[{i}].endpoint: the target has no endpoint {wanted!r}")
        elif not kind.accepts(ep.protocol):
            problems.append(f"scenarios[{i}].endpoint: {wanted!r} is {ep.protocol}, the "
                            f"{sc.user} user needs {' or '.join(kind.endpoints)}")
        elif sc.tls_share < 1 and ep.tls == "implicit" and ep.plain_port is None:
            problems.append(f"scenarios[{i}].tls_share: {wanted!r} speaks implicit TLS and "
                            "has no plain_port for the plain sessions")
        elif sc.tls_share < 1 and sc.user == "submission" and ep.tls != "none" \
                and not ep.allow_plaintext_auth:
            problems.append(f"scenarios[{i}].tls_share: the plain sessions would AUTH in the "
                            f"clear: {wanted!r} needs allow_plaintext_auth: true")
        if kind.needs_dns(sc.settings) and target.endpoint("dns") is None:
            problems.append(f"scenarios[{i}].{kind.section}.{kind.needs_dns_when}: the target "
                            "has no dns endpoint")
    return problems + _delivery_against_target(profile, target)


def _delivery_against_target(profile: Profile, target: Target) -> list[str]:
    """The endpoint delivery tracking reads, present and of the protocol it speaks."""
    delivery = profile.delivery
    name = None if delivery is None else delivery.endpoint_name
    if delivery is None or name is None:
        return []
    wanted = ENDPOINT_PROTOCOL[delivery.find]
    ep = target.endpoint(name)
    if ep is None:
        return [f"delivery.endpoint: the target has no endpoint {name!r}"]
    if ep.protocol != wanted:
        return [f"delivery.endpoint: {name!r} is {ep.protocol}, find: {delivery.find} needs "
                f"{wanted}"]
    return []
