"""Profiles and target files: every shipped file loads; a broken one names every bad field."""

from pathlib import Path

import pytest
from cli import ROOT, run_cli

from loadtests.configfile import ConfigError
from loadtests.profiles import ArrivalSchedule, check_against_target, load_profile
from loadtests.targets import Endpoint, Target, check_loopback, load_target

GOOD = """
name: ok
duration: 10s
scenarios:
  - name: smtp
    user: smtp
    schedule: {kind: arrival, rate: 50}
"""


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(path: Path, loader=load_profile) -> list[str]:
    with pytest.raises(ConfigError) as info:
        loader(path)
    return info.value.problems


@pytest.mark.parametrize("path", sorted((ROOT / "profiles").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_profiles_load(path):
    assert load_profile(path).scenarios


def test_good_profile_has_defaults(tmp_path):
    profile = load_profile(write(tmp_path, GOOD))
    schedule = profile.scenarios[0].schedule
    assert isinstance(schedule, ArrivalSchedule)
    assert (schedule.rate, schedule.process, schedule.max_in_flight) == (50, "fixed", 100)
    assert profile.duration == 10.0


def test_every_error_is_named_at_once(tmp_path):
    found = problems(write(tmp_path, """
name: broken
duration: ten seconds
colour: blue
scenarios:
  - name: smtp
    user: smtp
    schedule: {kind: arrival, rate: -5, max_in_flight: 0, burst: 3}
    smtp:
      size: {fixed: 2 parsecs}
      messages_per_session: 0
  - name: smtp
    user: carrier-pigeon
    schedule: {kind: closed}
"""))
    text = "\n".join(found)
    for expected in [
        "duration: ", "colour: unknown field",
        "scenarios[0].schedule.rate:", "scenarios[0].schedule.max_in_flight:",
        "scenarios[0].schedule.burst: unknown field",
        "scenarios[0].smtp.size.fixed:", "scenarios[0].smtp.messages_per_session:",
        "scenarios[1].user:", "scenarios[1].schedule.users: required field is missing",
    ]:
        assert expected in text, f"{expected!r} not in:\n{text}"
    assert len(found) >= 9
    assert "arrival" not in "".join(p.split(":")[0] for p in found)  # no union-tag noise in paths


def test_unknown_schedule_kind(tmp_path):
    found = problems(write(tmp_path, GOOD.replace("kind: arrival", "kind: sometimes")))
    assert any(p.startswith("scenarios[0].schedule: unknown kind 'sometimes'") for p in found)


def test_duplicate_scenario_names_and_size_choices(tmp_path):
    text = GOOD + """
  - name: smtp
    user: smtp
    schedule: {kind: closed, users: 3}
    smtp: {size: {fixed: 10, choices: [{size: 1KiB, weight: 1}]}}
"""
    found = "\n".join(problems(write(tmp_path, text)))
    assert "scenarios[1].smtp.size: give exactly one of fixed or choices" in found
    assert "scenarios: names must be unique; repeated: smtp" in found


def test_yaml_syntax_and_missing_file(tmp_path):
    assert "not valid YAML" in problems(write(tmp_path, "name: [unclosed"))[0]
    assert "cannot read the file" in problems(tmp_path / "nope.yaml")[0]
    assert "mapping" in problems(write(tmp_path, "- just\n- a list\n"))[0]


def test_target_file_errors(tmp_path):
    found = "\n".join(problems(write(tmp_path, """
endpoints:
  smtp: {port: 99999}
  mystery: {port: 25}
  imap: {port: 143, monitor: [{pid: 5, pid_file: /x}]}
users: {pattern: "nobody"}
""", "t.yaml"), loader=load_target))
    assert "endpoints.smtp.port:" in found
    assert "endpoints.mystery.protocol: required field is missing" in found
    assert "endpoints.imap.monitor[0]: give exactly one of" in found
    assert "users: pattern must use {n}" in found


def test_loopback_rule_and_password_never_shown(tmp_path):
    target = load_target(write(tmp_path, """
password: s3cret-value
endpoints:
  smtp: {host: 192.0.2.10, port: 25}
  dns: {host: "::1", port: 53}
  pop3: {host: 127.9.9.9, port: 110}
""", "t.yaml"))
    assert check_loopback(target) == [
        "endpoints.smtp: 192.0.2.10 is not a loopback address (127.0.0.0/8 or ::1)"]
    assert target.secret() == "s3cret-value"
    assert "s3cret" not in repr(target) and "s3cret" not in str(target.public())


def test_profile_checked_against_target(tmp_path):
    profile = load_profile(write(tmp_path, GOOD))
    only_dns = Target(endpoints={"dns": Endpoint(protocol="dns", port=53)})
    assert check_against_target(profile, only_dns) == [
        "scenarios[0].endpoint: the target has no endpoint 'smtp'"]
    only_smtp = Target(endpoints={"smtp": Endpoint(protocol="smtp", port=25)})
    assert check_against_target(profile, only_smtp) == [
        "scenarios[0].smtp.mx_lookup: the target has no dns endpoint"]


def test_cli_refuses_bad_input_before_any_traffic(tmp_path):
    bad = write(tmp_path, GOOD.replace("rate: 50", "rate: fast"))
    remote = write(tmp_path, "endpoints: {smtp: {host: 198.51.100.7, port: 25}, "
                             "dns: {host: 127.0.0.1, port: 53}}", "t.yaml")
    result = run_cli("run", str(bad), "--target", str(remote), "--out", str(tmp_path / "out"),
                       timeout=60)
    assert result.returncode == 2
    assert "scenarios[0].schedule.rate:" in result.stderr
    assert "198.51.100.7 is not a loopback address" in result.stderr
    assert "--allow-remote" in result.stderr
    assert not (tmp_path / "out").exists()


def test_cli_refuses_a_bad_or_remote_web_address(tmp_path):
    good = write(tmp_path, GOOD)
    for web, expected in (("8089", "--web: expected HOST:PORT, got '8089'"),
                          ("127.0.0.1:99999", "--web: expected HOST:PORT"),
                          ("198.51.100.7:8089", "--web: 198.51.100.7 is not a loopback address")):
        result = run_cli("run", str(good), "--web", web, "--out", str(tmp_path / "out"),
                           timeout=60)
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr
        assert not (tmp_path / "out").exists()


def test_embedded_section_is_checked_with_the_rest(tmp_path: Path) -> None:
    """The profile holds the embedded target's settings opaquely; the CLI's check reports their
    problems together with the profile's own."""
    from loadtests.cli import _embedded_problems

    path = tmp_path / "p.yaml"
    path.write_text("name: p\nscenarios:\n  - {name: a, user: smtp, schedule: {kind: closed, "
                    "users: 0}}\nembedded: {colour: 1, smtp_port: -4}\n")
    with pytest.raises(ConfigError) as caught:
        load_profile(path, checks=[_embedded_problems])
    problems = caught.value.problems
    assert "embedded.colour: unknown field" in problems
    assert any(p.startswith("embedded.smtp_port:") for p in problems)
    assert any(p.startswith("scenarios[0].schedule.users:") for p in problems)
