"""What keeps an idle TLS connection light (clients/tls_buffer.py, clients/tls_trim.py) does not
change what goes over the wire: the server's handshake flight reaches OpenSSL in slices, also a
large one (a certificate of many names, several TLS records and TCP reads), and bulk data after
it is intact both ways; the heap is trimmed after handshakes, at most once per interval."""

from __future__ import annotations

import asyncio
import itertools
import re
import ssl
import time
from asyncio import sslproto
from pathlib import Path
from typing import Any

import pytest
import trustme

from loadtests import bridge
from loadtests.clients import tls_trim
from loadtests.clients.imap_client import ImapClient
from loadtests.clients.tls import TlsOptions, endpoint_tls
from loadtests.clients.tls_buffer import SharedBufferSSLProtocol, share_receive_buffers

SLICE = 512  # tls_buffer's handshake slice


@pytest.fixture(autouse=True)
def _bridge() -> None:
    bridge.start()


class _Recorder:
    """A memory BIO that notes each write's size and the protocol's state at that moment."""

    def __init__(self, bio: ssl.MemoryBIO, protocol: Any, writes: list[tuple[int, str]]) -> None:
        self.bio, self.protocol, self.writes = bio, protocol, writes

    def write(self, data: Any) -> int:
        self.writes.append((len(data), self.protocol._state.name))
        return self.bio.write(data)

    @property
    def pending(self) -> int:
        return self.bio.pending


