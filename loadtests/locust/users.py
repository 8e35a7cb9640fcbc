"""mailswarm's users for a locustfile: the classes a profile run uses, configured the Locust way.

Subclass one, give it a `host` (or pass `--host`), and Locust runs it::

    from loadtests.locust import SmtpUser

    class Mail(SmtpUser):
        host = "smtp://127.0.0.1:20025"
        dns_host = "dns://127.0.0.1:20053"   # the MX lookups' server
        smtp = {"messages_per_session": 1, "size": {"fixed": 2048}}
        arrival_rate = 50                    # open model (needs loadtests.locust.plugin)

Class attributes: the settings sections of a profile scenario (`smtp`, `dns`, `pop3`, `imap`,
`web`: a dict or the settings model); the open model's `arrival_rate` with `max_in_flight`,
`arrival_max_wait`, `arrival_late_after`, `arrival_process`, or `schedule` (a profile's
schedule as a dict: arrival, closed or ramp; without either, Locust's users, `wait_time` and
weights decide); `domain`, `mailboxes` (`{"pattern": "user{n:04d}", "count": 1000}`),
`password_env` (the environment variable holding the mailboxes' password), `scenario_name`,
`seed`, `target_endpoint` (the name of a `--mailswarm-target` file's endpoint to use). The
`--mailswarm-*` options (loadtests.locust.config) add a target file, a profile scenario and
the DNS server. Each class is configured once per process: on Locust's `init` event (local and
master), on its first user in a worker (which gets the master's options with its spawn
message). The bridge starts itself on `init`.
"""

from __future__ import annotations

import random
import sys
from typing import Any, ClassVar

from locust import User, constant, events
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests import bridge
from loadtests.locust.config import (
    ConfigurationError,
    add_arguments,
    locust_schedules,
    scenario_for,
    target_for,
)
from loadtests.profiles import ArrivalSchedule, Profile
from loadtests.schedule.loadplan import arrival_rng as schedule_rng
from loadtests.schedule.loadplan import spawn_rate
from loadtests.schedule.pacing import ArrivalPacer
from loadtests.users import imap as imap_users
from loadtests.users import pop3 as pop3_users
from loadtests.users import smtp as smtp_users
from loadtests.users import submission as submission_users
from loadtests.users import webuser as web_users
from loadtests.users.base import ScenarioUser, scenario_attrs

__all__ = ["ImapActiveUser", "ImapIdleUser", "LocustfileUser", "Pop3CheckMailUser", "SmtpUser",
           "SubmissionUser", "WebUser", "arrival_rng", "configure_all"]

PLUGIN_MODULE = "loadtests.locust.plugin"


class LocustfileUser(ScenarioUser):
    """The locustfile side of every mailswarm user: class attributes -> scenario and target."""

    abstract = True
    wait_time = constant(0)
    scenario_name: ClassVar[str | None] = None
    schedule: ClassVar[dict[str, Any] | None] = None
    arrival_rate: ClassVar[float | None] = None
    arrival_process: ClassVar[str] = "fixed"
    max_in_flight: ClassVar[int] = 100
    arrival_max_wait: ClassVar[float] = 1.0  # an arrival waiting longer for a channel: dropped
    arrival_late_after: ClassVar[float] = 0.05  # picked up later than this: counted late
    dns_host: ClassVar[str | None] = None
    target_endpoint: ClassVar[str | None] = None  # the --mailswarm-target file's endpoint to use
    domain: ClassVar[str] = "example.test"
    mailboxes: ClassVar[dict[str, Any] | None] = None
    password_env: ClassVar[str | None] = None
    smtp: ClassVar[Any] = None
    dns: ClassVar[Any] = None
    pop3: ClassVar[Any] = None
    imap: ClassVar[Any] = None
    web: ClassVar[Any] = None
    _configured_by: ClassVar[Environment | None] = None

    def __init__(self, environment: Any) -> None:
        type(self).configure(environment)
        super().__init__(environment)

    @classmethod
    def configure(cls, environment: Environment) -> None:
        """Build this class's scenario, target and pacer (once per class and process)."""
        if cls.__dict__.get("_configured_by") is environment:
            return
        options = environment.parsed_options
        scenario = scenario_for(cls, options)
        target = target_for(cls, environment.host, scenario, options)
        schedule = scenario.schedule
        pacer = None
        if isinstance(schedule, ArrivalSchedule):
            if PLUGIN_MODULE not in sys.modules:
                raise ConfigurationError(f"{cls.__name__}: an open-model class (arrival_rate) "
                                         f"needs its pacer: add `import {PLUGIN_MODULE}`")
            pacer = ArrivalPacer(schedule, arrival_rng(cls, scenario.name, options))
        attrs = scenario_attrs(scenario, target, pacer=pacer, allow_remote=bool(
            getattr(options, "mailswarm_allow_remote", False)), seed=cls.seed)
        if locust_schedules(cls, options):
            del attrs["fixed_count"], attrs["wait_time"]  # Locust's -u, weight and wait_time
        for name, value in attrs.items():
            setattr(cls, name, value)
        cls._configured_by = environment


