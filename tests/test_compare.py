"""compare: the bootstrap pieces on crafted numbers, then two pairs of short real runs (a
command delay of 20 ms against none: significant; the same settings twice: no change)."""

import random
from pathlib import Path

import pytest
from runs import run_all, shrunk_profile

from loadtests.analysis.bootstrap import (
    block_mean_draws,
    block_quantile_draws,
    diff_interval,
    quantile_draws,
)
from loadtests.analysis.compare import compare_records, compare_runs, format_compare
from loadtests.analysis.stream import RunRecords
from loadtests.stream import Req


def test_block_bootstrap_is_seeded_and_separates_different_means() -> None:
    a = [10.0 + (i % 3) for i in range(60)]
    b = [14.0 + (i % 3) for i in range(60)]
    d1 = block_mean_draws(a, 500, random.Random(7))
    assert d1 == block_mean_draws(a, 500, random.Random(7))
    iv = diff_interval(sum(a) / 60, sum(b) / 60, d1, block_mean_draws(b, 500, random.Random(8)))
    assert iv.excludes_zero and 30 < iv.percent_low < iv.percent < iv.percent_high < 50
    same = diff_interval(11, 11, d1, block_mean_draws(a, 500, random.Random(9)))
    assert not same.excludes_zero


def test_quantile_draws_follow_the_sample() -> None:
    values = sorted(float(v) for v in range(1000))
    draws = quantile_draws(values, 95, 2000, random.Random(1))
    assert 930 < sum(draws) / len(draws) < 970 and max(draws) < 980
    per_second = [[float(v) for v in range(s, 1000, 10)] for s in range(10)]
    blocked = block_quantile_draws(per_second, (50, 99), 300, random.Random(1))
    assert 400 < sum(blocked[50]) / 300 < 600 and min(blocked[99]) > 900


def test_ceiling_change_uses_the_ramp_resolution() -> None:
    def run(sessions: int, failed: int) -> tuple[RunRecords, dict]:
        return RunRecords(), {"ceiling": {"protocol": "IMAP", "sessions": sessions,
                                          "step": sessions, "failed_step": failed,
                                          "cause": "process limit"}}
    result = compare_records(run(100, 150), run(200, 250), resamples=100)
    row = result["metrics"][0]
    assert row["metric"] == "ceiling" and row["significant"] is True
    assert row["interval_percent"] == [50.0, 150.0] and row["diff_percent"] == 100.0
    assert result["verdict"] == "ceiling +100% [+50%, +150%]"
    close = compare_records(run(100, 150), run(120, 170), resamples=100)
    assert close["metrics"][0]["significant"] is False
    assert close["verdict"] == "no significant change"
    single = compare_records(run(100, 0), run(120, 0), resamples=100)
    assert single["metrics"][0]["text"] == "ceiling: no interval: single value"


def test_a_tail_percentile_needs_enough_requests_beyond_it() -> None:
    """400 requests: p50 and p95 are judged, p99 (4 requests beyond it) is shown, not judged;
    with 2,000 requests p99 is judged too."""
    def run(n: int, slow_ms: float) -> tuple[RunRecords, dict]:
        rng = random.Random(n + int(slow_ms))
        reqs = [Req(i / 50, "SMTP", "session", slow_ms if i % 25 == 0 else
                        5.0 * rng.uniform(0.9, 1.1) * (3 if i % 10 == 0 else 1))
                for i in range(n)]
        return RunRecords(requests=reqs), {}

    def p99(result: dict) -> dict:
        return next(r for r in result["metrics"] if r["metric"] == "SMTP session p99 ms")
    few = compare_records(run(400, 20.0), run(400, 80.0), resamples=200)
    assert p99(few)["interval_percent"][0] > 25 and p99(few)["significant"] is False
    assert "not judged: 4 requests beyond p99, needs 10" in p99(few)["text"]
    assert few["verdict"] == "no significant change"
    many = compare_records(run(2000, 20.0), run(2000, 80.0), resamples=200)
    assert p99(many)["significant"] is True and "not judged" not in p99(many)["text"]


