"""Ceiling search against the embedded target: the step verdict (pure), the ceiling found at an
open-files limit and named so, and the generator's own limit reported as the generator's."""

import json
import resource

import pytest
from cli import run_cli

from loadtests.analysis.cause import attribute_cause
from loadtests.profiles import StopWhen
from loadtests.schedule.ceiling import StepStats, judge_step
from loadtests.stream import Sample, Step

RAMP = """
name: ceiling-test
duration: 3m
drain: 0s
scenarios:
  - name: imap-idle
    user: imap-idle
    schedule: {{kind: ramp, start: {start}, step: {step}, max: {max}, hold: 4s, spawn_rate: 200}}
    imap: {{hold: 9h, connect_timeout: 2s, read_timeout: 10s, reconnect: {{first: 5s, max: 60s}}}}
embedded: {embedded}
"""


def test_step_verdict():
    ok = StepStats(users=10, started=0, requests=100, failures=1, latencies=[10.0] * 100)
    assert judge_step(ok, StopWhen()) == (True, [])
    failing = StepStats(users=10, started=0, requests=100, failures=2, latencies=[10.0] * 100)
    good, reasons = judge_step(failing, StopWhen())
    assert not good and reasons == ["2.0% of 100 requests failed (limit 1%)"]
    slow = StepStats(users=10, started=0, requests=10, latencies=[6000.0] * 10)
    assert judge_step(slow, StopWhen())[1] == ["p95 6000 ms over 5000 ms"]


def _sample(ts, processes, fds=10, limit=1024, gen_fds=20, gen_limit=20000, cpu=10):
    return Sample(ts, targets={"imap": {"processes": processes, "threads": processes,
                                        "open_fds": fds, "fd_limit": limit,
                                        "fd_max_ratio": fds / limit}},
                  generator={"open_fds": gen_fds, "fd_limit": gen_limit, "cpu_percent": cpu},
                  system={"memory": {"total_bytes": 100, "available_bytes": 50}})


def _step(users, start, end, errors=None, codes=None):
    return Step(end, users, start=start, end=end, errors=errors or {}, codes=codes)


def test_cause_process_limit_from_a_plateau():
    first = _step(50, 0, 10)
    good = _step(100, 10, 20)
    failed = _step(150, 20, 30, {"ImapDisconnected: x": 50})
    cause, evidence = attribute_cause(good, failed, [_sample(15, 106)], [_sample(25, 106)],
                                      first=first, first_samples=[_sample(5, 56)])
    assert cause == "target imap: process limit"
    assert "56 at 50 users, 106 at 100" in evidence[0] and "flat (106 at 150)" in evidence[0]


def test_cause_prefers_the_generators_own_limits():
    failed = _step(150, 20, 30, {"OSError: [Errno 24] Too many open files": 9})
    cause, _ = attribute_cause(None, failed, [], [_sample(25, 1, fds=1000, limit=1024)])
    assert cause == "generator: open files limit"  # not the target's, though it is full too
    busy = _step(150, 20, 30, {"x": 1})
    assert attribute_cause(None, busy, [], [_sample(25, 1, cpu=97)])[0] == "generator: CPU"
    reply = _step(150, 20, 30, {"ImapReplyError: LOGIN NO [LIMIT] Too many connections": 3})
    assert attribute_cause(None, reply, [], [_sample(25, 1)])[0].startswith(
        "server reply NO [LIMIT]")


def run_ramp(tmp_path, limit_generator_fds: int | None = None, **fmt) -> dict:
    profile = tmp_path / "ramp.yaml"
    profile.write_text(RAMP.format(**fmt))
    out = tmp_path / "out"

    def lower_limit():
        if limit_generator_fds:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit_generator_fds, limit_generator_fds))

    result = run_cli("run", str(profile), "--out", str(out), "--quiet", timeout=240,
                     preexec_fn=lower_limit)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


def test_ceiling_at_the_targets_open_files_limit(tmp_path):
    s = run_ramp(tmp_path, start=200, step=10, max=400, embedded="{nofile_limit: 256}")
    ceiling = s["ceiling"]
    assert 230 <= ceiling["sessions"] <= 250
    assert ceiling["cause"].endswith("open files limit") and ceiling["cause"].startswith("target")
    assert any("fd limit" in e for e in ceiling["evidence"])
    assert [st["good"] for st in s["steps"]][-1] is False


def test_generator_limit_is_the_generators(tmp_path):
    # the target could hold thousands; the generator may open only 300 files
    s = run_ramp(tmp_path, limit_generator_fds=300, start=200, step=50, max=1000,
                 embedded="{}")
    ceiling = s["ceiling"]
    assert ceiling["cause"] == "generator: open files limit"
    assert ceiling["sessions"] <= 300
    assert not ceiling["cause"].startswith("target")


@pytest.mark.parametrize("text", ["ceiling:", "cause:"])
def test_the_ceiling_is_printed(tmp_path, text):
    from loadtests.console import format_summary
    summary = {"requests": [], "ceiling": {"protocol": "IMAP", "sessions": 240, "step": 240,
                                           "failed_step": 250, "cause": "x", "evidence": ["y"]}}
    assert text in format_summary(summary)
