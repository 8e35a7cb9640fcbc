"""POP3 and IMAP users end to end against the embedded target: the population formula measured,
the seed profiles running with no set-up, idle sessions stopped promptly with DONE + LOGOUT."""

import json
import signal
import time
from pathlib import Path

import pytest
from cli import run_cli, start_cli

SCALED_POP3 = """
name: pop3-scaled
duration: 40s
drain: 5s
scenarios:
  - name: pop3
    user: pop3
    schedule:
      kind: arrival
      population: {users: 20000, checks_per_user: 2, session_time: 4s, peak_window: 1h}
      max_in_flight: 100
"""


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def test_mean_pop3_concurrency_matches_the_formula(tmp_path):
    # 20,000 x 2 / 3,600 s = 11.1 sessions/s; x 4 s = 44.4 concurrent sessions
    profile = tmp_path / "p.yaml"
    profile.write_text(SCALED_POP3)
    out = tmp_path / "out"
    result = run_cli("run", str(profile), "--out", str(out), "--quiet", timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "20,000 users x 2 checks in a 1h peak window" in result.stderr
    assert "44.4 concurrent sessions on average" in result.stderr
    s = summary(out)
    pop3 = s["sessions"]["POP3"]
    # the first 4 s ramp up from zero (Little's law needs a full session time to settle)
    assert pop3["mean"] == pytest.approx(44.4 * (1 - 2 / 40), rel=0.15)
    assert pop3["peak"] <= 60 and pop3["dropped"] == 0
    steps = {r["name"]: r for r in s["requests"]}
    assert {"CONNECT", "USER", "PASS", "STAT", "LIST", "UIDL", "RETR", "QUIT", "session"} <= set(
        steps)
    assert all(r["failures"] == 0 for r in s["requests"])
    assert steps["session"]["p50_ms"] == pytest.approx(4000, abs=200)  # held like a slow client
    assert s["embedded_target"]["servers"]["pop3"]["logins"] == steps["session"]["count"]


@pytest.mark.parametrize("profile", ["pop3-isp-100k", "imap-idle-corporate", "imap-active"])
def test_seed_profiles_run_against_the_embedded_target(tmp_path, profile):
    out = tmp_path / "out"
    result = run_cli("run", f"profiles/{profile}.yaml", "--duration", "8s", "--out", str(out),
                       "--quiet", timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    s = summary(out)
    assert s["requests"] and all(r["failures"] == 0 for r in s["requests"])
    assert s["sessions"]["POP3" if profile.startswith("pop3") else "IMAP"]["opened"] > 0


def test_stopping_3000_idle_imap_users_takes_under_5s(tmp_path):
    out = tmp_path / "out"
    proc = start_cli("run", "profiles/imap-idle-corporate.yaml", "--duration", "5m", "--out",
                     str(out), "--quiet")
    try:
        deadline = time.monotonic() + 120
        idle = 0
        while time.monotonic() < deadline and idle < 3000:
            time.sleep(1)
            stream = out / "results.jsonl"
            idle = stream.read_text().count('"name":"IDLE"') if stream.exists() else 0
        assert idle == 3000, "3,000 sessions did not reach IDLE"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        stop_seconds = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr[-3000:]
    assert stop_seconds < 5
    imap = summary(out)["embedded_target"]["servers"]["imap"]
    assert imap["commands"].get("DONE", 0) + imap["commands"].get("LOGOUT", 0) >= 3000
    assert imap["commands"].get("LOGOUT", 0) >= 2990  # every session said goodbye


DROPPING = """
name: drop
duration: 8s
drain: 0s
scenarios:
  - name: idle
    user: imap-idle
    schedule: {kind: closed, users: 20, spawn_rate: 100}
    imap: {hold: 1h, reconnect: {first: 1s, max: 4s}}
embedded: {imap_fault: drop-idle}
"""


def test_dropped_idle_sessions_are_recorded_and_reconnect_with_backoff(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text(DROPPING)
    out = tmp_path / "out"
    result = run_cli("run", str(profile), "--out", str(out), "--quiet", timeout=120)
    assert result.returncode in (0, 3), result.stderr[-3000:]
    s = summary(out)
    imap = s["sessions"]["IMAP"]
    assert imap["dropped"] >= 40 and imap["opened"] >= 40  # each user came back, several times
    # back-off 1 s, 2 s, 4 s (jittered 0.5-1.5x) in 8 s: a handful of attempts each, no tight loop
    assert imap["opened"] <= 20 * 8
    assert any("ImapDisconnected" in e["error"] for e in s["errors"])
