"""Signals to a real `mailswarm run`, each against README's exit-status table. Ctrl-C as a
terminal sends it (SIGINT to the whole process group: the run and its embedded target): once
stops gracefully, twice stops at once — and both leave the stream's end record, summary.json
and report.html, exit 130 and no traceback. SIGTERM to the run process alone (as `kill` or a
service manager sends it) is a graceful stop too, exit 130. SIGKILL of the run process leaves
a stream without its end record that `mailswarm report` reads as incomplete, keeping what was
measured, and the embedded target does not outlive the run. With `--workers 2`: SIGKILL of a
worker is recorded as a lost worker and the run exits 4; SIGKILL of the master (the run
process) leaves a stream as SIGKILL of a one-process run does, and its workers quit within
seconds. After every one the stream is valid (each line a record; a killed run's last line
may be cut off) and `mailswarm report DIR` rebuilds summary.json and report.html from it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from cli import alive, run_cli, start_cli, workers_of

from loadtests.cli import EXIT_INTERRUPTED, EXIT_WORKER_LOST
from loadtests.stream import Header, Record, Req, WorkerEvent, read_stream

HOLDING = """
name: hold
duration: 60s
drain: 30s
scenarios:
  - name: idle
    user: imap-idle
    schedule: {kind: closed, users: 200, spawn_rate: 1000}
    imap: {hold: 1h}
"""


def _running(out: Path, proc: subprocess.Popen[str], timeout: float = 60,
             marker: str = '"load_start"') -> None:
    """Wait until the stream holds `marker` (by default: the load phase has started)."""
    deadline = time.monotonic() + timeout
    stream = out / "results.jsonl"
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        if stream.exists() and marker in stream.read_text():
            return
        time.sleep(0.2)
    pytest.fail(f"the run's stream never held {marker}")


@contextlib.contextmanager
def _holding(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A `mailswarm run` of HOLDING in its own process group; whatever of the group is still
    running at the end is killed."""
    profile = tmp_path / "p.yaml"
    profile.write_text(HOLDING)
    out = tmp_path / "out"
    proc = start_cli("run", str(profile), "--out", str(out), "--quiet", start_new_session=True)
    try:
        yield proc, out
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    return not alive(pid)


def _valid_stream(out: Path, *, killed: bool = False) -> list[Record]:
    """The run's stream, checked: a `run` header first, every line a record (but, when the run
    was `killed`, a last line cut off mid-write), an `end` record last unless killed."""
    reader = read_stream(out / "results.jsonl")
    records = list(reader)
    assert not reader.skipped, reader.skipped[:5]
    assert type(records[0]) is Header
    assert killed or not reader.cut_off
    assert (records[-1].KIND == "end") is not killed, records[-1]
    return records


