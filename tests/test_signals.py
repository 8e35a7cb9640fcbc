"""Signals to a real `mailswarm run`. Ctrl-C as a terminal sends it (SIGINT to the whole
process group: the run and its embedded target): once stops gracefully, twice stops at once —
and both leave the stream's end record, summary.json and report.html, exit 130 and no
traceback. SIGTERM to the run process alone (as `kill` or a service manager sends it) is a
graceful stop too, exit 130 (README's exit table). SIGKILL of the run process leaves a stream
without its end record that `mailswarm report` reads as incomplete, keeping what was measured,
and the embedded target does not outlive the run."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli import alive, run_cli, start_cli

from loadtests.stream import Req, read_stream

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
    assert proc.returncode == 130, stderr[-3000:]
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


def test_sigterm_stops_gracefully_with_end_record_summary_and_report(tmp_path: Path) -> None:
    with _holding(tmp_path) as (proc, out):
        _running(out, proc)
        time.sleep(1.0)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # the run process only, not its group
        stdout, stderr = proc.communicate(timeout=30)
        stop_seconds = time.monotonic() - t0
    assert proc.returncode == 130, stderr[-3000:]  # README: stopped by Ctrl-C or SIGTERM
    assert "Traceback" not in stderr, stderr[-3000:]
    assert stop_seconds < 10
    last = json.loads((out / "results.jsonl").read_text().splitlines()[-1])
    assert last["kind"] == "end" and last["reason"] == "interrupted"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["end"] == "interrupted" and not summary.get("incomplete")
    assert (out / "report.html").stat().st_size > 0
    assert "profile hold" in stdout  # the summary was printed
    assert _gone_within(_target_pid(stderr), 5)  # the run stopped its embedded target


def test_sigkill_leaves_a_stream_report_reads_as_incomplete(tmp_path: Path) -> None:
    with _holding(tmp_path) as (proc, out):
        _running(out, proc, marker='"name":"LOGIN"')  # sessions have recorded their steps
        time.sleep(1.5)  # the writer flushes at least once a second
        proc.kill()  # the run process only: its target must notice on its own
        _, stderr = proc.communicate(timeout=10)
        target_gone = _gone_within(_target_pid(stderr), 5)
    assert proc.returncode == -signal.SIGKILL
    assert target_gone
    stream = out / "results.jsonl"
    assert '"kind":"end"' not in stream.read_text()
    kept = [r for r in read_stream(stream) if type(r) is Req]
    assert len(kept) >= 10
    assert not (out / "summary.json").exists()
    result = run_cli("report", str(out), timeout=60)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["end"] == "incomplete (no end record)" and summary["incomplete"] is True
    assert sum(r["count"] for r in summary["requests"]) == len(kept)  # what was measured
    assert 0 < summary["duration_s"] < 60  # the time the stream covers, not a wild span
    assert (out / "report.html").stat().st_size > 0
