"""`mailswarm locustfile PROFILE`: a profile written as an equivalent locustfile, for users who
want to go on in plain Locust. Each scenario becomes a class of its user kind with the same
name (`scenario_name`), schedule (`schedule`), settings sections and seed, pointed at the
embedded target's default ports (`mailswarm target`; `--mailswarm-target FILE` points it
elsewhere); a ramp scenario adds the plugin's `CeilingShape`; the profile's QoS goes to the
plugin's `settings()`. Imports no Locust.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from pathlib import Path
from pprint import pformat
from typing import Any

from loadtests.profiles import Profile, QosSettings, RampSchedule, Scenario, load_profile
from loadtests.protocols import user_kind

__all__ = ["locustfile_for", "register"]

CLASS_NAMES = {"smtp": "SmtpUser", "submission": "SubmissionUser", "pop3": "Pop3CheckMailUser",
               "imap-idle": "ImapIdleUser", "imap-active": "ImapActiveUser", "webuser": "WebUser"}
"""The loadtests.locust class of each user kind."""


def _target_ports() -> dict[str, int]:
    """`mailswarm target`'s default port of each protocol (its own argument defaults)."""
    from loadtests.embedded.__main__ import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = vars(parser.parse_args([]))
    return {key.removesuffix("_port"): int(value) for key, value in args.items()
            if key.endswith("_port")}


def _identifier(name: str) -> str:
    camel = "".join(part[:1].upper() + part[1:] for part in re.split(r"[^A-Za-z0-9]+", name))
    return camel if camel[:1].isalpha() else f"Scenario{camel}"


def _value(value: Any, indent: int) -> str:
    return pformat(value, width=100 - indent, sort_dicts=False).replace(
        "\n", "\n" + " " * indent)


def _class(sc: Scenario, seed: int | None, ports: dict[str, int]) -> list[str]:
    kind = user_kind(sc.user)
    lines = [f"class {_identifier(sc.name)}({CLASS_NAMES[sc.user]}):",
             f"    scenario_name = {sc.name!r}",
             f"    host = \"{kind.protocol}://127.0.0.1:{ports[kind.protocol]}\""]
    if sc.endpoint:
        lines.append(f"    target_endpoint = {sc.endpoint!r}  # of a --mailswarm-target file")
    sections = [kind.section]
    if kind.needs_dns(sc.settings):
        lines.append(f"    dns_host = \"dns://127.0.0.1:{ports['dns']}\"")
        sections.append("dns")
    if seed is not None:
        lines.append(f"    seed = {seed}")
    schedule = sc.schedule.model_dump(mode="json", exclude_defaults=True)
    lines.append(f"    schedule = {_value(schedule, 15)}")
    for section in sections:
        values = getattr(sc, section).model_dump(mode="json", exclude_defaults=True)
        if values:
            lines.append(f"    {section} = {_value(values, 7 + len(section))}")
    return lines


def locustfile_for(profile: Profile, profile_file: str) -> str:
    """The locustfile text equivalent to `profile` (read from `profile_file`)."""
    ports = _target_ports()
    kinds = sorted({CLASS_NAMES[sc.user] for sc in profile.scenarios})
    ramp = next((sc.schedule for sc in profile.scenarios
                 if isinstance(sc.schedule, RampSchedule)), None)
    embedded = ["", "The profile's embedded target settings (`mailswarm target` flags, or a "
                "profile's", f"`embedded:` section): {profile.embedded}"]
    title = f"{profile.name}: {profile.description}".rstrip(": ")
    out = [
        *textwrap.wrap('"""' + title, 96),
        "",
        *textwrap.wrap(f"Exported from {profile_file} by `mailswarm locustfile`: the same "
                       f"scenarios as `mailswarm run {profile_file}`.", 96),
        "",
        "    mailswarm target &",
        "    MAILSWARM_PASSWORD=mailswarm-test locust -f THIS_FILE --headless "
        f"-t {profile.duration:g}s \\",
        f"        --mailswarm-drain {profile.drain:g} --mailswarm-out out/{profile.name}",
        *(embedded if profile.embedded else []),
        '"""',
        "",
        "import loadtests.locust.plugin  # noqa: F401  (stream, monitor, pacers, report)",
        f"from loadtests.locust import {', '.join(kinds)}",
    ]
    if ramp is not None:
        out.append("from loadtests.locust.plugin import CeilingShape")
    qos = profile.qos.model_dump(mode="json", exclude_defaults=True)
    if qos != QosSettings().model_dump(mode="json", exclude_defaults=True):
        out += ["", f"loadtests.locust.plugin.settings(qos={_value(qos, 44)})"]
    for sc in profile.scenarios:
        out += ["", "", *_class(sc, profile.seed, ports)]
    if ramp is not None:
        ramp_dict = ramp.model_dump(mode="json", exclude_defaults=True)
        ramp_dict.pop("kind")
        out += ["", "", "class Ceiling(CeilingShape):", f"    ramp = {_value(ramp_dict, 11)}"]
    return "\n".join(out) + "\n"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "locustfile", help="write a profile as an equivalent locustfile (plain Locust)",
        description="Write PROFILE as a locustfile using loadtests.locust's users and plugin: "
                    "`locust -f FILE` then runs the same scenarios as `mailswarm run PROFILE`.")
    p.add_argument("profile", type=Path, help="the profile (YAML)")
    p.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help="write it here (default: standard output)")
    p.set_defaults(func=_cmd_locustfile)


def _cmd_locustfile(args: argparse.Namespace) -> int:
    from loadtests.configfile import ConfigError

    try:
        profile = load_profile(args.profile)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    text = locustfile_for(profile, str(args.profile))
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
        print(f"locustfile: {args.output}", file=sys.stderr)
    return 0
