"""End to end through the CLI, against the embedded target: the seed's 50 msg/s case, the stream,
the summary, and `mailswarm report` rebuilding it."""

import itertools
import json

import pytest
from cli import run_cli

from loadtests.stream import End, Header, Req, Tick, read_stream


@pytest.fixture(scope="module")
def smtp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    result = run_cli("run", "profiles/smtp-50mps.yaml", "--duration", "10s", "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_fifty_messages_per_second_without_failures(smtp_run):
    out, _ = smtp_run
    summary = json.loads((out / "summary.json").read_text())
    arrival = summary["arrival"]["smtp"]
    assert arrival["intended_per_s"] == 50
    assert arrival["achieved_per_s"] == pytest.approx(50, abs=1)
    assert arrival["dropped"] == 0
    # > 50 ms behind: only when the machine is busy elsewhere (8-29 of 500 seen while
    # benchmarks ran next to it; none on a quiet machine)
    assert arrival["late"] <= 40
    requests = {(r["type"], r["name"]): r for r in summary["requests"]}
    assert {("DNS", "MX"), ("DNS", "A"), ("SMTP", "CONNECT"), ("SMTP", "EHLO"), ("SMTP", "MAIL"),
            ("SMTP", "RCPT"), ("SMTP", "DATA"), ("SMTP", "QUIT"), ("SMTP", "session")} <= set(
        requests)
    assert all(r["failures"] == 0 for r in summary["requests"])
    assert requests[("DNS", "MX")]["count"] == requests[("SMTP", "session")]["count"] == 500
    assert summary["embedded_target"]["smtp_messages"] == 500
    assert summary["duration_s"] == pytest.approx(10, abs=0.5)
    assert summary["profile"] == "smtp-50mps" and summary["target"]["name"] == "embedded"
    for field in ("p50_ms", "p95_ms", "p99_ms", "count", "failures", "type", "name"):
        assert field in summary["requests"][0]


def test_stream_is_written_as_the_run_goes(smtp_run):
    out, _ = smtp_run
    records = list(read_stream(out / "results.jsonl"))
    assert type(records[0]) is Header and type(records[-1]) is End
    assert [r.seq for r in records] == sorted(r.seq for r in records)
    ticks = [r.ts for r in records if type(r) is Tick]
    assert len(ticks) >= 10
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 1.5
    sessions = [r for r in records if type(r) is Req and r.name == "session"]
    assert all(r.lag_ms is not None for r in sessions)  # open model: timed from the intended start
    sizes = {r.len for r in records if type(r) is Req and r.name == "DATA"}
    assert sizes == {2048, 8192, 40960}  # the profile's size choices


def test_report_rebuilds_the_same_summary(smtp_run):
    out, _run = smtp_run
    before = json.loads((out / "summary.json").read_text())
    (out / "summary.json").unlink()
    result = run_cli("report", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "summary.json").read_text()) == before
    assert "SMTP   session" in result.stdout and "achieved" in result.stdout


def test_progress_and_summary_are_printed(smtp_run):
    _, result = smtp_run
    assert "embedded target (pid" in result.stderr
    assert "running" in result.stderr and "in flight" in result.stderr
    assert "arrival smtp: intended 50.0/s" in result.stdout
