"""The generator's saturation signal: its own lag readings (the probe), the pure decision on
crafted samples, what the summary, headline, console and ceiling cause make of it, and real runs
— one process driven far past its limit (it fires while the load runs) and at a rate it holds
easily (it stays quiet), and a worker's readings reaching the master."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
import yaml
from cli import run_cli

from loadtests import bridge
from loadtests.analysis.cause import attribute_cause
from loadtests.analysis.saturation import (
    ASYNCIO_STALL_MS,
    CPU_BUSY,
    LOOP_LAG_MS,
    NEEDED,
    WINDOW,
    SaturationWatch,
    behind,
    format_saturation,
    generator_saturation,
)
from loadtests.analysis.stream import RunRecords
from loadtests.analysis.summary import summarize_records
from loadtests.monitor.lag import LagProbe, merge_readings, summarise
from loadtests.report.headline import headline
from loadtests.stream import End, Header, Phase, Sample, Step

T0 = 1_700_000_000.0
ON_TIME = {"hub_p50_ms": 0.5, "hub_p95_ms": 1.1, "asyncio_p50_ms": 0.6, "probes": 20}
BEHIND = {"hub_p50_ms": 7.0, "hub_p95_ms": 60.0, "asyncio_p50_ms": 4.0, "probes": 16}
TARGET_SLOW = {**ON_TIME, "start_p95_ms": 999.0, "starts": 1000, "queued": 1000}


def _samples(readings: list[dict], process: str = "local", cpu: float = 50.0) -> list[Sample]:
    return [Sample(T0 + i + 1, {}, {}, {"cpu_percent": cpu}, lag={process: r})
            for i, r in enumerate(readings)]


# -- the decision (pure) --------------------------------------------------------------------
def test_a_second_is_behind_by_its_median_timer_lag_or_late_handoffs():
    assert not behind(ON_TIME)
    assert behind(BEHIND)  # the hub's median over the threshold
    assert behind({**ON_TIME, "hub_p50_ms": LOOP_LAG_MS})
    assert not behind({**ON_TIME, "asyncio_p50_ms": 3.8})  # an idle asyncio loop wakes late
    assert behind({**ON_TIME, "asyncio_p50_ms": ASYNCIO_STALL_MS})  # a stall of its own
    assert not behind({**ON_TIME, "hub_p95_ms": 150.0})  # one late wake-up is no saturation
    assert not behind(TARGET_SLOW)  # starts late because every channel was busy: the target
    assert behind({**ON_TIME, "handoff_p95_ms": 60.0})  # an idle channel started late: us
    assert not behind({**ON_TIME, "cpu_percent": 100.0})  # busy, and on time: no saturation
    assert not behind({**TARGET_SLOW, "cpu_percent": 60.0})
    assert behind({**TARGET_SLOW, "cpu_percent": CPU_BUSY})  # busy, and its starts late


def test_saturated_from_the_first_of_three_behind_seconds_in_four():
    assert (NEEDED, WINDOW) == (3, 4)
    readings = ([ON_TIME] * 3 + [BEHIND] * 2 + [ON_TIME] * 2 + [BEHIND] * 2 + [ON_TIME]
                + [BEHIND] * 3 + [ON_TIME] * 2 + [BEHIND])
    verdict = generator_saturation(_samples(readings), t0=T0)
    assert verdict.from_ts == T0 + 8  # the 8th sample starts the first 3 of 4
    assert verdict.process == "local" and verdict.behind_seconds == 8
    assert "behind in 5 of 6 s from t = 8 s" in verdict.evidence[0]  # to the next 2 s gap
    assert "a median 7.0 to 7.0 ms late (asyncio 4.0 to 4.0 ms" in verdict.evidence[0]
    assert verdict.as_dict(T0)["saturated_from_s"] == 8.0


def test_quiet_when_only_the_target_is_slow_or_stalls_pass():
    readings = [TARGET_SLOW] * 5 + [BEHIND] * 2 + [TARGET_SLOW] * 2 + [BEHIND] + [ON_TIME] * 3
    verdict = generator_saturation(_samples(readings))
    assert verdict.measured and verdict.from_ts is None and verdict.behind_seconds == 3
    assert verdict.worst_ms == 7.0


def test_the_live_watch_fires_once_with_the_same_rule():
    watch = SaturationWatch()
    said = [watch.add({"master": BEHIND, "local": r})
            for r in [BEHIND, ON_TIME, ON_TIME, BEHIND, BEHIND, ON_TIME, BEHIND, BEHIND]]
    assert said == [None] * 6 + ["local", None]
    readings = [BEHIND, ON_TIME, ON_TIME, BEHIND, BEHIND, ON_TIME, BEHIND, BEHIND]
    assert generator_saturation(_samples(readings), t0=T0).from_ts == T0 + 4


def test_the_master_runs_no_users_and_workers_count_apart():
    assert generator_saturation(_samples([BEHIND] * 5, process="master")).from_ts is None
    mixed = [Sample(T0 + i, {}, {}, None,
                    lag={"w1": BEHIND if i >= 2 else ON_TIME, "w2": ON_TIME})
             for i in range(6)]
    verdict = generator_saturation(mixed)
    assert verdict.from_ts == T0 + 2 and verdict.process == "w1"


def test_no_lag_readings_means_not_measured():
    verdict = generator_saturation([Sample(T0, {}, {}, {"cpu_percent": 100.0})])
    assert not verdict.measured and verdict.from_ts is None


# -- summary, headline, console, ceiling cause --------------------------------------------------
def _summary(readings: list[dict], cpu: float) -> dict:
    header = Header(T0, profile={"name": "p", "scenarios": [
        {"name": "smtp", "user": "smtp", "schedule": {"kind": "arrival", "rate": 1000}}]},
        rates={"smtp": 1000})
    return summarize_records(RunRecords(header=header, samples=_samples(readings, cpu=cpu),
                                        phases=[Phase(T0, "load_start")],
                                        end=End(T0 + len(readings), load_end=T0 + len(readings))))


def test_summary_headline_and_console_say_the_generator_was_saturated():
    summary = _summary([ON_TIME] * 2 + [BEHIND] * 5, cpu=100.0)
    gen = summary["generator"]
    assert gen["saturated_from_s"] == pytest.approx(3.0, abs=0.01)
    assert gen["saturation"]["process"] == "local" and gen["saturation"]["evidence"]
    warnings = headline(summary).warnings
    assert warnings[0].startswith("the generator was saturated from t = 3 s (local: its event")
    assert "not the target's" in warnings[0]
    assert not any("CPU peaked" in w for w in warnings)
    console = "\n".join(format_saturation(summary))
    assert "generator: SATURATED from t = 3 s" in console


def test_a_busy_cpu_alone_is_no_saturation_any_more():
    summary = _summary([ON_TIME] * 6, cpu=100.0)
    assert summary["generator"]["saturated_from_s"] is None
    assert not any("generator" in w for w in headline(summary).warnings)
    assert "generator: kept up" in "\n".join(format_saturation(summary))


def test_a_stream_without_lag_readings_still_warns_on_cpu():
    summary = {"generator": {"cpu_percent_max": 97.0}, "end": "completed"}
    assert any("CPU peaked at 97%" in w for w in headline(summary).warnings)
    assert format_saturation(summary) == []


def test_the_ceiling_cause_blames_the_generator_by_its_lag_not_its_cpu():
    failed = Step(T0 + 10, 200, start=T0, end=T0 + 10, errors={"TimeoutError: x": 9})
    cause, evidence = attribute_cause(None, failed, [], _samples([BEHIND] * 5, cpu=60.0))
    assert cause == "generator: saturated (event loop late)"
    assert "event loop ran behind" in evidence[0] and "CPU 60%" in evidence[-1]
    cause, _ = attribute_cause(None, failed, [], _samples([ON_TIME] * 5, cpu=100.0))
    assert not cause.startswith("generator")


# -- the probe --------------------------------------------------------------------------------
def test_readings_summarise_and_merge():
    reading = summarise([0.001] * 19 + [0.2], [0.002] * 20, [0.003, 1.0], [0.003], 1, 55.04)
    assert reading["hub_p50_ms"] == 1.0 and reading["hub_max_ms"] == 200.0
    assert reading["asyncio_p95_ms"] == 2.0 and reading["probes"] == 20
    assert reading["starts"] == 2 and reading["queued"] == 1 and reading["handoff_p95_ms"] == 3.0
    assert reading["cpu_percent"] == 55.0
    merged = merge_readings(reading, {"probes": 5, "hub_p50_ms": 9.0, "starts": 3,
                                      "cpu_percent": 65.0})
    assert merged["probes"] == 25 and merged["starts"] == 5 and merged["hub_p50_ms"] == 9.0
    assert merged["cpu_percent"] == 60.0


def test_the_probe_sees_a_blocked_hub():
    bridge.start()
    probe = LagProbe(interval=0.02)
    probe.start()
    try:
        gevent.sleep(0.3)
        idle = probe.take()
        assert idle["probes"] >= 5 and idle["hub_p50_ms"] < LOOP_LAG_MS
        assert "asyncio_p50_ms" in idle
        busy_until = time.perf_counter() + 0.3  # a greenlet that never yields blocks the hub
        while time.perf_counter() < busy_until:
            sum(range(1000))
        gevent.sleep(0.1)
        blocked = probe.take()
        assert blocked["hub_max_ms"] >= 200
    finally:
        probe.stop()


# -- real runs --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sink_target(tmp_path_factory) -> Iterator[Path]:
    """Postfix's smtp-sink on a free loopback port (it answers faster than one generator process
    sends), as a target file; stopped by its pid."""
    sink = shutil.which("smtp-sink") or shutil.which("smtp-sink", path="/usr/sbin:/usr/bin")
    if sink is None:
        pytest.skip("needs Postfix's smtp-sink (apt-get install postfix)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sink, *(["-u", "nobody"] if os.geteuid() == 0 else []),
                             f"127.0.0.1:{port}", "1000"], stdin=subprocess.DEVNULL)
    folder = tmp_path_factory.mktemp("sink")
    path = folder / "target.yaml"
    path.write_text(yaml.safe_dump({"name": "smtp-sink", "domain": "mailswarm.test",
                                    "sender": "load@mailswarm.test", "endpoints": {
                                        "smtp": {"host": "127.0.0.1", "port": port}}}))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    yield path
    proc.terminate()
    proc.wait(timeout=5)


def _profile(folder: Path, rate: float, duration: str) -> Path:
    path = folder / f"open-{rate:g}.yaml"
    path.write_text(yaml.safe_dump({
        "name": f"saturation-{rate:g}", "duration": duration, "drain": "1s", "seed": 1,
        "scenarios": [{"name": "smtp", "user": "smtp", "schedule": {
            "kind": "arrival", "rate": rate, "process": "fixed", "max_in_flight": 200,
            "late_after": "50ms"}, "smtp": {
            "messages_per_session": 1, "recipients_per_message": 1, "size": {"fixed": "1KiB"},
            "mx_lookup": False, "connect_to": "endpoint"}}]}))
    return path


def _run(profile: Path, out: Path, *args: str) -> tuple[dict, str, str]:
    """The summary, the end-of-run summary printed (stdout) and what was said during the run."""
    result = run_cli("run", str(profile), "--out", str(out), *args, timeout=90)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads((out / "summary.json").read_text()), result.stdout, result.stderr


def test_one_process_far_past_its_limit_is_saturated_while_the_load_runs(tmp_path, sink_target):
    # ~2,500 sessions/s is the most one process holds here (bench/smtp_throughput --open): 5x
    summary, console, live = _run(_profile(tmp_path, 12_500, "7s"), tmp_path / "out",
                                  "--target", str(sink_target))
    at = summary["generator"]["saturated_from_s"]
    assert at is not None and at <= 7 - NEEDED, summary["generator"]
    warnings = headline(summary).warnings
    said = next(i for i, w in enumerate(warnings) if "generator was saturated" in w)
    short = next(i for i, w in enumerate(warnings) if "of the intended" in w)
    assert said < short and "(the generator was saturated)" in warnings[short]
    assert "generator: SATURATED from t =" in console  # the end-of-run summary
    said_live = live.index("GENERATOR SATURATED: local's event loop is running behind")
    assert said_live < live.index(" draining ")  # said while the load ran


def test_a_rate_held_easily_stays_quiet(tmp_path, sink_target):
    summary, console, live = _run(_profile(tmp_path, 100, "6s"), tmp_path / "out",
                                  "--target", str(sink_target))
    late = summary["arrival"]["smtp"]["late"]
    if late > 6:  # the machine, not the generator, was too busy to hold even this: no verdict
        pytest.skip(f"100/s was not held on this busy machine ({late} late): cannot judge quiet")
    gen = summary["generator"]
    assert gen["saturated_from_s"] is None, gen["saturation"]
    assert "generator: kept up" in console and "GENERATOR SATURATED" not in live


def test_a_workers_lag_reaches_the_master(tmp_path, sink_target):
    _run(_profile(tmp_path, 50, "4s"), tmp_path / "out", "--target", str(sink_target),
         "--workers", "1")
    processes: set[str] = set()
    for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["kind"] == "sample":
            processes |= {p for p, r in (record.get("lag") or {}).items() if r.get("starts")}
    assert processes and "master" not in processes and "local" not in processes
