"""`mailswarm doctor`: the advice as pure functions of made-up values, and on this machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from loadtests.analysis.cause import attribute_cause
from loadtests.monitor.doctor import collect_values, ephemeral_capacity, evaluate, render, verdict
from loadtests.stream import Sample, Step

ROOT = Path(__file__).resolve().parent.parent

SMALL = {
    "host": "box", "kernel": "6.1", "nofile": [1024, 4096], "nproc": [4000, 4000],
    "sysctl": {"fs.file-max": "100000", "fs.file-nr": "3000 0 100000",
               "kernel.threads-max": "8000", "kernel.pid_max": "32768",
               "vm.max_map_count": "65530", "net.core.somaxconn": "128",
               "net.ipv4.tcp_max_syn_backlog": "256", "net.ipv4.tcp_syncookies": "1",
               "net.ipv4.ip_local_port_range": "32768 60999",
               "net.ipv4.tcp_max_tw_buckets": "262144", "net.ipv4.tcp_fin_timeout": "60",
               "net.ipv4.tcp_tw_reuse": "0"},
    "processes": {"imap": {"pid": 42, "fd_limit": 1024, "fd_limit_hard": 1024}},
}


def by_key(values: dict, role: str = "generator", n: int = 10_000) -> dict:  # type: ignore[type-arg]
    return {c.key: c for c in evaluate(values, role, n)}  # type: ignore[arg-type]


def test_generator_advice_in_plain_words() -> None:
    c = by_key(SMALL)
    assert c["open files per process"].status == "warn"  # hard 4096 < 10,000
    assert "--workers" in c["open files per process"].says
    port = c["net.ipv4.ip_local_port_range"]
    assert port.value == "32768-60999" and port.status == "ok"
    assert "at most ~28,232 connections to one target port from one source address" in port.says
    assert "~470 new connections per second" in port.says  # tw_reuse=0: 28,232 / 60 s
    assert c["net.core.somaxconn"].status == "warn" and "somaxconn=4096" in c[
        "net.core.somaxconn"].fix
    assert c["kernel.threads-max"].status == "ok"  # a generator does not need a thread each
    assert "TIME_WAIT itself lasts 60 s" in c["net.ipv4.tcp_fin_timeout"].says
    assert "off" in c["net.ipv4.tcp_tw_reuse"].says
    assert "open files of imap" in c


def test_target_advice_and_verdict() -> None:
    checks = evaluate(SMALL, "target", 5000)
    c = {x.key: x for x in checks}
    assert "~512 sessions" in c["open files per process"].says
    assert c["open files of imap"].status == "warn" and "(pid 42)" in c["open files of imap"].says
    assert c["kernel.threads-max"].status == "ok" and c["max user processes (ulimit -u)"].status \
        == "warn"
    assert c["fs.file-max"].status == "ok"
    assert "proxy to its backend" in c["net.ipv4.ip_local_port_range"].says
    v = verdict(checks, "target", 5000)
    assert v.startswith("verdict: 5,000 concurrent connections on this target host would hit")
    assert "open files of imap" in v and "net.core.somaxconn" in v
    text = render(checks, "target host box:", "target", 5000)
    assert "LOW  net.core.somaxconn = 128" in text and "change: sysctl" in text
    assert text.splitlines()[-1] == v


def test_everything_fine_and_missing_values() -> None:
    big = {"nofile": [65536, 65536], "nproc": [None, None], "sysctl": {
        "fs.file-max": "9223372036854775807", "fs.file-nr": "1000 0 9223372036854775807",
        "net.core.somaxconn": "4096", "net.ipv4.ip_local_port_range": "1024 65535",
        "net.ipv4.tcp_tw_reuse": "2"}}
    checks = evaluate(big, "generator", 20_000)
    assert verdict(checks, "generator", 20_000) == \
        "verdict: this generator host is ready for 20,000 concurrent connections"
    assert {c.key for c in checks} >= {"fs.file-max", "net.ipv4.ip_local_port_range"}
    assert evaluate({}, "generator")[0].value == "soft unlimited, hard unlimited"


def test_this_machine() -> None:
    values = collect_values()
    assert values["nofile"][1] == 20_000  # the hard open-files limit here
    out = subprocess.run([sys.executable, "-m", "loadtests.monitor", "doctor", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode in (0, 1), out.stderr
    report = json.loads(out.stdout)
    gen = report["hosts"][0]
    assert gen["role"] == "generator" and gen["verdict"].startswith("verdict:")
    assert any(c["key"] == "net.ipv4.ip_local_port_range" for c in gen["checks"])
    text = subprocess.run([sys.executable, "-m", "loadtests.monitor", "doctor"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30).stdout
    assert "open files per process = soft" in text and "hard 20,000" in text


def test_doctor_with_an_unreachable_agent() -> None:
    out = subprocess.run([sys.executable, "-m", "loadtests.monitor", "doctor", "--agent",
                          "http://127.0.0.1:1", "--timeout", "2"], cwd=ROOT,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "cannot connect" in out.stderr
    assert "generator host" in out.stdout  # the local part is still printed


def test_source_addresses_multiply_the_port_range() -> None:
    """One source address holds ~range connections to one server port; each further source
    address adds the whole range again (a connection is unique by source address and port)."""
    one = by_key(SMALL, n=60_000)["net.ipv4.ip_local_port_range"]
    assert one.status == "warn" and "~28,232 connections" in one.says
    assert "3 or more source addresses" in one.fix
    three = {c.key: c for c in evaluate(SMALL, "generator", 60_000, source_addresses=3)}[
        "net.ipv4.ip_local_port_range"]
    assert three.status == "ok" and three.fix is None
    assert "~84,696 connections to one target port from 3 source addresses (28,232 ports " \
           "each)" in three.says
    assert ephemeral_capacity((32768, 60999), 3) == 84_696
    assert ephemeral_capacity((40000, 40999), 0) == 1000 and ephemeral_capacity(None) is None
    target = {c.key: c for c in evaluate(SMALL, "target", 60_000, source_addresses=3)}
    assert target["net.ipv4.ip_local_port_range"].status == "warn"  # a target's own range


def test_the_ports_exhausted_cause_names_the_capacity() -> None:
    """The generator-side judgement says how far the ports went: range x source addresses."""
    failed = Step(30, 5000, start=20, end=30, errors={"Cannot assign requested address": 9},
                  codes={"EADDRNOTAVAIL": 9})
    gen = {"ephemeral_ports": {"in_use": 3000, "range_size": 1000, "source_addresses": 3,
                               "capacity_per_destination": 3000}}
    cause, evidence = attribute_cause(None, failed, [], [Sample(25, {}, {}, gen)])
    assert cause == "generator: ephemeral ports exhausted"
    assert evidence == ["EADDRNOTAVAIL from the generator; ephemeral ports in use 3000 of 3,000 "
                        "per server port (1,000 ports x 3 source address(es); more "
                        "source_addresses lift it)"]


def test_the_sampler_reports_the_configured_source_addresses() -> None:
    from loadtests.clients import source
    from loadtests.monitor.net import local_port_range
    from loadtests.monitor.sampler import Sampler

    source.configure({("127.0.0.1", 10143): ["127.0.0.2", "127.0.0.3"]})
    try:
        eph = Sampler().sample()["generator"]["ephemeral_ports"]
    finally:
        source.configure({})
    lo, hi = local_port_range() or (0, -1)
    assert eph["source_addresses"] == 2
    assert eph["capacity_per_destination"] == 2 * (hi - lo + 1)


def test_doctor_cli_takes_source_addresses() -> None:
    out = subprocess.run([sys.executable, "-m", "loadtests.cli", "doctor", "--json",
                          "--connections", "100000", "--source-addresses", "8"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    checks = {c["key"]: c for c in json.loads(out.stdout)["hosts"][0]["checks"]}
    assert "from 8 source addresses" in checks["net.ipv4.ip_local_port_range"]["says"]
