"""`mailswarm run` and `locust -f` are one code path: the same profile and seed give the same
open-model schedule in both (and in each worker's part); the plugin records the end reason
`mailswarm run` records for the same cause (completed, interrupted)."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from argparse import Namespace
from pathlib import Path

import pytest
from cli import ROOT
from exported import load_locustfile, user_classes
from locust.env import Environment

from loadtests.profiles import Profile
from loadtests.targets import Target

PROFILE = {
    "name": "two-poisson", "duration": "10s", "drain": "0s", "seed": 11,
    "scenarios": [
        {"name": "first", "user": "smtp", "smtp": {"mx_lookup": False},
         "schedule": {"kind": "arrival", "rate": 40, "process": "poisson"}},
        {"name": "second", "user": "smtp", "smtp": {"mx_lookup": False},
         "schedule": {"kind": "arrival", "rate": 7, "process": "poisson"}},
    ],
}
TARGET = {"name": "t", "endpoints": {"smtp": {"host": "127.0.0.1", "port": 20025}}}


def _locustfile_pacers(profile: Profile, folder: Path, scenarios: list[str] | None = None,
                       ) -> dict[str, object]:
    """The pacers of `profile` exported as a locustfile, its classes configured as `locust`
    configures them (in the order of `scenarios`)."""
    import loadtests.locust.plugin  # noqa: F401  (the open-model classes need it)
    from loadtests.locust.export import locustfile_for
    from loadtests.locust.users import configure_all

    path = folder / "exported.py"
    path.write_text(locustfile_for(profile, "profile.yaml"))
    classes = user_classes(load_locustfile(path, f"exported_{folder.name}"))
    if scenarios is not None:
        classes.sort(key=lambda c: scenarios.index(c.scenario_name))
    env = Environment(user_classes=classes, parsed_options=Namespace(), host=None)
    return {c.scenario.name: c.pacer for c in configure_all(env)}


def _first(pacer: object, n: int = 200) -> list[float]:
    return list(itertools.islice(pacer.offsets(), n))  # type: ignore[attr-defined]


@pytest.mark.parametrize("part", [(0, 1), (1, 3)])
def test_the_same_seed_gives_the_same_poisson_schedule_in_both_paths(tmp_path: Path,
                                                                      part: tuple[int, int]
                                                                      ) -> None:
    from loadtests.schedule.loadplan import build_load

    profile = Profile.model_validate(PROFILE)
    _, run_pacers = build_load(profile, Target.model_validate(TARGET), allow_remote=False,
                               part=part)
    # the locustfile's classes in the other order: the schedule must not depend on it
    ours = _locustfile_pacers(profile, tmp_path, ["second", "first"])
    for name, pacer in run_pacers.items():
        mine = ours[name]
        mine.part = part  # type: ignore[attr-defined]  # as a worker's START sets it
        assert _first(pacer) == _first(mine), name
    assert _first(run_pacers["first"]) != _first(run_pacers["second"])


def test_a_distributed_run_seeds_its_workers_as_a_local_run(tmp_path: Path) -> None:
    """The master's arrival seed is the profile's: worker parts add up to the local schedule."""
    from loadtests.schedule.loadplan import build_load

    profile = Profile.model_validate(PROFILE)
    target = Target.model_validate(TARGET)
    _, whole = build_load(profile, target, allow_remote=False)
    parts = [build_load(profile, target, allow_remote=False, part=(i, 2),
                        arrival_seed=str(profile.seed))[1] for i in range(2)]
    for name, pacer in whole.items():
        merged = sorted(_first(parts[0][name], 100) + _first(parts[1][name], 100))
        assert merged[:150] == _first(pacer, 150), name


# -- the end reason of a `locust -f` run ------------------------------------------------------

LOCUST = Path(sys.executable).with_name("locust")
LOCUSTFILE = '''
import loadtests.locust.plugin
from locust import constant
from loadtests.locust import SmtpUser


class Closed(SmtpUser):
    host = "smtp://127.0.0.1:{port}"
    smtp = {{"mx_lookup": False}}
    wait_time = constant(0.5)


class Open(SmtpUser):
    host = "smtp://127.0.0.1:{port}"
    smtp = {{"mx_lookup": False}}
    arrival_rate = 4
    max_in_flight = 2
'''


def _refused_port() -> int:
    """A loopback port nobody listens on (every session fails fast: the run itself is what
    is checked)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _locustfile(folder: Path) -> Path:
    path = folder / "closed_port.py"
    path.write_text(LOCUSTFILE.format(port=_refused_port()))
    return path


