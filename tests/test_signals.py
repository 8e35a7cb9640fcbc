"""Ctrl-C on a real `mailswarm run`, as a terminal sends it (SIGINT to the whole process group:
the run and its embedded target): once stops gracefully, twice stops at once — and both leave
the stream's end record, summary.json and report.html, exit 130 and no traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli import start_cli

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


def _running(out: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    """Wait until the load phase has started (its phase record is in the stream)."""
    deadline = time.monotonic() + timeout
    stream = out / "results.jsonl"
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        if stream.exists() and '"load_start"' in stream.read_text():
            return
        time.sleep(0.2)
    pytest.fail("the run did not start its load phase")


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
