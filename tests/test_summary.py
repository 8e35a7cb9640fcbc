"""summary.json on crafted streams: a killed run's stream, achieved vs intended over the same
sessions, the cost per held connection from a fit, failures grouped by a normalised cause,
skipped lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from streams import T0, header, req, write_stream

from loadtests.analysis.summary import summarize
from loadtests.console import format_summary
from loadtests.stream import RESULTS_FILE, Header, Phase, Sample, Tick

MIB = 2 ** 20


def _arrival_header(rate: float, bursts: bool = False) -> Header:
    schedule: dict[str, Any] = {"kind": "arrival", "rate": rate, "max_in_flight": 100}
    if bursts:
        schedule["bursts"] = {"share": 0.5, "every": 60.0, "spread": 1.0}
    return Header(T0 - 1, profile={"name": "crafted", "scenarios": [
        {"name": "smtp", "user": "smtp", "schedule": schedule}]},
        target={"name": "crafted", "endpoints": {}}, rates={"smtp": rate})


def _tick(t: float, **counters: int) -> Tick:
    return Tick(T0 + t, t, "running", 10, {"smtp": counters},
                {"SMTP": {"open": counters.get("in_flight", 0), "peak": 5, "opened": 0,
                          "dropped": 0}})


def test_a_killed_runs_stream_gives_a_summary_over_the_time_it_covers(tmp_path: Path) -> None:
    """No `arrival_stop`, no `end`: the window ends at the last record, marked incomplete."""
    records = [Phase(T0, "arrival_start", "smtp")]
    records += [_tick(t, intended=10 * t, started=10 * t, completed=10 * t - 5 if t else 0,
                      in_flight=5) for t in range(31)]
    records += [req(t / 10, "SMTP", "session", 50.0) for t in range(295)]
    folder = write_stream(tmp_path / "run", records, head=_arrival_header(10.0), end=False)
    summary = summarize(folder)
    assert summary["incomplete"] is True
    assert summary["end"] == "incomplete (no end record)"
    assert summary["duration_s"] == pytest.approx(30, abs=0.5)
    arrival = summary["arrival"]["smtp"]
    assert arrival["window_s"] == pytest.approx(30, abs=0.5)
    assert arrival["achieved_per_s"] == pytest.approx(295 / 30, rel=0.02)
    text = format_summary(summary)
    assert "incomplete" in text and "-17" not in text


def test_a_complete_run_is_not_marked_incomplete(tmp_path: Path) -> None:
    summary = summarize(write_stream(tmp_path / "run", [req(1, "SMTP", "DATA", 5.0)]))
    assert summary["incomplete"] is False and summary["end"] == "completed"


def test_achieved_is_compared_with_the_sessions_due_inside_the_window(tmp_path: Path) -> None:
    """Bursts on the minute: a 150 s window holds 3 bursts (830 sessions due) where the nominal
    rate (5.21/s) gives 781. A run that completed every session due is on target."""
    records = [Phase(T0, "arrival_start", "smtp"), Phase(T0 + 150, "arrival_stop", "smtp"),
               _tick(0, intended=0, started=0, completed=0),
               _tick(150, intended=830, started=830, completed=830, interrupted=0)]
    folder = write_stream(tmp_path / "run", records, head=_arrival_header(5.21, bursts=True))
    arrival = summarize(folder)["arrival"]["smtp"]
    assert arrival["intended_per_s"] == 5.21  # the profile's rate, as before
    assert arrival["due_per_s"] == pytest.approx(830 / 150, abs=0.001)
    assert arrival["achieved_per_s"] == arrival["due_per_s"]
    assert arrival["achieved_percent"] == 100.0
    text = format_summary(summarize(folder))
    assert "100.0% of the 830 sessions due" in text


def _sample(t: float, conns: int, pss: float, fds: int) -> Sample:
    return Sample(T0 + t, {"imap": {"pss_bytes": pss, "open_fds": fds, "processes": 4,
                                    "threads": 4}},
                  {"tcp": {"ports": {"143": {"local": {"ESTABLISHED": conns}}}}})


def _resources(tmp_path: Path, samples: list[Sample]) -> dict[str, Any]:
    head = header()
    head = Header(head.ts, profile=head.profile, target={
        "name": "crafted", "endpoints": {"imap": {"address": "127.0.0.1:143",
                                                  "protocol": "imap"}}})
    return summarize(write_stream(tmp_path / "run", samples, head=head))[
        "target_resources"]["imap"]


def test_per_connection_cost_is_the_slope_over_the_run(tmp_path: Path) -> None:
    """The first sample already holds 200 connections: the cost per connection is the slope of
    memory against connections held (9.5 KiB), not (peak - first) / peak."""
    samples = [_sample(t, conns, 10 * MIB + 9.5 * 1024 * conns + (t % 3) * 2048,
                       20 + conns)
               for t, conns in enumerate(range(200, 1001, 20))]
    imap = _resources(tmp_path, samples)
    per = imap["per_connection"]
    assert per["pss_bytes"] == pytest.approx(9.5 * 1024, rel=0.02)
    assert per["open_fds"] == pytest.approx(1.0, abs=0.01)
    fit = imap["per_connection_fit"]["pss_bytes"]
    assert fit["r2"] > 0.99 and fit["samples"] == len(samples) and fit["stderr"] < 50
    assert "pss_bytes" not in (imap.get("per_connection_suspect") or {})


def test_a_group_counts_each_port_once(tmp_path: Path) -> None:
    """A STARTTLS endpoint shares its port and its processes with the plain one (group
    `imap+imap-starttls`): the connections held are counted once, not once per endpoint."""
    head = header()
    head = Header(head.ts, profile=head.profile, target={"name": "crafted", "endpoints": {
        "imap": {"address": "127.0.0.1:143", "protocol": "imap"},
        "imap-starttls": {"address": "127.0.0.1:143", "protocol": "imap", "tls": "starttls"}}})
    samples = [Sample(T0 + t, {"imap+imap-starttls": {"pss_bytes": 10 * MIB + 4096 * conns}},
                      {"tcp": {"ports": {"143": {"local": {"ESTABLISHED": conns}}}}})
               for t, conns in enumerate(range(0, 501, 50))]
    group = summarize(write_stream(tmp_path / "run", samples, head=head))[
        "target_resources"]["imap+imap-starttls"]
    assert group["connections_max"] == 500
    assert group["per_connection"]["pss_bytes"] == pytest.approx(4096, rel=0.02)


def test_a_warm_server_says_its_baseline_is_suspect(tmp_path: Path) -> None:
    """A proxy that kept its memory from an earlier run: memory flat while 1,000 connections
    come and go. The cost is not reported as a clean ~0 KiB; the baseline is called suspect."""
    samples = [_sample(t, conns, 60 * MIB + (t % 2) * 4096, 20 + conns)
               for t, conns in enumerate(list(range(0, 1001, 50)) + list(range(1000, 0, -50)))]
    imap = _resources(tmp_path, samples)
    suspect = imap["per_connection_suspect"]
    assert "pss_bytes" in suspect and "open_fds" not in suspect
    assert imap["per_connection_fit"]["pss_bytes"]["r2"] < 0.5
    assert "baseline" in suspect["pss_bytes"]
    assert "suspect" in format_summary({"requests": [], "target_resources": {"imap": imap}})


def test_failures_are_grouped_by_a_normalised_cause(tmp_path: Path) -> None:
    records = [req(i / 10, "SMTP", "CONNECT", 5400.0, ok=False,
                   err=f"TimeoutError: timed out after 5.{400 + i} s talking to "
                       f"127.0.0.{i % 3 + 1}:{2500 + i}") for i in range(30)]
    records += [req(4, "SMTP", "RCPT", 3.0, ok=False, code=550,
                    err=f"SMTPRecipientsRefused: 550 5.1.1 <user{i}@example.test> unknown")
                for i in range(3)]
    summary = summarize(write_stream(tmp_path / "run", records))
    errors = {(e["name"], e["cause"]): e for e in summary["errors"]}
    assert len(errors) == 2
    timeout = errors[("CONNECT", "TimeoutError: timed out after <n> s talking to <addr>")]
    assert timeout["count"] == 30 and timeout["error"].startswith("TimeoutError: timed out")
    rcpt = errors[("RCPT", "SMTPRecipientsRefused 550: 5.1.1 <email> unknown")]
    assert rcpt["count"] == 3
    assert "30 x SMTP CONNECT: TimeoutError: timed out after <n> s" in format_summary(summary)


def test_errno_numbers_and_protocol_names_survive_the_masking(tmp_path: Path) -> None:
    """A reset is not a refusal, and "POP3" is no number: both stay in the cause, while the
    ports, ids and counters of each text are still masked into one group per cause."""
    texts = [f"Pop3ConnectError: connection reset (errno 104) by 127.0.0.1:{2000 + i}"
             for i in range(4)]
    texts += [f"Pop3ConnectError: connection refused (errno 111) by 127.0.0.1:{2000 + i}"
              for i in range(3)]
    texts += [f"Pop3ProtocolError: not a POP3 greeting after {10 + i} bytes, message {i}"
              for i in range(2)]
    texts += [f"ImapConnectError: [Errno 104] reset in IMAP4rev1 session {900 + i}"
              for i in range(2)]
    summary = summarize(write_stream(tmp_path / "run", [
        req(i / 10, "POP3", "CONNECT", 5.0, ok=False, err=text) for i, text in enumerate(texts)]))
    causes = {e["cause"]: e["count"] for e in summary["errors"]}
    assert causes == {
        "Pop3ConnectError: connection reset (errno 104) by <addr>": 4,
        "Pop3ConnectError: connection refused (errno 111) by <addr>": 3,
        "Pop3ProtocolError: not a POP3 greeting after <n> bytes, message <n>": 2,
        "ImapConnectError: [Errno 104] reset in IMAP4rev1 session <n>": 2,
    }


def test_garbage_lines_are_counted_and_shown(tmp_path: Path) -> None:
    folder = write_stream(tmp_path / "run", [req(i, "SMTP", "DATA", 5.0) for i in range(4)])
    path = folder / RESULTS_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    garbage = [b"not json\n", b"[1, 2]\n", b'"a string"\n', b"\xff\xfe\x00\x01binary\n",
               b'{"kind":"req","seq":9,"ts":"soon","type":"SMTP","name":"DATA","ms":1,'
               b'"ok":true}\n']
    path.write_bytes(b"".join(lines[:3] + garbage + lines[3:]))
    summary = summarize(folder)
    assert summary["skipped_lines"] == 5
    assert [s["line"] for s in summary["skipped"]] == [4, 5, 6, 7, 8]
    assert sum(r["count"] for r in summary["requests"]) == 4
    assert "skipped 5 lines" in format_summary(summary)
