"""Source addresses: an endpoint's `source_addresses` spread the SMTP, POP3 and IMAP clients'
connections over several local addresses, in turn (more than one address's ~28,000 ephemeral
ports to one server port), checked by the peer addresses a small server sees."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import psutil
import pytest
import yaml
from aio import run_coro
from cli import ROOT, start_cli
from netns import remove_namespace

from loadtests.cli import EXIT_OK, EXIT_QOS_FAILED
from loadtests.clients import source
from loadtests.clients.imap_client import ImapClient
from loadtests.clients.pop3 import Pop3Client
from loadtests.clients.smtp import SmtpOptions, _Session
from loadtests.embedded.mailstore import password_for
from loadtests.run.sources import use_source_addresses
from loadtests.stream import Req, read_stream
from loadtests.targets import Target

SOURCES = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


async def _peers(greeting: bytes, connect: Callable[[int], Awaitable[None]],
                 times: int) -> list[str]:
    """Source addresses of `times` connections `connect(port)` makes to a greeting server."""
    seen: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("peername")[0])
        writer.write(greeting)
        await writer.drain()
        while line := await reader.readline():  # until the client closes
            tag, _, command = line.partition(b" ")
            if command.upper().startswith(b"CAPABILITY"):  # IMAP's, after the greeting
                writer.write(b"* CAPABILITY IMAP4rev1\r\n" + tag + b" OK done\r\n")
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    use_source_addresses(Target.model_validate({"endpoints": {
        "smtp": {"port": port, "source_addresses": SOURCES}}}))
    try:
        for _ in range(times):
            await connect(port)
    finally:
        source.configure({})
        server.close()
    return seen


async def _smtp(port: int) -> None:
    session = _Session(SmtpOptions(sender="a@b.test", connect_timeout=5))
    await session.connect("127.0.0.1", port)
    session.close()


async def _pop3(port: int) -> None:
    client = Pop3Client("127.0.0.1", port, connect_timeout=5)
    await client.connect()
    client.close()


async def _imap(port: int) -> None:
    client = ImapClient("127.0.0.1", port, connect_timeout=5)
    await client.connect()
    client.close()


@pytest.mark.parametrize(("greeting", "connect"), [
    (b"220 test ESMTP\r\n", _smtp), (b"+OK ready\r\n", _pop3), (b"* OK ready\r\n", _imap)],
    ids=["smtp", "pop3", "imap"])
def test_connections_take_the_source_addresses_in_turn(greeting, connect):
    assert run_coro(_peers(greeting, connect, 6)) == SOURCES * 2


def test_without_source_addresses_the_system_chooses():
    assert run_coro(_peers(b"220 x\r\n", _smtp, 0)) == []
    assert source.local_addr("127.0.0.1", 25) is None


def test_a_source_address_must_be_an_ip_address():
    with pytest.raises(ValueError, match="does not appear to be an IP"):
        Target.model_validate({"endpoints": {"smtp": {"port": 25,
                                                      "source_addresses": ["localhost"]}}})


def test_a_distributed_run_spreads_its_imap_sessions(tmp_path, embedded):
    """Through a run's target file and the workers' job: 8 held IMAP sessions from 2 workers
    come from the 3 source addresses (seen as the connections to the server's port)."""
    target = embedded.target
    data = target.model_dump(mode="json", exclude={"password", "password_env"})
    data["password"] = target.secret()
    for ep in data["endpoints"].values():
        ep.pop("monitor")
    data["endpoints"]["imap"]["source_addresses"] = SOURCES
    (tmp_path / "target.yaml").write_text(yaml.safe_dump(data))
    (tmp_path / "idle.yaml").write_text(
        "name: idle-sources\nduration: 6s\ndrain: 0s\nseed: 1\nscenarios:\n"
        "  - name: idle\n    user: imap-idle\n"
        "    schedule: {kind: closed, users: 8, spawn_rate: 50}\n"
        "    imap: {mode: idle, hold: 1h}\n")
    port = target.endpoints["imap"].port
    proc = start_cli("run", str(tmp_path / "idle.yaml"), "--target", str(tmp_path / "target.yaml"),
                     "--workers", "2", "--out", str(tmp_path / "out"), "--quiet")
    seen: set[str] = set()
    held = 0
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline and held < 8:
            conns = [c for c in psutil.net_connections("tcp") if c.raddr
                     and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED]
            held = len(conns)
            seen = {c.laddr.ip for c in conns}
            time.sleep(0.2)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    assert held == 8 and seen == set(SOURCES)


# --- one worker process past one source address's ports (its own network namespace) ----------
#
# A real ~28,000-port range cannot be outgrown here: one process may open at most 20,000 files
# (hard limit), so one worker cannot hold 28,000 sockets. ip_local_port_range belongs to the
# network namespace, so the test narrows it to RANGE ports in a namespace of its own: then one
# source address holds at most RANGE connections to one server port, and the same worker holds
# several times that from several source addresses. Same arithmetic, smaller numbers.

RANGE = (50000, 50499)  # 500 ephemeral ports in the test's namespace
MANY = [f"127.0.0.{n}" for n in range(2, 7)]  # 5 x 500 = 2,500 per server port
NS_IMAP_PORT = 20143
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("ss") is None,
    reason="narrows ip_local_port_range in a network namespace: needs root, iproute2")


