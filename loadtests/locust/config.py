"""What a locustfile's user class runs, built from its class attributes and the command line.

A class says what it is the Locust way — `host = "smtp://127.0.0.1:20025"` (or `--host`),
settings sections as class attributes (`smtp = {"mx_lookup": True}`), `arrival_rate = 50` for
the open model, else Locust's `wait_time` — and `--mailswarm-*` options add what is shared:
a target file (endpoints, mailboxes, the password's environment variable), a profile scenario
to take the settings and schedule from, the DNS server for MX lookups. The result is the same
`Scenario` and `Target` a profile run gives its classes (`users.base.scenario_attrs`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from loadtests.clients.tls import TlsMode
from loadtests.profiles import ArrivalSchedule, ClosedSchedule, Scenario, load_profile
from loadtests.protocols import PROTOCOLS, SECTIONS, user_kind
from loadtests.targets import Endpoint, ProcessRef, Target, UserPattern, check_loopback, load_target

__all__ = ["IMPLICIT_TLS", "ConfigurationError", "add_arguments", "endpoint_from_url",
           "locust_schedules", "scenario_for", "target_for"]

PASSWORD_ENV = "MAILSWARM_PASSWORD"
"""The environment variable the password is read from unless the class or option names
another; a password is never given on the command line."""


class ConfigurationError(ValueError):
    """A locustfile user class cannot run as configured; the message says why."""


def add_arguments(parser: Any) -> None:
    """The user classes' options (Locust's `init_command_line_parser`)."""
    group = parser.add_argument_group("mailswarm users")
    group.add_argument("--mailswarm-target", metavar="FILE", default=None,
                       help="mailswarm target file: endpoints, mailboxes, password_env")
    group.add_argument("--mailswarm-profile", metavar="FILE", default=None,
                       help="take each class's settings and schedule from this profile's "
                            "scenario (named by the class's `scenario_name`)")
    group.add_argument("--mailswarm-scenario", metavar="NAME", default=None,
                       help="the profile scenario for every class (default: the class's "
                            "`scenario_name`, else the only scenario of its user kind)")
    group.add_argument("--mailswarm-dns", metavar="URL", default=None,
                       help="DNS server for the MX lookups, e.g. dns://127.0.0.1:20053")
    group.add_argument("--mailswarm-password-env", metavar="VAR", default=None,
                       help=f"environment variable holding the mailboxes' password "
                            f"(default: the class's `password_env`, {PASSWORD_ENV})")
    group.add_argument("--mailswarm-allow-remote", action="store_true", default=False,
                       help="allow endpoints off 127.0.0.0/8 and ::1")


IMPLICIT_TLS = {"smtps": ("smtp", 465), "imaps": ("imap", 993), "pop3s": ("pop3", 995),
                "https": ("http", 443)}
"""URL schemes of a protocol over TLS from the first byte (`tls: implicit`), default ports."""


def endpoint_from_url(url: str, monitor: bool = True) -> Endpoint:
    """`smtp://127.0.0.1:20025` as an Endpoint; the scheme is a protocol of the registry, or
    one of IMPLICIT_TLS (`imaps://`: IMAP with `tls: implicit`, verified against the system's
    CAs; other TLS options, STARTTLS included, need a --mailswarm-target file). A loopback
    endpoint's listener is monitored (found by its port) unless `monitor` is False."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    tls: TlsMode = "none"
    if scheme in IMPLICIT_TLS:
        (protocol, default_port), tls = IMPLICIT_TLS[scheme], "implicit"
    elif scheme in PROTOCOLS:
        protocol, default_port = scheme, PROTOCOLS[scheme].port
    else:
        schemes = [*PROTOCOLS, *IMPLICIT_TLS]
        raise ConfigurationError(f"{url}: the scheme must be one of {', '.join(schemes)}")
    try:
        port = parts.port or default_port
    except ValueError as exc:
        raise ConfigurationError(f"{url}: {exc}") from None
    host = parts.hostname or "127.0.0.1"
    refs = [ProcessRef(listen_port=port)] if monitor else []
    return Endpoint(protocol=protocol, host=host, port=port, monitor=refs, tls=tls)


def _option(options: argparse.Namespace | None, name: str) -> Any:
    return getattr(options, name, None) if options is not None else None


def _section(value: Any, model: type[BaseModel], where: str) -> BaseModel:
    if isinstance(value, model):
        return value
    if isinstance(value, dict):
        try:
            return model.model_validate(value)
        except ValueError as exc:
            raise ConfigurationError(f"{where}: {exc}") from None
    raise ConfigurationError(f"{where}: a dict or a {model.__name__}, not {value!r}")


def _profile_scenario(cls: type[Any], options: argparse.Namespace | None) -> Scenario | None:
    path = _option(options, "mailswarm_profile")
    if not path:
        return None
    profile = load_profile(Path(path))
    wanted = _option(options, "mailswarm_scenario") or getattr(cls, "scenario_name", None)
    if wanted:
        found = [sc for sc in profile.scenarios if sc.name == wanted]
    else:
        found = [sc for sc in profile.scenarios if sc.user == cls.kind]
    if len(found) != 1:
        raise ConfigurationError(
            f"{cls.__name__}: {path} has {'no' if not found else 'more than one'} scenario "
            f"{'named ' + repr(wanted) if wanted else 'of user kind ' + repr(cls.kind)}")
    return found[0]


