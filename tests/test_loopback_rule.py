"""The loopback rule when DNS points elsewhere: an MX answer off 127.0.0.0/8 is never followed
without --allow-remote, and the session is recorded as failed with that cause, its DNS steps
kept (the embedded target's `mail_address` answers the A query with a TEST-NET address)."""

from __future__ import annotations

import json
from pathlib import Path

from cli import run_cli

OFF_LOOPBACK = """
name: mx
duration: 2s
drain: 1s
scenarios:
  - name: smtp
    user: smtp
    schedule: {kind: arrival, rate: 5, max_in_flight: 5}
embedded: {mail_address: 192.0.2.1}
"""


def test_an_mx_off_loopback_fails_the_session_and_keeps_its_dns_steps(tmp_path: Path) -> None:
    profile = tmp_path / "p.yaml"
    profile.write_text(OFF_LOOPBACK)
    out = tmp_path / "out"
    result = run_cli("run", str(profile), "--out", str(out), "--quiet", timeout=120)
    assert result.returncode == 3, result.stderr[-3000:]  # failed its QoS: CONNECT errors
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert not [r for r in records if r["kind"] == "error"]  # no exception escaped a user
    reqs = [r for r in records if r["kind"] == "req"]
    steps = {(r["type"], r["name"], r["ok"]) for r in reqs}
    assert steps == {("DNS", "MX", True), ("DNS", "A", True), ("SMTP", "CONNECT", False),
                     ("SMTP", "session", False)}
    sessions = [r for r in reqs if r["name"] == "session"]
    assert len(sessions) >= 8
    assert all(r["err"].startswith("RemoteAddressRefused: the MX answer 192.0.2.1 is not a "
                                   "loopback address") for r in sessions)
    summary = json.loads((out / "summary.json").read_text())
    assert not summary.get("user_errors")