def arrival_rng(cls: type[LocustfileUser], name: str, options: Any) -> random.Random:
    """The arrival process's random source of scenario `name`: the class's `seed`, else the
    run's `mailswarm_arrival_seed` (which a master gives its workers, so that they share one
    schedule and each takes its part of it), else fresh; seeded as `mailswarm run` seeds the
    same scenario (loadtests.schedule.loadplan.arrival_rng)."""
    seed = cls.seed if cls.seed is not None else getattr(options, "mailswarm_arrival_seed", None)
    return schedule_rng(None if seed is None or seed == "" else str(seed), name)


class SmtpUser(LocustfileUser, smtp_users.SmtpUser):
    """One SMTP session per iteration (MX lookup first when `smtp.mx_lookup`)."""

    abstract = True


class SubmissionUser(LocustfileUser, submission_users.SubmissionUser):
    """One authenticated SMTP submission per iteration (TLS per the endpoint, AUTH, no MX)."""

    abstract = True


class Pop3CheckMailUser(LocustfileUser, pop3_users.Pop3CheckMailUser):
    """One POP3 check-mail session per iteration."""

    abstract = True


class ImapIdleUser(LocustfileUser, imap_users.ImapIdleUser):
    """Long IMAP IDLE (or NOOP) sessions; reconnects with back-off when dropped."""

    abstract = True


class ImapActiveUser(LocustfileUser, imap_users.ImapActiveUser):
    """IMAP mail-reading sessions; override `after_select` for other steps after SELECT."""

    abstract = True


class WebUser(LocustfileUser, web_users.WebUser):
    """Webmail sessions in a browser (log in, poll, read, send, log out)."""

    abstract = True


def configure_all(environment: Environment) -> list[type[LocustfileUser]]:
    """Configure the environment's mailswarm classes now; returns them."""
    classes = [c for c in environment.user_classes if issubclass(c, LocustfileUser)]
    for cls in classes:
        cls.configure(environment)
    return classes


def _default_users(environment: Environment, classes: list[type[User]]) -> None:
    """Without -u, run every class's fixed count (an open-model class's channels) and one user
    of each other class, spawned within a second (Locust's own default is 1 user at 1/s)."""
    options = environment.parsed_options
    if options is None or environment.shape_class is not None or options.num_users is not None:
        return
    fixed = [c for c in classes if c.fixed_count]
    if fixed:
        options.num_users = sum(c.fixed_count for c in classes) + len(classes) - len(fixed)
        if options.spawn_rate is None:  # each schedule's own, as `mailswarm run` spawns them
            ours = [c for c in fixed if issubclass(c, LocustfileUser)]
            rate = spawn_rate(Profile(name="locustfile", scenarios=[
                c.scenario for c in ours])) if ours else 0.0
            options.spawn_rate = rate + options.num_users - sum(c.fixed_count for c in ours)


@events.init_command_line_parser.add_listener
def _on_parser(parser: Any, **_: Any) -> None:
    add_arguments(parser)


@events.init.add_listener
def _on_init(environment: Environment, runner: Any = None, **_: Any) -> None:
    bridge.start()
    if isinstance(runner, WorkerRunner):
        return  # configured at the first spawn, with the master's options
    configure_all(environment)
    _default_users(environment, list(environment.user_classes))
