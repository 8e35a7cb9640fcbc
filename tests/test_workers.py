"""Distributed runs: N local worker processes, every record in the master's stream through
Locust's messaging; workers started by hand; the load split exactly. SIGKILL of a worker or of
the master: test_signals.py."""

import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import gevent
import locust.runners
import pytest
from cli import ROOT, run_cli, start_cli, workers_of

from loadtests.cli import EXIT_WORKER_LOST
from loadtests.profiles import ArrivalSchedule
from loadtests.run import master
from loadtests.run.core import Counters
from loadtests.run.workers import WorkerBook, WorkerState
from loadtests.schedule.pacing import ArrivalPacer
from loadtests.stream import (
    Phase,
    Req,
    StreamError,
    StreamWriter,
    Tick,
    WorkerEvent,
    read_stream,
)


def test_two_workers_share_the_rate_and_report_everything(tmp_path):
    out = tmp_path / "out"
    result = run_cli("run", "profiles/smtp-50mps.yaml", "--duration", "5s", "--workers", "2",
                       "--out", str(out), "--quiet", timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    arrival = summary["arrival"]["smtp"]
    assert arrival["intended"] == 250 and arrival["dropped"] == 0
    assert abs(arrival["achieved_per_s"] - 50) <= 1
    sessions = [r for r in read_stream(out / "results.jsonl")
                if type(r) is Req and r.name == "session"]
    assert len(sessions) == 250 and all(r.ok for r in sessions)
    per_worker = Counter(r.worker for r in sessions)
    assert len(per_worker) == 2 and min(per_worker.values()) >= 115
    assert summary["embedded_target"]["smtp_messages"] == 250


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker_elsewhere(port: int, cwd: Path) -> subprocess.Popen[str]:
    """`mailswarm worker` run from `cwd` (no profiles there)."""
    return subprocess.Popen([sys.executable, "-m", "loadtests.cli", "worker", "--master",
                             f"127.0.0.1:{port}"], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def _joined_yet(path: Path) -> bool:
    """A worker's `joined` record is in the stream (which may not have its first line yet)."""
    try:
        return path.exists() and any(type(r) is WorkerEvent for r in read_stream(path))
    except StreamError:
        return False


def test_a_master_and_workers_started_by_hand(tmp_path):
    """`run --master --expect-workers 2` and two `mailswarm worker` started elsewhere (another
    folder, no profile there): the load is split in two exact parts, a third worker is turned
    away, every record reaches the master."""
    out, port = tmp_path / "out", _free_port()
    master = start_cli("run", "profiles/smtp-50mps.yaml", "--duration", "4s", "--master",
                       "--expect-workers", "2", "--master-bind", f"127.0.0.1:{port}",
                       "--out", str(out), "--quiet")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    workers = [_worker_elsewhere(port, elsewhere) for _ in range(2)]
    try:
        deadline = time.monotonic() + 60
        while not _joined_yet(out / "results.jsonl"):
            assert time.monotonic() < deadline and master.poll() is None
            time.sleep(0.2)
        extra = _worker_elsewhere(port, elsewhere)
        _, extra_err = extra.communicate(timeout=60)
        _, stderr = master.communicate(timeout=120)
        worker_status = [w.wait(30) for w in workers]
    finally:
        for proc in (master, *workers):
            if proc.poll() is None:
                proc.kill()
    assert master.returncode == 0, stderr[-3000:]
    assert worker_status == [0, 0]
    assert extra.returncode == 1 and "turned this worker away" in extra_err
    records = list(read_stream(out / "results.jsonl"))
    joined = [r for r in records if type(r) is WorkerEvent]
    # the one turned away is recorded as late: no part of the load
    assert sorted((e.event, e.index, e.of) for e in joined) == [
        ("joined", 0, 2), ("joined", 1, 2), ("late", -1, 2)]
    sessions = [r for r in records if type(r) is Req and r.name == "session"]
    assert len(sessions) == 200 and all(r.ok for r in sessions)
    assert sorted(Counter(r.worker for r in sessions).values()) == [100, 100]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["arrival"]["smtp"]["intended"] == 200
    late = summary["workers"].pop("late")
    assert len(late) == 1 and "turned away" in late[0]["cause"], late
    assert summary["workers"] == {"expected": 2, "joined": 2, "lost": [], "not_sent": {}}


def test_master_flags_are_checked():
    result = run_cli("run", "profiles/smtp-50mps.yaml", "--master", "--expect-workers", "2",
                     "--master-bind", "10.213.0.1:5557")
    assert result.returncode == 2 and "--allow-remote" in result.stderr
    result = run_cli("run", "profiles/smtp-50mps.yaml", "--expect-workers", "2")
    assert result.returncode == 2 and "need --master" in result.stderr
    result = run_cli("worker", "--master", "10.213.0.1:5557")
    assert result.returncode == 2 and "--allow-remote" in result.stderr


@pytest.mark.parametrize("workers", [2, 3, 7])
@pytest.mark.parametrize("schedule", [
    {"rate": 33.3, "process": "fixed"},
    {"rate": 33.3, "process": "poisson"},
    {"rate": 20, "process": "poisson", "bursts": {"share": 0.5, "every": 2, "spread": 0.5}},
])
def test_the_parts_of_a_schedule_add_up_to_it_exactly(schedule, workers):
    """Each worker takes every N-th session of the one schedule (same seed): together they
    intend exactly the sessions one process would, at the same times."""
    sched = ArrivalSchedule(kind="arrival", **schedule)

    def offsets(part: tuple[int, int]) -> list[float]:
        return list(itertools.takewhile(
            lambda t: t < 10.0, ArrivalPacer(sched, random.Random("s"), part).offsets()))

    whole = offsets((0, 1))
    parts = [offsets((i, workers)) for i in range(workers)]
    assert sorted(itertools.chain(*parts)) == whole
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_closed_model_users_are_divided_exactly(tmp_path):
    profile = tmp_path / "closed.yaml"
    profile.write_text(
        "name: closed-split\nduration: 4s\ndrain: 0s\nseed: 1\nscenarios:\n"
        "  - name: idle\n    user: imap-idle\n"
        "    schedule: {kind: closed, users: 7, spawn_rate: 50}\n"
        "    imap: {mode: idle, hold: 1h}\n")
    out = tmp_path / "out"
    result = run_cli("run", str(profile), "--workers", "3", "--out", str(out), "--quiet",
                     timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    records = list(read_stream(out / "results.jsonl"))
    running = [r for r in records if type(r) is Tick and r.phase == "running"]
    assert running and all(t.users == 7 for t in running)
    assert max(t.sessions["IMAP"]["open"] for t in running) == 7
    logins = Counter(r.worker for r in records if type(r) is Req and r.name == "LOGIN")
    assert sum(logins.values()) == 7 and len(logins) == 3


def test_a_distributed_ramp_is_streamed_while_it_runs_and_reaches_every_scenario(tmp_path):
    """The master's ramp takes seconds (Locust's master dispatches it step by step): its ticks
    and the workers' records reach the stream during it, not after it; six scenarios all get
    their users."""
    scenarios = "".join(
        f"  - name: idle{i}\n    user: imap-idle\n"
        "    schedule: {kind: closed, users: 4, spawn_rate: 1}\n"
        "    imap: {mode: idle, hold: 1h}\n" for i in range(6))
    profile = tmp_path / "ramp.yaml"
    profile.write_text(f"name: ramp-split\nduration: 1s\ndrain: 0s\nseed: 1\nscenarios:\n"
                       f"{scenarios}")
    out = tmp_path / "out"
    result = run_cli("run", str(profile), "--workers", "2", "--out", str(out), "--quiet",
                     timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    records = list(read_stream(out / "results.jsonl"))
    load_start = next(i for i, r in enumerate(records)
                      if type(r) is Phase and r.name == "load_start")
    ramp = records[:load_start]
    assert sum(type(r) is Tick and r.phase == "spawning" for r in ramp) >= 2
    assert any(type(r) is Req and r.name == "LOGIN" for r in ramp)
    logins = Counter(r.sc for r in records if type(r) is Req and r.name == "LOGIN")
    assert logins == {f"idle{i}": 4 for i in range(6)}


def test_a_worker_silent_for_less_than_the_worker_timeout_is_not_lost(tmp_path):
    """A worker stopped (SIGSTOP) for 6 s, as a saturated host can stall one, and resumed: under
    the default --worker-timeout (10 s) it is not lost and the run passes; with
    `--worker-timeout 3` the same stall loses it."""
    profile = tmp_path / "idle.yaml"
    profile.write_text(
        "name: stall-split\nduration: 12s\ndrain: 0s\nseed: 1\nscenarios:\n"
        "  - name: idle\n    user: imap-idle\n"
        "    schedule: {kind: closed, users: 4, spawn_rate: 50}\n"
        "    imap: {mode: idle, hold: 1h}\n")
    outcomes = {}
    for timeout in ("10", "3"):
        out = tmp_path / f"out-{timeout}"
        proc = start_cli("run", str(profile), "--workers", "2", "--worker-timeout", timeout,
                         "--out", str(out), "--quiet")
        try:
            worker = workers_of(proc, 2)[0]
            time.sleep(4)
            worker.send_signal(signal.SIGSTOP)
            time.sleep(6)
            worker.send_signal(signal.SIGCONT)
            proc.communicate(timeout=90)
        finally:
            if proc.poll() is None:
                proc.kill()
        lost = [r for r in read_stream(out / "results.jsonl")
                if type(r) is WorkerEvent and r.event == "lost"]
        outcomes[timeout] = (proc.returncode, [r.cause for r in lost])
    assert outcomes["10"] == (0, [])
    assert outcomes["3"] == (EXIT_WORKER_LOST, ["no heartbeat for 3 s"])


def test_the_worker_timeout_is_checked():
    result = run_cli("run", "profiles/smtp-50mps.yaml", "--workers", "2",
                     "--worker-timeout", "1")
    assert result.returncode == 2 and "--worker-timeout" in result.stderr


@pytest.mark.parametrize("heard_from", [True, False])
def test_the_drain_waits_past_the_grace_only_for_workers_still_heard_from(
        tmp_path, monkeypatch, heard_from):
    """A worker still heartbeating whose final report comes after the grace (thousands of
    sessions closing on a busy host) is waited for; a silent one is lost. Locust's master is
    stood in for by its client table: the drain reads nothing else of it."""
    monkeypatch.setattr(master, "FINAL_GRACE", 0.5)
    monkeypatch.setattr(locust.runners, "HEARTBEAT_LIVENESS", 0)  # grace: 1 s

    class Node:
        state = locust.runners.STATE_RUNNING if heard_from else locust.runners.STATE_MISSING

    class Runner:
        clients = {"w1": Node()}

        def send_message(self, *_args) -> None:
            pass

    writer = StreamWriter(tmp_path / "results.jsonl")
    book = WorkerBook(writer, Counters())
    book.join(WorkerState("w1", 0, 1))
    load = master.MasterLoad(Runner(), book, lambda worker: {})  # type: ignore[arg-type]
    final = {"records": [], "pacers": {}, "sessions": {}, "users": 0}
    started = time.monotonic()

    def report_late() -> None:
        gevent.sleep(started + 2.0 - time.monotonic())
        book.take("w1", final, True)

    gevent.spawn(report_late)
    load.watch()  # as a run does: loses the silent
    load.drain(0.0)
    waited = time.monotonic() - started
    load.close()
    writer.close()
    worker = book.workers["w1"]
    if heard_from:
        assert worker.finished and not worker.lost and 1.9 < waited < 3.0
    else:
        assert worker.lost and waited < 1.9
