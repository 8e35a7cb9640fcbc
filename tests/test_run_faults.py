"""A misbehaving or unreachable target becomes recorded failures and the run ends on time; a
stalled target shows up as late and dropped sessions; a stopped or killed run keeps its data."""

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli import alive, run_cli, start_cli
from conftest import write_target_file

from loadtests.stream import Req, read_stream

PROFILE = """
name: faults
duration: {duration}
drain: 2s
scenarios:
  - name: smtp
    user: smtp
    schedule: {{kind: arrival, rate: 20, max_in_flight: {channels}, max_wait: 500ms}}
    smtp: {{connect_timeout: 1s, command_timeout: 1s, connect_to: {connect_to}}}
embedded: {embedded}
"""


def profile(tmp_path: Path, duration="4s", channels=20, embedded="{}", connect_to="mx") -> Path:
    path = tmp_path / "profile.yaml"
    path.write_text(PROFILE.format(duration=duration, channels=channels, embedded=embedded,
                                   connect_to=connect_to))
    return path


def timed_run(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    result = run_cli(*args, timeout=90)
    return result, time.monotonic() - t0


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize(("fault", "failing_step", "error_text"), [
    ("reply-5xx", "RCPT", "554"),
    ("reply-4xx", "RCPT", "451"),
    ("close-mid-data", "DATA", ""),
    ("reset", "CONNECT", ""),
    ("garbage", "CONNECT", ""),
])
def test_misbehaving_target_is_recorded_and_the_run_ends_on_time(tmp_path, fault, failing_step,
                                                                  error_text):
    out = tmp_path / "out"
    path = profile(tmp_path, embedded=f"{{fault: {fault}, fault_ratio: 0.5}}")
    result, elapsed = timed_run("run", str(path), "--out", str(out), "--quiet")
    assert result.returncode == 3, result.stderr[-2000:]  # completed, failed its QoS
    assert result.stdout.startswith("QoS FAIL") or "\nQoS FAIL" in result.stdout
    assert elapsed < 4 + 2 + 10  # duration + drain + start-up and teardown
    s = summary(out)
    steps = {(r["type"], r["name"]): r for r in s["requests"]}
    failed = steps[("SMTP", failing_step)]["failures"]
    sessions = steps[("SMTP", "session")]
    assert 0 < failed < sessions["count"]  # about half the connections are hit
    assert sessions["failures"] == failed
    assert any(e["name"] == failing_step and error_text in e["error"] for e in s["errors"])
    assert s["embedded_target"]["smtp_faults"] == failed
    assert s["arrival"]["smtp"]["achieved_per_s"] == pytest.approx(20, abs=1.5)


def test_unreachable_target_is_recorded(tmp_path, embedded):
    out = tmp_path / "out"
    target = embedded.target.model_copy(update={"endpoints": {
        "smtp": embedded.target.endpoints["smtp"].model_copy(update={"port": 1}),
        "dns": embedded.target.endpoints["dns"]}})
    target_file = write_target_file(tmp_path / "t.yaml", target)
    path = profile(tmp_path, duration="3s", connect_to="endpoint")
    result, elapsed = timed_run("run", str(path), "--target", str(target_file), "--out", str(out),
                                "--quiet")
    assert result.returncode == 3, result.stderr[-2000:]
    steps = {(r["type"], r["name"]): r for r in summary(out)["requests"]}
    assert steps[("SMTP", "CONNECT")]["failures"] == steps[("SMTP", "CONNECT")]["count"] >= 55
    assert steps[("DNS", "MX")]["failures"] == 0
    assert elapsed < 15


def test_stalled_target_counts_late_and_dropped_and_fails_qos(tmp_path):
    out = tmp_path / "out"
    path = profile(tmp_path, duration="5s", channels=4, embedded="{fault: stall}")
    result, _ = timed_run("run", str(path), "--out", str(out), "--quiet")
    assert result.returncode == 3, result.stderr[-2000:]  # QoS failed: CI pipelines can gate
    qos = summary(out)["qos"]
    assert qos["pass"] is False
    assert any(c["name"] == "SMTP CONNECT: error rate" and not c["pass"] for c in qos["checks"])
    a = summary(out)["arrival"]["smtp"]
    assert a["intended"] == 100
    assert a["in_flight_max"] == 4
    # each channel is held 1 s by the stall, so ~4 sessions/s start: the rest wait, then drop
    assert a["dropped"] >= 60
    assert a["late"] >= 5
    assert a["started"] + a["dropped"] == a["intended"]
    assert a["achieved_per_s"] < 6


def _start_run(tmp_path: Path, out: Path) -> subprocess.Popen:
    path = profile(tmp_path, duration="60s")
    return start_cli("run", str(path), "--out", str(out), "--quiet")


def _wait_for_requests(out: Path, proc: subprocess.Popen, count: int = 20) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        stream = out / "results.jsonl"
        if stream.exists() and stream.read_text().count('"name":"session"') >= count:
            return
        time.sleep(0.3)
    raise AssertionError("the run recorded no sessions")


def test_ctrl_c_keeps_what_was_measured(tmp_path):
    out = tmp_path / "out"
    proc = _start_run(tmp_path, out)
    _wait_for_requests(out, proc)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 10
    assert proc.returncode == 130, stderr[-2000:]
    s = summary(out)
    assert s["end"] == "interrupted"
    assert s["duration_s"] < 30
    sessions = next(r for r in s["requests"] if r["name"] == "session")
    assert sessions["count"] >= 20 and sessions["failures"] == 0
    assert "stopping" in stderr and "SMTP" in stdout
    # the target stopped too; a session cut off by the stop after its DATA was accepted is in
    # the target's count but, unfinished, not a session record
    interrupted = s["arrival"]["smtp"]["interrupted"]
    assert sessions["count"] <= s["embedded_target"]["smtp_messages"] <= (
        sessions["count"] + interrupted)


def test_killed_run_keeps_its_stream_and_can_be_reported(tmp_path):
    out = tmp_path / "out"
    proc = _start_run(tmp_path, out)
    _wait_for_requests(out, proc)
    proc.kill()
    _, stderr = proc.communicate(timeout=10)
    kept = [r for r in read_stream(out / "results.jsonl") if type(r) is Req]
    assert len(kept) >= 20
    result = run_cli("report", str(out))
    assert result.returncode == 0, result.stderr
    s = summary(out)
    assert s["end"] == "incomplete (no end record)" and s["incomplete"] is True
    assert sum(r["count"] for r in s["requests"]) == len(kept)
    # the embedded target dies with its parent instead of lingering
    target_pid = int(re.search(r"embedded target \(pid (\d+)\)", stderr).group(1))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and alive(target_pid):
        time.sleep(0.1)
    assert not alive(target_pid)

