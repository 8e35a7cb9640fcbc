"""The fault matrix (a cheap subset): POP3 and IMAP against the embedded target's own faults
(`pop3_fault`, `imap_fault`): a connection reset after accept, a server that never greets, a
garbage greeting. Each case: the run ends within duration + drain + 5 s, the failure is in the
summary's `errors` with its normalised cause, summary and report exist, exit status 3 (the run
completed and failed its QoS). SMTP's faults are in test_run_faults.py."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli import run_cli

DURATION, DRAIN = 3.0, 1.0
SLACK = 5.0  # the bound: a run ends within duration + drain + 5 s
START_UP = 10.0  # the CLI's own start (imports, the embedded target) and teardown, wall clock

POP3 = """
  - name: pop3
    user: pop3
    schedule: {kind: arrival, rate: 5, max_in_flight: 10, max_wait: 500ms}
    pop3: {connect_timeout: 1s, read_timeout: 1s}
"""
IMAP = """
  - name: imap
    user: imap-idle
    schedule: {kind: closed, users: 5, spawn_rate: 50}
    imap: {hold: 1h, connect_timeout: 1s, read_timeout: 1s, reconnect: {first: 200ms, max: 1s}}
"""
PROFILE = """
name: fault-matrix
duration: {duration}s
drain: {drain}s
scenarios:{scenario}
embedded: {{{protocol}_fault: {fault}}}
"""

# (protocol, fault) -> the normalised causes the CONNECT failures may have, each as words it
# contains; a reset races with the connect, so it can fail the connect call itself or the read
# of the greeting after it
CASES: dict[tuple[str, str], list[tuple[str, ...]]] = {
    ("pop3", "reset"): [("Pop3ServerDisconnected", "reset"), ("Pop3ConnectError", "reset")],
    ("pop3", "stall"): [("Pop3ConnectTimeout", "no connection and greeting")],
    ("pop3", "garbage"): [("Pop3ProtocolError", "not a POP")],
    ("imap", "reset"): [("ImapDisconnected", "reset"), ("ImapConnectError", "connect call")],
    ("imap", "stall"): [("ImapConnectTimeout",)],
    ("imap", "garbage"): [("ImapProtocolError", "not an IMAP greeting")],
}


def _stream_span(stream: Path) -> float:
    """Seconds from the stream's first record to its end record."""
    lines = stream.read_text().splitlines()
    first, last = json.loads(lines[0]), json.loads(lines[-1])
    assert last["kind"] == "end"
    return float(last["ts"]) - float(first["ts"])


@pytest.mark.parametrize(("protocol", "fault"), sorted(CASES))
def test_fault_is_recorded_and_the_run_ends_on_time(tmp_path: Path, protocol: str,
                                                    fault: str) -> None:
    profile = tmp_path / "profile.yaml"
    profile.write_text(PROFILE.format(duration=DURATION, drain=DRAIN, protocol=protocol,
                                      fault=fault, scenario=POP3 if protocol == "pop3" else IMAP))
    out = tmp_path / "out"
    t0 = time.monotonic()
    result = run_cli("run", str(profile), "--out", str(out), "--quiet", timeout=60)
    elapsed = time.monotonic() - t0
    assert result.returncode == 3, result.stderr[-2000:]  # completed, QoS failed
    assert _stream_span(out / "results.jsonl") <= DURATION + DRAIN + SLACK
    assert elapsed <= DURATION + DRAIN + SLACK + START_UP
    assert (out / "report.html").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["end"] == "completed"
    assert summary["qos"]["pass"] is False
    kind = protocol.upper()
    connect = next(r for r in summary["requests"] if (r["type"], r["name"]) == (kind, "CONNECT"))
    assert connect["failures"] == connect["count"] > 0  # every connection hit the fault
    errors = [e for e in summary["errors"] if (e["type"], e["name"]) == (kind, "CONNECT")]
    allowed = CASES[protocol, fault]
    # one group per cause, however the timings, addresses and ports of the texts differ
    assert len(errors) <= len(allowed), errors
    for error in errors:
        cause = error["cause"].lower()
        assert any(all(w.lower() in cause for w in words) for words in allowed), error["cause"]
    assert sum(e["count"] for e in errors) == connect["failures"]
