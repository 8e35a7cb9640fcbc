"""Ceiling search against real Dovecot: with its process_limit lowered to 100 the ceiling is found
between 90 and 100 idle IMAP sessions and named as the process limit; `mailswarm compare` calls
100 -> 200 a significant ceiling change and two runs at 100 no change of the ceiling."""

import json
import os
from pathlib import Path

import pytest
from cli import run_cli

from loadtests.stack import DovecotLimits, using

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(os.geteuid() != 0, reason="the real stack needs root (apt, daemons)"),
]


def ceiling_run(out: Path, process_limit: int) -> tuple[dict, str]:
    limits = DovecotLimits(process_limit=process_limit, default_client_limit=5000,
                           login_service_count=0)
    with using(["unbound", "postfix", "dovecot"], dovecot_limits=limits):
        result = run_cli("run", "profiles/ceiling-imap-idle.yaml", "--target",
                           "profiles/targets/stack.yaml", "--out", str(out), "--quiet",
                           timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "summary.json").read_text()), result.stdout


def ceiling_row(a: Path, b: Path) -> tuple[dict, dict]:
    result = run_cli("compare", str(a), str(b), "--json", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    comparison = json.loads(result.stdout)
    return next(r for r in comparison["metrics"] if r["metric"] == "ceiling"), comparison


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("ceilings")
    found = {}
    for name, limit in (("a100", 100), ("b100", 100), ("c200", 200)):
        found[name] = base / name
        found[name + "_summary"], found[name + "_stdout"] = ceiling_run(base / name, limit)
    return found


def test_ceiling_at_dovecots_process_limit(runs):
    ceiling = runs["a100_summary"]["ceiling"]
    assert 90 <= ceiling["sessions"] <= 100, ceiling
    # Dovecot's group: every stack endpoint its processes serve (imap+pop3+imaps+...)
    assert ceiling["cause"].startswith("target imap+pop3+"), ceiling
    assert ceiling["cause"].endswith(": process limit"), ceiling
    assert ceiling["failed_step"] == 150
    assert "ceiling: 100 IMAP sessions" in runs["a100_stdout"]
    assert 190 <= runs["c200_summary"]["ceiling"]["sessions"] <= 200


def test_compare_calls_a_raised_process_limit_significant(runs):
    row, comparison = ceiling_row(runs["a100"], runs["c200"])
    assert row["significant"] is True, row
    assert row["text"].startswith("ceiling +100%"), row
    assert "ceiling +100%" in comparison["verdict"]


def test_compare_calls_the_same_setting_no_change_of_the_ceiling(runs):
    row, comparison = ceiling_row(runs["a100"], runs["b100"])
    assert row["significant"] is False, row
    assert "ceiling" not in comparison["verdict"]
