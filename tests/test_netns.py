"""A distributed run across separate network hosts: network namespaces joined by veth pairs on a
bridge (in a namespace of its own), on a private subnet that exists only inside them — a target
host running the embedded target, a master host (`mailswarm run --master`), two worker hosts
(`mailswarm worker --master`). Every record reaches the master, the workers' parts add up to
the schedule, and a worker cut off from the network mid-run is recorded as lost (and quits by
itself). Needs root and iproute2 (skipped otherwise); everything built is removed afterwards,
also on failure. Only the addresses this test creates, inside its own namespaces, are used.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cli import ROOT

from loadtests.cli import EXIT_WORKER_LOST
from loadtests.embedded.mailstore import password_for
from loadtests.stream import Req, WorkerEvent, read_stream

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None,
    reason="builds network namespaces: needs root and iproute2 (`ip netns`)")

SUBNET = "10.213.0"  # private, only inside this test's namespaces
HOSTS = {"target": 10, "master": 11, "worker1": 21, "worker2": 22}
MASTER_PORT = 5557
POP3_PORT = 20110


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


class Hosts:
    """The namespaces (one per host, and the switch), built on entry, removed on exit with
    every process still running in them."""

    def __init__(self) -> None:
        tag = f"msw{os.getpid() % 100000}"
        self.ns = {role: f"{tag}-{role}" for role in HOSTS}
        self.switch = f"{tag}-sw"
        self.procs: list[subprocess.Popen[str]] = []

    def address(self, role: str) -> str:
        return f"{SUBNET}.{HOSTS[role]}"

    def __enter__(self) -> Hosts:
        try:
            self._build()
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._remove()

    def _build(self) -> None:
        _ip("netns", "add", self.switch)
        _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.switch, "link", "set", "br0", "up")
        for i, (role, ns) in enumerate(self.ns.items()):
            _ip("netns", "add", ns)
            _ip("link", "add", "veth0", "netns", ns, "type", "veth", "peer", "name", f"p{i}",
                "netns", self.switch)
            _ip("-n", self.switch, "link", "set", f"p{i}", "master", "br0")
            _ip("-n", self.switch, "link", "set", f"p{i}", "up")
            _ip("-n", ns, "addr", "add", f"{self.address(role)}/24", "dev", "veth0")
            _ip("-n", ns, "link", "set", "veth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def _remove(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        for ns in [*self.ns.values(), self.switch]:
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                                  timeout=10).stdout.split()
            for pid in pids:  # started by this test inside its own namespace
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)

    def start(self, role: str, *args: str, cwd: Path = ROOT) -> subprocess.Popen[str]:
        """`mailswarm ARGS` on host `role`."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns[role], sys.executable, "-m", "loadtests.cli", *args],
            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)})
        self.procs.append(proc)
        return proc

    def cut(self, role: str) -> None:
        """Take host `role` off the network."""
        _ip("-n", self.ns[role], "link", "set", "veth0", "down")


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    with Hosts() as built:
        yield built


def _target_file(path: Path, host: str) -> Path:
    path.write_text(yaml.safe_dump({
        "name": "netns-embedded", "domain": "example.test", "password": password_for(""),
        "endpoints": {"pop3": {"host": host, "port": POP3_PORT}}}))
    return path


def _profile(path: Path) -> Path:
    path.write_text(
        "name: netns-pop3\nduration: 12s\ndrain: 3s\nseed: 7\nscenarios:\n"
        "  - name: pop3\n    user: pop3\n"
        "    schedule: {kind: arrival, rate: 20, process: fixed, max_in_flight: 50}\n")
    return path


def _start_target(hosts: Hosts) -> None:
    help_text = subprocess.run([sys.executable, "-m", "loadtests.cli", "target", "--help"],
                               capture_output=True, text=True, cwd=ROOT).stdout
    extra = ["--allow-remote"] if "--allow-remote" in help_text else []
    target = hosts.start("target", "target", "--host", hosts.address("target"),
                         "--pop3-port", str(POP3_PORT), "--smtp-port", "0", "--dns-port", "0",
                         "--imap-port", "0", *extra)
    assert target.stdout is not None
    ready = target.stdout.readline()  # one JSON line with its ports, once it listens
    assert json.loads(ready)["pop3_port"] == POP3_PORT


def test_master_and_workers_on_separate_hosts(hosts: Hosts, tmp_path: Path) -> None:
    _start_target(hosts)
    out = tmp_path / "out"
    master = hosts.start(
        "master", "run", str(_profile(tmp_path / "profile.yaml")), "--target",
        str(_target_file(tmp_path / "target.yaml", hosts.address("target"))), "--master",
        "--expect-workers", "2", "--master-bind", f"{hosts.address('master')}:{MASTER_PORT}",
        "--allow-remote", "--out", str(out), "--quiet")
    elsewhere = tmp_path / "worker-host"  # no profile or target file there
    elsewhere.mkdir()
    master_at = f"{hosts.address('master')}:{MASTER_PORT}"
    workers = {role: hosts.start(role, "worker", "--master", master_at, "--allow-remote",
                                 cwd=elsewhere) for role in ("worker1", "worker2")}
    time.sleep(9)  # joined, spawned, a few seconds of load
    assert master.poll() is None, master.communicate()[1][-3000:]
    hosts.cut("worker2")  # worker2's host falls off the network mid-run
    cut_at = time.time()
    stdout, stderr = master.communicate(timeout=120)
    worker_status = {role: proc.wait(30) for role, proc in workers.items()}

    assert master.returncode == EXIT_WORKER_LOST, stderr[-3000:]
    assert worker_status == {"worker1": 0, "worker2": 3}  # worker2 quit: its master was gone
    records = list(read_stream(out / "results.jsonl"))
    events = [r for r in records if type(r) is WorkerEvent]
    joined = {e.worker: e for e in events if e.event == "joined"}
    lost = [e for e in events if e.event == "lost"]
    assert sorted((e.index, e.of) for e in joined.values()) == [(0, 2), (1, 2)]
    assert len(lost) == 1 and "heartbeat" in (lost[0].cause or "")
    assert cut_at < lost[0].ts < cut_at + 8
    sessions = [r for r in records if type(r) is Req and r.name == "session"]
    per_worker = Counter(r.worker for r in sessions)
    survivor = next(w for w in joined if w != lost[0].worker)
    assert per_worker[survivor] == 120  # its half of 20/s for 12 s, every record at the master
    assert all(r.ok for r in sessions if r.worker == survivor)
    summary = json.loads((out / "summary.json").read_text())
    arrival = summary["arrival"]["pop3"]
    assert arrival["intended"] == 240
    not_sent = summary["workers"]["not_sent"]["pop3"]
    assert 20 <= not_sent <= 80
    assert arrival["completed"] + arrival["interrupted"] + arrival["dropped"] + not_sent == 240
    assert "WORKER LOST" in stdout