@contextlib.contextmanager
def _namespace() -> Iterator[str]:
    """A network namespace with loopback up and RANGE as its port range; removed on exit with
    every process this test started in it."""
    name = f"mswsrc{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=20)
    try:
        for cmd in (["ip", "-n", name, "link", "set", "lo", "up"],
                    ["ip", "netns", "exec", name, "sysctl", "-qw",
                     f"net.ipv4.ip_local_port_range={RANGE[0]} {RANGE[1]}"]):
            subprocess.run(cmd, check=True, capture_output=True, timeout=20)
        yield name
    finally:
        remove_namespace(name)


def _in_ns(ns: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", ns, sys.executable, "-m", "loadtests.cli", *args]


def _held(ns: str) -> tuple[Counter[str], set[str]]:
    """Established client connections to the IMAP port in `ns`: per source address, and the
    pids holding them."""
    out = subprocess.run(["ip", "netns", "exec", ns, "ss", "-Htnp", "state", "established",
                          "dport", "=", f":{NS_IMAP_PORT}"],
                         capture_output=True, text=True, timeout=30).stdout
    per_source: Counter[str] = Counter()
    pids: set[str] = set()
    for line in out.splitlines():
        fields = line.split()
        per_source[fields[2].rpartition(":")[0]] += 1
        pids.update(re.findall(r"pid=(\d+)", line))
    return per_source, pids


def _hold(ns: str, tmp: Path, users: int, sources: list[str],
          status: int = EXIT_OK) -> tuple[Counter[str], set[str], Path]:
    """One worker process (`--workers 1`) holds `users` idle IMAP sessions; the most it held at
    once, per source address, and the pids that held them. The run exits with `status`."""
    (tmp / "target.yaml").write_text(yaml.safe_dump({
        "name": "ns-embedded", "domain": "example.test", "password": password_for(""),
        "endpoints": {"imap": {"host": "127.0.0.1", "port": NS_IMAP_PORT,
                               "source_addresses": sources}}}))
    (tmp / "idle.yaml").write_text(
        f"name: many-sources\nduration: 25s\ndrain: 0s\nseed: 1\nscenarios:\n"
        f"  - name: idle\n    user: imap-idle\n"
        f"    schedule: {{kind: closed, users: {users}, spawn_rate: 400}}\n"
        f"    imap: {{mode: idle, hold: 1h}}\n")
    out = tmp / "out"
    proc = subprocess.Popen(_in_ns(ns, "run", str(tmp / "idle.yaml"), "--target",
                                   str(tmp / "target.yaml"), "--workers", "1", "--out",
                                   str(out), "--quiet"),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    best: tuple[Counter[str], set[str]] = (Counter(), set())
    try:
        while proc.poll() is None:
            held = _held(ns)
            if held[0].total() > best[0].total():
                best = held
            if best[0].total() >= users:
                break
            time.sleep(0.5)
        _, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == status, stderr[-3000:]
    return best[0], best[1], out


@needs_root
def test_one_worker_outgrows_one_source_addresss_ports(tmp_path: Path) -> None:
    size = RANGE[1] - RANGE[0] + 1
    with _namespace() as ns:
        target = subprocess.Popen(
            _in_ns(ns, "target", "--imap-port", str(NS_IMAP_PORT), "--smtp-port", "0",
                   "--dns-port", "0", "--pop3-port", "0", "--http-port", "0"),
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert target.stdout is not None
        assert json.loads(target.stdout.readline())["imap_port"] == NS_IMAP_PORT

        (tmp_path / "many").mkdir()
        per_source, pids, _ = _hold(ns, tmp_path / "many", 2000, MANY)
        assert per_source.total() == 2000 == 4 * size  # four times one address's ports
        assert set(per_source) == set(MANY) and max(per_source.values()) <= size
        assert len(pids) == 1  # one worker process held them all

        (tmp_path / "one").mkdir()
        per_source, _, out = _hold(ns, tmp_path / "one", 700, [], EXIT_QOS_FAILED)
        # the system's one source address: RANGE ports at most (a few go to the run's own
        # connections to the worker and ports in TIME_WAIT)
        assert size - 30 <= per_source.total() <= size
        failed = [r for r in read_stream(out / "results.jsonl")
                  if type(r) is Req and r.name == "session" and not r.ok]
        assert failed and {r.code for r in failed} == {"EADDRNOTAVAIL"}