@pytest.fixture
def incoming_writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, str]]:
    """Every write into a client connection's incoming BIO from now on: (size, state)."""
    share_receive_buffers()
    writes: list[tuple[int, str]] = []

    class Recording(SharedBufferSSLProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if not self._server_side:
                self._incoming = _Recorder(self._incoming, self, writes)  # type: ignore[assignment]

    monkeypatch.setattr(sslproto, "SSLProtocol", Recording)
    return writes


def _handshake_writes(writes: list[tuple[int, str]]) -> list[int]:
    return [size for size, state in writes if state == "DO_HANDSHAKE"]


def test_the_targets_handshake_flight_is_fed_in_slices(embedded, incoming_writes):
    ep = embedded.target.endpoints["imaps"]
    tls = endpoint_tls(ep.host, ep.port, ep.tls_options())

    async def session() -> str:
        client = ImapClient(ep.host, ep.port, connect_timeout=5, read_timeout=5, tls=tls)
        try:
            greeting = await client.connect()
            await client.login("user0001", embedded.target.secret())
            return greeting
        finally:
            client.close()

    assert bridge.run(session(), timeout=20)
    during = _handshake_writes(incoming_writes)
    assert sum(during) > SLICE  # the target's flight is larger than a slice...
    assert max(during) <= SLICE and len(during) >= 2  # ...and came in slices


def _big_certificate_server(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context whose certificate names 400 hosts (a flight of ~10 KiB) and its CA."""
    ca = trustme.CA()
    names = ["localhost", *(f"host{i:03d}.a-rather-long-subdomain.example.test"
                            for i in range(400))]
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(server)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server, ca_file


def test_a_large_flight_and_bulk_data_both_ways(tmp_path, incoming_writes):
    server_context, ca_file = _big_certificate_server(tmp_path)
    client_context = endpoint_tls("127.0.0.1", 1, TlsOptions(mode="implicit",
                                                             ca_file=str(ca_file))).context
    payload = bytes(range(256)) * 4096 + b"end"  # 1 MiB and a tail: many reads of 256 KiB

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello\r\n")  # the server speaks first, right after the handshake
        writer.write(await reader.readexactly(len(payload)))
        await writer.drain()
        writer.close()

    async def exchange() -> tuple[bytes, bytes, int]:
        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_context, server_hostname="localhost")
            names = writer.get_extra_info("peercert")["subjectAltName"]
            greeting = await reader.readline()
            writer.write(payload)
            echoed = await reader.readexactly(len(payload))
            writer.close()
            return greeting, echoed, len(names)
        finally:
            server.close()

    greeting, echoed, names = bridge.run(exchange(), timeout=60)
    assert greeting == b"hello\r\n" and echoed == payload and names == 401
    during = _handshake_writes(incoming_writes)
    assert sum(during) > 8 * 1024 and max(during) <= SLICE  # the whole flight, sliced
    assert max(size for size, _ in incoming_writes) > SLICE  # bulk data is not


def _fake_trims(monkeypatch: pytest.MonkeyPatch, pause: float = 0.0,
                **settings: float) -> list[float]:
    """A fresh trimmer whose trims (each taking `pause` s) are noted; tls_trim's settings."""
    calls: list[float] = []

    def trim(pad: int) -> int:
        calls.append(time.monotonic())
        time.sleep(pause)
        return 1

    trimmer = tls_trim._Trimmer()
    trimmer.trim, trimmer.looked_up = trim, True
    monkeypatch.setattr(tls_trim, "_TRIMMER", trimmer)
    for name, value in settings.items():
        monkeypatch.setattr(tls_trim, name, value)
    return calls


def test_trims_follow_handshakes_at_most_once_per_interval(monkeypatch):
    calls = _fake_trims(monkeypatch, DELAY=0.05, INTERVAL=0.5)

    async def handshakes() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(100):  # a burst: one trim after it
            tls_trim.handshake_done(loop)
        await asyncio.sleep(0.2)
        assert len(calls) == 1
        tls_trim.handshake_done(loop)  # soon after: the next one waits for the interval
        await asyncio.sleep(0.2)
        assert len(calls) == 1
        await asyncio.sleep(0.4)
        assert len(calls) == 2 and calls[1] - calls[0] >= 0.5

    bridge.run(handshakes(), timeout=10)
    assert tls_trim.stats()["trims"] == 2


def test_a_slow_trim_spaces_the_next_ones_out(monkeypatch):
    # 20 ms trims, SHARE 5%: 0.4 s apart at least
    calls = _fake_trims(monkeypatch, 0.02, DELAY=0.01, INTERVAL=0.1, SHARE=0.05)

    async def handshakes() -> None:
        loop = asyncio.get_running_loop()
        for _ in range(40):  # a handshake every 25 ms for a second
            tls_trim.handshake_done(loop)
            await asyncio.sleep(0.025)
        await asyncio.sleep(0.5)

    bridge.run(handshakes(), timeout=10)
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert 2 <= len(calls) <= 5 and min(gaps) >= 0.4  # INTERVAL alone: 0.1 s apart


def test_a_trim_due_on_a_closed_loop_does_not_block_the_next(monkeypatch):
    calls = _fake_trims(monkeypatch, DELAY=0.05)

    other = asyncio.new_event_loop()
    tls_trim.handshake_done(other)
    other.close()  # before the trim was due: it never runs there
    assert not calls

    async def later() -> None:
        tls_trim.handshake_done(asyncio.get_running_loop())
        await asyncio.sleep(0.2)

    bridge.run(later(), timeout=10)
    assert len(calls) == 1


def test_glibc_trims_after_a_real_handshake(embedded, monkeypatch):
    monkeypatch.setattr(tls_trim, "_TRIMMER", tls_trim._Trimmer())
    monkeypatch.setattr(tls_trim, "DELAY", 0.05)
    ep = embedded.target.endpoints["imaps"]
    tls = endpoint_tls(ep.host, ep.port, ep.tls_options())

    async def session() -> None:
        client = ImapClient(ep.host, ep.port, connect_timeout=5, read_timeout=5, tls=tls)
        try:
            await client.connect()
        finally:
            client.close()
        await asyncio.sleep(0.3)

    bridge.run(session(), timeout=20)
    assert tls_trim.stats()["trims"] == 1  # malloc_trim found (glibc) and called once


def test_every_attribute_asyncio_sets_has_a_slot():
    # one missing would go into an instance dict again (a full one past 30 names)
    source = Path(sslproto.__file__).read_text()
    names = set(re.findall(r"self\.(_[a-z_]+) (?:=|\+=|-=)",
                           source[source.index("class SSLProtocol("):]))
    assert names - {"_ssl_protocol", "_closed"} <= set(SharedBufferSSLProtocol.__slots__)
