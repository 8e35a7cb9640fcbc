"""Ceiling search against real Dovecot with its process_limit lowered to 100: the ceiling is found
between 90 and 100 idle IMAP sessions and named as the process limit."""

import json
import os
from collections.abc import Iterator

import pytest
from conftest import mailswarm

from loadtests.stack import DovecotLimits, StackConfig, using

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(os.geteuid() != 0, reason="the real stack needs root (apt, daemons)"),
]


@pytest.fixture(scope="module")
def dovecot_100() -> Iterator[StackConfig]:
    limits = DovecotLimits(process_limit=100, default_client_limit=5000, login_service_count=0)
    with using(["unbound", "postfix", "dovecot"], dovecot_limits=limits) as cfg:
        yield cfg


def test_ceiling_at_dovecots_process_limit(dovecot_100, tmp_path):
    out = tmp_path / "out"
    result = mailswarm("run", "profiles/ceiling-imap-idle.yaml", "--target",
                       "profiles/targets/stack.yaml", "--out", str(out), "--quiet", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    s = json.loads((out / "summary.json").read_text())
    ceiling = s["ceiling"]
    assert 90 <= ceiling["sessions"] <= 100, ceiling
    assert ceiling["cause"] == "target imap+pop3: process limit", ceiling
    assert ceiling["failed_step"] == 150
    assert "ceiling: 100 IMAP sessions" in result.stdout
