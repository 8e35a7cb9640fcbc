"""A distributed run across separate network hosts: network namespaces joined by veth pairs on a
bridge (in a namespace of its own), on a private subnet that exists only inside them — a target
host running the embedded target (or, in the second test, the stack's real Dovecot), a master
host (`mailswarm run --master`), two worker hosts (`mailswarm worker --master`). Every record
reaches the master, the workers' parts add up to the schedule, and a worker cut off from the
network mid-run is recorded as lost (and quits by itself). Needs root and iproute2 (skipped
otherwise); everything built is removed afterwards, also on failure. Only the addresses this
test creates, inside its own namespaces, are used.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cli import ROOT
from netns import remove_namespace

from loadtests.cli import EXIT_WORKER_LOST
from loadtests.embedded.mailstore import password_for
from loadtests.stack import DOMAIN, PASSWORD, PORTS
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
            remove_namespace(ns)

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
        "--allow-remote", "--worker-timeout", "4", "--out", str(out), "--quiet")
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


@pytest.mark.skipif(shutil.which("dovecot") is None, reason="needs Debian's dovecot-imapd "
                    "(`mailswarm stack install`)")
def test_real_dovecot_on_the_target_host(hosts: Hosts, tmp_path: Path) -> None:
    """The stack's Dovecot, in a run folder of its own, listens on the target host's address
    (its namespace has its own ports: the fixed stack ports do not meet the host's stack); an
    IMAP scenario from a master and two workers on other hosts reaches it, and every session
    record reaches the master, as many from each worker as it counted."""
    run_dir = Path(tempfile.mkdtemp(prefix="msw-netns-dovecot-"))
    run_dir.chmod(0o755)  # Dovecot's auth process (user dovecot) reads its users file there
    target = hosts.address("target")
    try:
        up = hosts.start("target", "stack", "up", "dovecot", "--no-deps", "--no-install",
                         "--dir", str(run_dir), "--listen", target)
        _, err = up.communicate(timeout=120)
        assert up.returncode == 0, err[-3000:]
        (tmp_path / "target.yaml").write_text(yaml.safe_dump({
            "name": "netns-dovecot", "domain": DOMAIN, "password": PASSWORD,
            "users": {"pattern": "user{n:04d}", "first": 1, "count": 1000},
            "endpoints": {"imap": {"host": target, "port": PORTS["imap"]}}}))
        (tmp_path / "profile.yaml").write_text(
            "name: netns-dovecot\nduration: 10s\ndrain: 5s\nseed: 3\nscenarios:\n"
            "  - name: imap\n    user: imap-idle\n"
            "    schedule: {kind: arrival, rate: 10, process: fixed, max_in_flight: 100}\n"
            "    imap: {mode: idle, hold: 2s}\n")
        out = tmp_path / "out"
        master_at = f"{hosts.address('master')}:{MASTER_PORT}"
        master = hosts.start(
            "master", "run", str(tmp_path / "profile.yaml"), "--target",
            str(tmp_path / "target.yaml"), "--master", "--expect-workers", "2",
            "--master-bind", master_at, "--allow-remote", "--out", str(out), "--quiet")
        elsewhere = tmp_path / "worker-host"
        elsewhere.mkdir()
        workers = [hosts.start(role, "worker", "--master", master_at, "--allow-remote",
                               cwd=elsewhere) for role in ("worker1", "worker2")]
        _, stderr = master.communicate(timeout=180)
        assert [w.wait(30) for w in workers] == [0, 0]
        assert master.returncode == 0, stderr[-3000:]
    finally:
        subprocess.run(["ip", "netns", "exec", hosts.ns["target"], sys.executable, "-m",
                        "loadtests.cli", "stack", "down", "--dir", str(run_dir)], cwd=ROOT,
                       capture_output=True, timeout=60)
        shutil.rmtree(run_dir, ignore_errors=True)

    records = list(read_stream(out / "results.jsonl"))
    joined = {e.worker for e in records if type(e) is WorkerEvent and e.event == "joined"}
    sessions = [r for r in records if type(r) is Req and r.name == "session"]
    assert len(joined) == 2 and {r.worker for r in sessions} == joined
    assert len(sessions) == 100 and all(r.ok for r in sessions), \
        Counter(r.err for r in sessions if not r.ok)
    per_worker = Counter(r.worker for r in sessions)
    assert sorted(per_worker.values()) == [50, 50]  # each worker's half of 10/s for 10 s
    summary = json.loads((out / "summary.json").read_text())
    assert summary["arrival"]["imap"]["completed"] == 100
