"""Bad input gives a clear message and exit 2, never a traceback or a run that cannot be stopped:
every number in a profile has a finite range, files must be UTF-8, `--out` must be usable, the
profile's name cannot move the output folder, the embedded target stays on loopback."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from cli import run_cli
from test_profiles import GOOD as PROFILE
from test_profiles import write

from loadtests.cli import _load_inputs, build_parser
from loadtests.configfile import ConfigError
from loadtests.profiles import load_profile
from loadtests.units import parse_duration, parse_size


def _profile(tmp_path: Path, text: str = PROFILE, name: str = "p.yaml") -> Path:
    return write(tmp_path, text, name)


def _problems(*argv: str) -> list[str]:
    """What `mailswarm run ARGV` refuses, checked as the command does before anything starts."""
    args: argparse.Namespace = build_parser().parse_args(["run", *argv])
    with pytest.raises(ConfigError) as caught:
        _load_inputs(args)
    return caught.value.problems


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), 1e400, "1e400", "9" * 400,
                                 "9" * 400 + "d", 31 * 86400, "31d", "721h"])
def test_durations_are_finite_and_at_most_30_days(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), "9" * 400, "100000MiB", "2GiB",
                                 2**31])
def test_sizes_are_finite_and_at_most_1_gib(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_size(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(("old", "new", "field"), [
    ("rate: 50", "rate: .inf", "scenarios[0].schedule.rate"),
    ("rate: 50", "rate: 1e400", "scenarios[0].schedule.rate"),
    ("rate: 50", "rate: .nan", "scenarios[0].schedule.rate"),
    ("rate: 50", "rate: 1e9", "scenarios[0].schedule.rate"),
    ("duration: 10s", "duration: .inf", "duration"),
    ("duration: 10s", "duration: 1e400", "duration"),
    ("duration: 10s", "duration: 0", "duration"),
    ("duration: 10s", "duration: 10s\ndrain: .inf", "drain"),
    ("duration: 10s", "duration: 10s\nseed: -1", "seed"),
    ("duration: 10s", "duration: 10s\nseed: 1" + "0" * 30, "seed"),
    ("rate: 50}", "rate: 50, late_after: .inf}", "scenarios[0].schedule.late_after"),
    ("rate: 50}", "rate: 50}\n    smtp: {size: {fixed: 100000MiB}}",
     "scenarios[0].smtp.size.fixed"),
    ("rate: 50}", "rate: 50}\n    smtp: {size: {fixed: 65MiB}}", "scenarios[0].smtp.size.fixed"),
    ("rate: 50}", "rate: 50}\n    smtp: {size: {choices: [{size: 1KiB, weight: .inf}]}}",
     "scenarios[0].smtp.size.choices[0].weight"),
    ("rate: 50}", "rate: 50}\n    smtp: {command_timeout: .inf}",
     "scenarios[0].smtp.command_timeout"),
    ("{kind: arrival, rate: 50}", "{kind: closed, users: 5, spawn_rate: .inf}",
     "scenarios[0].schedule.spawn_rate"),
    ("{kind: arrival, rate: 50}", "{kind: arrival, population: {users: 10000000, "
     "checks_per_user: 100000, session_time: 1s, peak_window: 1s}}", "scenarios[0].schedule"),
    ("name: ok", "name: ../../../tmp/escaped", "name"),
    ("name: ok", "name: ..", "name"),
    ("name: ok", "name: /etc", "name"),
])
def test_every_number_has_a_finite_range(tmp_path: Path, old: str, new: str, field: str) -> None:
    assert old in PROFILE
    with pytest.raises(ConfigError) as caught:
        load_profile(_profile(tmp_path, PROFILE.replace(old, new)))
    assert any(p.startswith(f"{field}:") for p in caught.value.problems), caught.value.problems


def test_embedded_numbers_are_bounded_too(tmp_path: Path) -> None:
    from loadtests.cli import _embedded_problems

    text = PROFILE + "embedded: {message_size: 100000MiB, command_delay: .inf}\n"
    with pytest.raises(ConfigError) as caught:
        load_profile(_profile(tmp_path, text), checks=[_embedded_problems])
    fields = {p.split(":")[0] for p in caught.value.problems}
    assert fields == {"embedded.message_size", "embedded.command_delay"}


def test_the_name_keeps_the_default_folder_inside_reports(tmp_path: Path) -> None:
    """Decision: the name is restricted to a safe pattern (one path component that cannot be `.`
    or `..`), so `reports/<name>-<time>` is always a folder directly inside reports/."""
    for name in ("../x", "a/b", "a\\b", ".hidden", "-x", "a b"):
        with pytest.raises(ConfigError):
            load_profile(_profile(tmp_path, PROFILE.replace("name: ok", f"name: '{name}'")))
    assert load_profile(_profile(tmp_path, PROFILE.replace("ok", "smtp-50mps_v1.2"))).name


def test_non_utf8_profile_and_target_are_named(tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_bytes(PROFILE.replace("ok", "caf\xe9").encode("latin-1"))
    target = tmp_path / "t.yaml"
    target.write_bytes(b"endpoints: {smtp: {host: 127.0.0.1, port: 25}}\n# \xff\xfe\n")
    problems = _problems(str(profile), "--target", str(target))
    assert any(str(profile) in p and "not UTF-8 text: byte 0xe9" in p for p in problems)
    assert any(str(target) in p and "not UTF-8 text: byte 0xff" in p for p in problems)


def test_out_must_be_a_usable_folder(tmp_path: Path) -> None:
    profile = _profile(tmp_path)
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert any("exists and is not a folder" in p for p in _problems(str(profile), "--out",
                                                                    str(afile)))
    assert any("is not a folder, so" in p for p in _problems(str(profile), "--out",
                                                             str(afile / "sub" / "dir")))


def test_duration_flag_must_be_positive_and_finite(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("0", "0s", "1e400", "31d"):
        with pytest.raises(SystemExit) as caught:
            build_parser().parse_args(["run", "p.yaml", "--duration", bad])
        assert caught.value.code == 2
    assert "--duration" in capsys.readouterr().err


def test_embedded_target_stays_on_loopback_without_allow_remote(tmp_path: Path) -> None:
    profile = _profile(tmp_path, PROFILE + "embedded: {host: 0.0.0.0}\n")
    assert any("embedded.host: 0.0.0.0 is not a loopback address" in p
               for p in _problems(str(profile)))
    args = build_parser().parse_args(["run", str(profile), "--allow-remote"])
    assert _load_inputs(args)[0].embedded["host"] == "0.0.0.0"


def test_the_command_says_so_and_exits_2(tmp_path: Path) -> None:
    """One real `mailswarm run` with several bad inputs: exit 2, each named, no traceback."""
    profile = tmp_path / "p.yaml"
    profile.write_bytes(b"name: \xe9\n")
    afile = tmp_path / "afile"
    afile.write_text("x")
    result = run_cli("run", str(profile), "--out", str(afile), timeout=60)
    assert result.returncode == 2, result.stderr
    assert "not UTF-8 text" in result.stderr
    assert "exists and is not a folder" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_pacer_behind_schedule_still_yields() -> None:
    """Even a rate no profile may hold (infinite: every session due at once) leaves the event
    loop to the rest of the process — the Ctrl-C handler, the ticks — and stops when asked."""
    import random
    import signal
    import time

    import gevent

    from loadtests.profiles import ArrivalSchedule
    from loadtests.schedule.pacing import ArrivalPacer

    def _stuck(signum: int, frame: object) -> None:
        raise TimeoutError("the pacer never yielded")

    schedule = ArrivalSchedule.model_construct(
        kind="arrival", rate=float("inf"), population=None, process="fixed", bursts=None,
        max_in_flight=10, late_after=0.05, max_wait=0.05)
    pacer = ArrivalPacer(schedule, random.Random(1))
    previous = signal.signal(signal.SIGALRM, _stuck)
    signal.alarm(5)
    try:
        pacer.start(10.0)
        t0 = time.monotonic()
        gevent.sleep(0.2)  # returns only if the pacer yields
        pacer.stop()
        assert time.monotonic() - t0 < 2
        assert not pacer.running and pacer.intended > 0
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        pacer.close()