@pytest.fixture(scope="module")
def smtp_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("compare")
    slow = shrunk_profile("smtp-50mps.yaml", folder, "slow", duration="8s",
                          embedded={"command_delay": "20ms"})
    fast = shrunk_profile("smtp-50mps.yaml", folder, "fast", duration="8s")
    runs = {"fast1": fast, "fast2": fast, "slow": slow}
    run_all([(profile, folder / name) for name, profile in runs.items()])
    return {name: folder / name for name in runs}


def test_command_delay_is_a_significant_change(smtp_runs: dict[str, Path]) -> None:
    result = compare_runs(smtp_runs["fast1"], smtp_runs["slow"])
    assert result["significant"], format_compare(result)
    session = next(r for r in result["metrics"] if r["metric"] == "SMTP session p50 ms")
    assert session["significant"] and session["interval_percent"][0] > 0
    assert "SMTP session p50 ms +" in result["verdict"]


def test_same_settings_no_significant_change(smtp_runs: dict[str, Path]) -> None:
    result = compare_runs(smtp_runs["fast1"], smtp_runs["fast2"])
    assert result["verdict"] == "no significant change", format_compare(result)


def test_compare_cli_json_and_html(smtp_runs: dict[str, Path], tmp_path: Path) -> None:
    import argparse
    import json

    from loadtests.report.cli import register

    parser = argparse.ArgumentParser(prog="mailswarm")
    register(parser.add_subparsers())
    page = tmp_path / "compare.html"
    args = parser.parse_args(["compare", str(smtp_runs["fast1"]), str(smtp_runs["slow"]),
                              "--html", str(page), "--resamples", "300"])
    assert args.func(args) == 0
    html = page.read_text()
    assert html.count('"type":"line"') > 10 and "B SMTP" in html  # ECharts series
    args = parser.parse_args(["compare", str(smtp_runs["fast1"]), str(tmp_path), "--json"])
    assert args.func(args) == 2
    assert json.loads(json.dumps(compare_runs(smtp_runs["fast1"], smtp_runs["fast2"],
                                              resamples=200)))["resamples"] == 200


# -- failures, losses and verdicts are always compared (crafted runs) ---------------------------

def _crafted(reqs: list[Req], **arrival: int) -> tuple[RunRecords, dict]:
    """A run of these requests (30 s load window) and its summary (computed, as without
    summary.json); `arrival` counters make it an open-model run of scenario `smtp`."""
    from loadtests.analysis.stream import collect
    from loadtests.analysis.summary import summarize_records
    from loadtests.stream import End, Header, Phase, Tick

    scenarios = [{"name": "smtp", "user": "smtp",
                  "schedule": {"kind": "arrival", "rate": 50.0}}] if arrival else []
    records = [Header(0.0, profile={"name": "crafted", "scenarios": scenarios}),
               Phase(0.0, "load_start"), Phase(0.0, "arrival_start", "smtp"), *reqs]
    if arrival:
        records.append(Tick(30.0, 30.0, "running", 10, {"smtp": arrival}, {}))
    records += [Phase(30.0, "arrival_stop", "smtp"), End(30.5, "completed", 30.0)]
    run = collect(records)
    return run, summarize_records(run)


def _sessions(n: int, ok: bool = True, ms: float = 50.0, rtype: str = "SMTP",
              name: str = "session") -> list[Req]:
    err = None if ok else "SMTPServerDisconnected: Connection unexpectedly closed"
    return [Req(i * 30 / n, rtype, name, ms * (1 + (i % 7) / 20), 0, ok, err) for i in range(n)]


def _metric(result: dict, name: str) -> dict:
    return next(r for r in result["metrics"] if r["metric"] == name)


def test_every_session_failing_is_a_significant_change() -> None:
    healthy = _crafted(_sessions(1500) + _sessions(1500, name="CONNECT", ms=2.0))
    broken = _crafted(_sessions(1500, ok=False, ms=33.0)
                      + _sessions(1500, ok=False, name="CONNECT", ms=30.0))
    result = compare_records(healthy, broken, resamples=200)
    errors = _metric(result, "SMTP session error %")
    assert errors["a"] == 0.0 and errors["b"] == 100.0 and errors["significant"] is True
    assert "0 → 1,500 failures" in errors["text"]
    assert "SMTP session error %" in result["verdict"]
    qos = _metric(result, "QoS verdict")
    assert (qos["a"], qos["b"], qos["significant"]) == ("PASS", "FAIL", True)
    assert "SMTP CONNECT: error rate" in qos["text"]
    # a failed session's time is not the server's speed: no "B faster" from failures
    p50 = _metric(result, "SMTP session p50 ms")
    assert p50["b"] is None and "present only in A" in p50["text"]
    assert not p50["significant"]
    assert "SMTP session p50" not in result["verdict"]
    assert "0 → 1,500 failures" in format_compare(result)