def _locust(folder: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(LOCUST), "-f", str(_locustfile(folder)), "--headless", "--mailswarm-out",
         str(folder / "ms"), "-u", "3", "-r", "10", *args], cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)


def _records(folder: Path) -> list[dict[str, object]]:
    text = (folder / "ms" / "results.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def _wait_for(folder: Path, text: str, timeout: float) -> None:
    """Until `text` is in the run's stream."""
    stream = folder / "ms" / "results.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stream.exists() and text in stream.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"no {text} in {stream} within {timeout:g} s")


def _wait_for_load(folder: Path, timeout: float = 30) -> None:
    _wait_for(folder, '"load_start"', timeout)


def test_a_locust_run_that_runs_its_time_ends_completed(tmp_path: Path) -> None:
    proc = _locust(tmp_path, "-t", "3s", "--mailswarm-drain", "1")
    _out, err = proc.communicate(timeout=60)
    end = _records(tmp_path)[-1]
    assert end["kind"] == "end" and end["reason"] == "completed", (end, err[-2000:])
    summary = json.loads((tmp_path / "ms" / "summary.json").read_text())
    assert summary["end"] == "completed"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_locust_run_stopped_early_ends_interrupted_without_its_drain(
        tmp_path: Path, sig: signal.Signals) -> None:
    proc = _locust(tmp_path, "--mailswarm-drain", "30")  # no -t: runs until stopped
    try:
        _wait_for_load(tmp_path)
        time.sleep(1.0)
        stopped = time.monotonic()
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=20)
        took = time.monotonic() - stopped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    end = _records(tmp_path)[-1]
    assert end["kind"] == "end" and end["reason"] == "interrupted", (end, err[-2000:])
    assert took < 10, took  # the 30 s drain is skipped once interrupted, as in mailswarm run
    assert json.loads((tmp_path / "ms" / "summary.json").read_text())["end"] == "interrupted"


def test_a_worker_joining_a_locust_master_late_is_recorded_with_no_share(
        tmp_path: Path) -> None:
    locustfile = str(_locustfile(tmp_path))
    port = _refused_port()

    def worker() -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(LOCUST), "-f", locustfile, "--worker", "--master-host", "127.0.0.1",
             "--master-port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, text=True)

    first = worker()
    master = subprocess.Popen(
        [str(LOCUST), "-f", locustfile, "--headless", "--mailswarm-out", str(tmp_path / "ms"),
         "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
         "--expect-workers", "1", "-u", "3", "-r", "10", "--mailswarm-drain", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    late = None
    try:
        _wait_for_load(tmp_path)
        late = worker()
        _wait_for(tmp_path, '"late"', 60)  # a worker starts slowly on a busy machine
        master.send_signal(signal.SIGINT)
        out, err = master.communicate(timeout=60)
    finally:
        for proc in (master, first, late):
            if proc is not None:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    events = [r for r in _records(tmp_path) if r["kind"] == "worker"]
    assert [(r["event"], r["index"]) for r in events] == [("joined", 0), ("late", -1)], events
    workers = json.loads((tmp_path / "ms" / "summary.json").read_text())["workers"]
    assert workers["joined"] == 1 and len(workers["late"]) == 1, workers
    assert "LATE WORKER" in out and "no share" in out, (out[-2000:], err[-2000:])
