"""Source addresses: an endpoint's `source_addresses` spread the SMTP, POP3 and IMAP clients'
connections over several local addresses, in turn (more than one address's ~28,000 ephemeral
ports to one server port), checked by the peer addresses a small server sees."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import psutil
import pytest
import yaml
from cli import start_cli

from loadtests.clients import source
from loadtests.clients.imap_client import ImapClient
from loadtests.clients.pop3 import Pop3Client
from loadtests.clients.smtp import SmtpOptions, _Session
from loadtests.run.sources import use_source_addresses
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
    assert asyncio.run(_peers(greeting, connect, 6)) == SOURCES * 2


def test_without_source_addresses_the_system_chooses():
    assert asyncio.run(_peers(b"220 x\r\n", _smtp, 0)) == []
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