def test_a_metric_in_one_run_only_is_shown_as_such() -> None:
    a = _crafted(_sessions(600))
    b = _crafted(_sessions(600) + _sessions(300, rtype="IMAP", name="LOGIN"))
    result = compare_records(a, b, resamples=200)
    login = _metric(result, "IMAP LOGIN p50 ms")
    assert login["a"] is None and "present only in B" in login["text"]
    ops = _metric(result, "IMAP operations/s (mean)")
    assert ops["a"] == 0.0 and ops["b"] == pytest.approx(10.0, rel=0.05)
    assert ops["significant"] is True


def test_lost_sessions_and_achieved_rate_are_compared() -> None:
    a = _crafted(_sessions(1500), intended=1500, started=1500, completed=1500, dropped=0,
                 interrupted=0, late=0)
    b = _crafted(_sessions(1100), intended=1500, started=1150, completed=1100, dropped=350,
                 interrupted=50, late=400)
    result = compare_records(a, b, resamples=200)
    dropped = _metric(result, "arrival smtp dropped %")
    assert dropped["significant"] is True and "0 → 350 dropped" in dropped["text"]
    achieved = _metric(result, "arrival smtp achieved %")
    assert achieved["a"] == 100.0 and achieved["b"] == pytest.approx(73.3, abs=0.1)
    assert achieved["significant"] is True
    assert _metric(result, "arrival smtp interrupted %")["significant"] is True
    same = compare_records(a, a, resamples=200)
    assert same["verdict"] == "no significant change"


def test_a_header_only_run_is_not_comparable() -> None:
    healthy, empty = _crafted(_sessions(600)), _crafted([])
    for a, b, side in ((healthy, empty, "B"), (empty, healthy, "A")):
        result = compare_records(a, b, resamples=100)
        assert result["comparable"] is False
        assert result["verdict"] != "no significant change"
        assert f"{side} recorded no requests" in result["verdict"]


def test_compare_cli_exits_2_on_a_header_only_run(tmp_path: Path) -> None:
    from streams import req, write_stream

    from loadtests.cli import EXIT_BAD_INPUT, main

    good = write_stream(tmp_path / "good", [req(i / 10, "SMTP", "DATA", 5.0)
                                             for i in range(50)])
    empty = write_stream(tmp_path / "empty", [])
    assert main(["compare", str(good), str(empty), "--resamples", "100"]) == EXIT_BAD_INPUT


# -- bootstrap intervals are never nonsense -----------------------------------------------------

def test_sparse_requests_give_no_nan_draws() -> None:
    """3 requests over 600 seconds: some resamples draw only empty seconds."""
    per_second: list[list[float]] = [[] for _ in range(600)]
    for i in range(3):
        per_second[i * 200].append(10.0 + i)
    draws = block_quantile_draws(per_second, (50, 99), 500, random.Random(3))
    assert all(v == v for q in draws for v in draws[q])  # no NaN
    assert all(10.0 <= v <= 12.0 for q in draws for v in draws[q])


def test_an_interval_is_ordered_and_contains_its_estimate() -> None:
    nan = float("nan")
    iv = diff_interval(100.0, 60.0, [100.0, nan, 98.0, 102.0] * 50,
                       [90.0, 91.0, nan, 95.0] * 50)
    assert iv.low <= iv.diff <= iv.high
    assert iv.percent_low <= iv.percent <= iv.percent_high
    assert all(v == v for v in (iv.low, iv.high, iv.percent_low, iv.percent_high))


def test_too_few_requests_are_said_so() -> None:
    a = _crafted(_sessions(600) + _sessions(5, name="NOOP", ms=3.0))
    b = _crafted(_sessions(600) + _sessions(6, name="NOOP", ms=30.0))
    row = _metric(compare_records(a, b, resamples=200), "SMTP NOOP p50 ms")
    assert row["significant"] is False and row["interval"] is None
    assert "too few requests (5 in A, 6 in B" in row["text"]
