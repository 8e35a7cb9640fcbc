"""The seed's 50 msg/s SMTP case against real Postfix + unbound from the project's stack: every
message the run saw accepted lands in a maildir, carrying its send-time header."""

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli import run_cli

from loadtests.clients.message import SENT_HEADER
from loadtests.stack import StackConfig, using

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(os.geteuid() != 0, reason="the real stack needs root (apt, daemons)"),
]


@pytest.fixture(scope="module")
def postfix() -> Iterator[StackConfig]:
    with using(["unbound", "postfix"]) as cfg:  # holds the stack against other test sessions
        yield cfg


def delivered(cfg: StackConfig) -> set[Path]:
    return set(cfg.mail_dir.glob("*/*/new/*"))


def test_smtp_50mps_lands_in_the_maildirs(postfix, tmp_path):
    before = delivered(postfix)
    out = tmp_path / "out"
    result = run_cli("run", "profiles/smtp-50mps.yaml", "--target", "profiles/targets/stack.yaml",
                       "--duration", "10s", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    steps = {(r["type"], r["name"]): r for r in summary["requests"]}
    accepted = steps[("SMTP", "DATA")]["count"] - steps[("SMTP", "DATA")]["failures"]
    assert accepted >= 490
    assert steps[("DNS", "MX")]["failures"] == 0 and steps[("DNS", "MX")]["count"] >= 490
    assert summary["arrival"]["smtp"]["achieved_per_s"] == pytest.approx(50, abs=1)

    deadline = time.monotonic() + 60  # Postfix delivers behind the SMTP replies
    while time.monotonic() < deadline and len(delivered(postfix) - before) < accepted:
        time.sleep(0.5)
    new = delivered(postfix) - before
    assert len(new) == accepted
    sample = next(iter(new)).read_text(errors="replace")
    assert f"{SENT_HEADER}:" in sample and "Message-ID: <" in sample