def scenario_for(cls: type[Any], options: argparse.Namespace | None) -> Scenario:
    """The scenario a locustfile class runs: the profile's (`--mailswarm-profile`) or the
    defaults, updated by the settings sections the class sets, its `schedule` (a profile's
    schedule as a dict) and its `arrival_rate` (the open model's shorthand)."""
    base = _profile_scenario(cls, options)
    data: dict[str, Any] = {
        "name": getattr(cls, "scenario_name", None) or cls.__name__, "user": cls.kind,
        "schedule": ClosedSchedule(kind="closed", users=1)}
    if base is not None:
        data = {**dict(base), "name": data["name"] if getattr(cls, "scenario_name", None)
                else base.name}
    for section, model in SECTIONS.items():
        value = getattr(cls, section, None)
        if value is not None:
            data[section] = _section(value, model, f"{cls.__name__}.{section}")
    if getattr(cls, "schedule", None) is not None:
        data["schedule"] = cls.schedule  # a profile's schedule, as a dict
    rate = getattr(cls, "arrival_rate", None)
    if rate is not None:
        data["schedule"] = ArrivalSchedule(
            kind="arrival", rate=rate, process=cls.arrival_process,
            max_in_flight=cls.max_in_flight, max_wait=cls.arrival_max_wait,
            late_after=cls.arrival_late_after)
    data["endpoint"] = None  # the class's target has exactly the endpoints it needs
    try:
        return Scenario.model_validate(data)
    except ValueError as exc:
        raise ConfigurationError(f"{cls.__name__}: {exc}") from None


def locust_schedules(cls: type[Any], options: argparse.Namespace | None) -> bool:
    """True when Locust's -u, weights and `wait_time` schedule the class (no profile scenario,
    `schedule` or `arrival_rate` says otherwise)."""
    return (_option(options, "mailswarm_profile") is None
            and getattr(cls, "schedule", None) is None
            and getattr(cls, "arrival_rate", None) is None)


def _endpoint_for(cls: type[Any], url: str) -> Endpoint:
    endpoint = endpoint_from_url(url)
    kind = user_kind(cls.kind)
    if not kind.accepts(endpoint.protocol):
        raise ConfigurationError(f"{cls.__name__}: host {url} is {endpoint.protocol}, the "
                                 f"{cls.kind} user needs {' or '.join(kind.endpoints)}")
    return endpoint


def target_for(cls: type[Any], host: str | None, scenario: Scenario,
               options: argparse.Namespace | None) -> Target:
    """The target a locustfile class runs against. Its endpoint: `--host` (`host`), else the
    `--mailswarm-target` file's endpoint of its protocol, else the class's `host`; the DNS
    server likewise (`--mailswarm-dns`, the file's, `dns_host`): the command line first. Then
    the mailboxes and the password's environment variable."""
    kind = user_kind(cls.kind)
    path = _option(options, "mailswarm_target")
    base = load_target(Path(path)) if path else None
    endpoints: dict[str, Endpoint] = {}
    if host:
        endpoints[kind.protocol] = _endpoint_for(cls, host)
    elif base is not None and (found := base.endpoint(
            getattr(cls, "target_endpoint", None) or kind.protocol)) is not None:
        endpoints[kind.protocol] = found
    elif cls.host:
        endpoints[kind.protocol] = _endpoint_for(cls, cls.host)
    else:
        raise ConfigurationError(f"{cls.__name__}: no host; set `host = \"{kind.protocol}://"
                                 f"HOST:PORT\"`, pass --host, or a --mailswarm-target file")
    if dns := _option(options, "mailswarm_dns"):
        endpoints["dns"] = endpoint_from_url(dns)
    elif base is not None and (found := base.endpoint("dns")) is not None:
        endpoints["dns"] = found
    elif cls.dns_host:
        endpoints["dns"] = endpoint_from_url(cls.dns_host)
    if kind.needs_dns(scenario.settings) and "dns" not in endpoints:
        raise ConfigurationError(f"{cls.__name__}: MX lookups need a DNS server: set "
                                 f"`dns_host = \"dns://HOST:PORT\"` or pass --mailswarm-dns")
    password_env = (_option(options, "mailswarm_password_env")
                    or (base.password_env if base is not None else None)
                    or getattr(cls, "password_env", None) or PASSWORD_ENV)
    data: dict[str, Any] = base.model_dump() if base is not None else {}
    data.update(endpoints=endpoints, password_env=password_env, password=None)
    if base is None or cls.__dict__.get("domain") is not None:
        data["domain"] = cls.domain
    if base is None or cls.__dict__.get("mailboxes") is not None:
        data["users"] = UserPattern.model_validate(cls.mailboxes or {})
    if base is not None and base.password is not None and not _option(
            options, "mailswarm_password_env"):
        data["password"], data["password_env"] = base.password, None
    target = Target.model_validate(data)
    if not _option(options, "mailswarm_allow_remote") and (problems := check_loopback(target)):
        raise ConfigurationError(f"{cls.__name__}: {'; '.join(problems)} "
                                 "(pass --mailswarm-allow-remote if you mean it)")
    if target.secret() is None and kind.protocol != "smtp":
        raise ConfigurationError(f"{cls.__name__}: no password: set the environment variable "
                                 f"{target.password_env}")
    return target
