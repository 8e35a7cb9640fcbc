"""Distributed runs: N local worker processes, every record in the master's stream through
Locust's messaging; a killed worker loses at most its last second."""

import json
import signal
import time
from collections import Counter

import psutil
from cli import run_cli, start_cli

from loadtests.stream import Req, read_stream


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


def test_a_killed_worker_keeps_what_it_reported(tmp_path):
    out = tmp_path / "out"
    proc = start_cli("run", "profiles/smtp-50mps.yaml", "--duration", "12s", "--workers", "2",
                     "--out", str(out), "--quiet")
    try:
        deadline = time.monotonic() + 60
        workers = []
        while time.monotonic() < deadline and len(workers) < 2:
            workers = [p for p in psutil.Process(proc.pid).children()
                       if "loadtests.run.worker" in " ".join(p.cmdline())]
            time.sleep(0.2)
        assert len(workers) == 2
        time.sleep(7)  # spawning and a few seconds of load
        workers[0].send_signal(signal.SIGKILL)
        _, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    sessions = [r for r in read_stream(out / "results.jsonl")
                if type(r) is Req and r.name == "session"]
    per_worker = Counter(r.worker for r in sessions)
    assert len(per_worker) == 2  # the killed one's records up to its death are there
    assert min(per_worker.values()) >= 50
    assert max(per_worker.values()) >= 250  # the survivor ran to the end
