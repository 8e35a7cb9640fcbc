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