def _rebuilt(out: Path, records: list[Record]) -> dict[str, Any]:
    """`mailswarm report DIR` rebuilds summary.json and report.html from the stream alone (the
    run's own are removed first); its summary, which counts every request of the stream."""
    for name in ("summary.json", "report.html"):
        (out / name).unlink(missing_ok=True)
    result = run_cli("report", str(out), timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert (out / "report.html").stat().st_size > 0
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    assert sum(r["count"] for r in summary["requests"]) == sum(
        1 for r in records if type(r) is Req)
    return summary


def _same_summary(run: dict[str, Any], rebuilt: dict[str, Any], *keys: str) -> None:
    """The summary the run wrote and the one rebuilt from its stream agree on `keys`."""
    for key in keys:
        assert run.get(key) == rebuilt.get(key), (key, run.get(key), rebuilt.get(key))


def _target_pid(stderr: str) -> int:
    match = re.search(r"embedded target \(pid (\d+)\)", stderr)
    assert match, stderr[-3000:]
    return int(match.group(1))


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_leaves_end_record_summary_and_report(tmp_path: Path, presses: int) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(HOLDING)
    out = tmp_path / "out"
    proc = start_cli("run", str(profile), "--out", str(out), "--quiet", start_new_session=True)
    try:
        _running(out, proc)
        time.sleep(1.0)
        t0 = time.monotonic()
        for _ in range(presses):  # the second while the first is still being handled
            os.killpg(proc.pid, signal.SIGINT)
            time.sleep(0.05)
        stdout, stderr = proc.communicate(timeout=30)
        stop_seconds = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == EXIT_INTERRUPTED == 130, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    assert stop_seconds < 10
    last = json.loads((out / "results.jsonl").read_text().splitlines()[-1])
    assert last["kind"] == "end" and last["reason"] == "interrupted"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["end"] == "interrupted"
    assert (out / "report.html").stat().st_size > 0
    assert "profile hold" in stdout  # the summary was printed
    if presses == 2:
        assert "stopping now" in stderr
    _same_summary(summary, _rebuilt(out, _valid_stream(out)), "end", "requests", "errors")


def test_sigterm_stops_gracefully_with_end_record_summary_and_report(tmp_path: Path) -> None:
    with _holding(tmp_path) as (proc, out):
        _running(out, proc)
        time.sleep(1.0)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # the run process only, not its group
        stdout, stderr = proc.communicate(timeout=30)
        stop_seconds = time.monotonic() - t0
    assert proc.returncode == EXIT_INTERRUPTED, stderr[-3000:]  # stopped by Ctrl-C or SIGTERM
    assert "Traceback" not in stderr, stderr[-3000:]
    assert stop_seconds < 10
    last = json.loads((out / "results.jsonl").read_text().splitlines()[-1])
    assert last["kind"] == "end" and last["reason"] == "interrupted"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["end"] == "interrupted" and not summary.get("incomplete")
    assert (out / "report.html").stat().st_size > 0
    assert "profile hold" in stdout  # the summary was printed
    assert _gone_within(_target_pid(stderr), 5)  # the run stopped its embedded target
    _same_summary(summary, _rebuilt(out, _valid_stream(out)), "end", "requests", "errors")


def test_sigkill_leaves_a_stream_report_reads_as_incomplete(tmp_path: Path) -> None:
    with _holding(tmp_path) as (proc, out):
        _running(out, proc, marker='"name":"LOGIN"')  # sessions have recorded their steps
        time.sleep(1.5)  # the writer flushes at least once a second
        proc.kill()  # the run process only: its target must notice on its own
        _, stderr = proc.communicate(timeout=10)
        target_gone = _gone_within(_target_pid(stderr), 5)
    assert proc.returncode == -signal.SIGKILL  # README: no status of its own (a shell: 137)
    assert target_gone
    _incomplete_but_rebuilt(out, "LOGIN")


def _incomplete_but_rebuilt(out: Path, step: str, at_least: int = 10) -> dict[str, Any]:
    """A killed run's folder: a valid stream without its end record, holding `at_least` records
    of `step`, and no summary; `mailswarm report` makes one over the time the stream covers,
    marked incomplete."""
    records = _valid_stream(out, killed=True)
    assert sum(1 for r in records if type(r) is Req and r.name == step) >= at_least
    assert not (out / "summary.json").exists()
    summary = _rebuilt(out, records)
    assert summary["end"] == "incomplete (no end record)" and summary["incomplete"] is True
    assert 0 < summary["duration_s"] < 60  # the time the stream covers, not a wild span
    return summary


def test_sigkill_of_a_worker_is_recorded_and_fails_the_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start_cli("run", "profiles/smtp-50mps.yaml", "--duration", "12s", "--workers", "2",
                     "--out", str(out), "--quiet")
    try:
        workers = workers_of(proc, 2)
        time.sleep(7)  # spawning and a few seconds of load
        killed = workers[0].pid
        workers[0].send_signal(signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_WORKER_LOST == 4, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    records = _valid_stream(out)
    events = [r for r in records if type(r) is WorkerEvent]
    assert sorted(e.event for e in events) == ["joined", "joined", "lost"]
    lost = next(e for e in events if e.event == "lost")
    assert lost.pid == killed and "SIGKILL" in (lost.cause or "") and lost.of == 2
    sessions = [r for r in records if type(r) is Req and r.name == "session"]
    per_worker = Counter(r.worker for r in sessions)
    assert len(per_worker) == 2  # the killed one's records up to its death are there
    assert min(per_worker.values()) >= 50
    assert max(per_worker.values()) >= 290  # the survivor ran its half to the end
    summary = json.loads((out / "summary.json").read_text())
    workers_seen = summary["workers"]
    assert workers_seen["expected"] == 2 and workers_seen["joined"] == 2
    assert [w["pid"] for w in workers_seen["lost"]] == [killed]
    arrival = summary["arrival"]["smtp"]
    assert arrival["intended"] == 600  # the whole schedule: 50/s for 12 s
    not_sent = workers_seen["not_sent"]["smtp"]
    assert 150 <= not_sent <= 300  # its half after its death (and what it had in flight)
    assert arrival["completed"] + arrival["interrupted"] + arrival["dropped"] + not_sent == 600
    assert "WORKER LOST" in stdout  # the summary
    assert "WORKER LOST" in stderr  # said when it happened
    _same_summary(summary, _rebuilt(out, records), "end", "requests", "errors", "workers",
                  "arrival")


def test_sigkill_of_the_master_stops_its_workers_and_leaves_a_stream(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start_cli("run", "profiles/smtp-50mps.yaml", "--duration", "60s", "--workers", "2",
                     "--out", str(out), "--quiet")
    family: list[psutil.Process] = []  # what the run started: workers, embedded target
    try:
        workers = workers_of(proc, 2)
        _running(out, proc, marker='"name":"session"')
        time.sleep(2)  # some seconds of load, flushed (the writer flushes once a second)
        family = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGKILL)
        _, stderr = proc.communicate(timeout=10)
        _, still = psutil.wait_procs(workers, timeout=5)
        target_gone = _gone_within(_target_pid(stderr), 5)
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in family:  # whatever of it outlived the test's checks
            if p.is_running():
                p.kill()
    assert proc.returncode == -signal.SIGKILL  # README: no status of its own (a shell: 137)
    assert not still, f"workers still running 5 s after the master died: {still}"
    assert target_gone
    summary = _incomplete_but_rebuilt(out, "session", at_least=50)
    assert summary["workers"]["joined"] == 2
