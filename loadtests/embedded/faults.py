"""Connection-level faults the embedded servers share: a TCP reset, and a greeting trickled one
byte at a time (a server that is alive but far too slow), for stream servers (POP3, IMAP) and
as an asyncio.Protocol (SMTP, HTTP). Each server decides which connections get a fault."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

__all__ = ["TRICKLE_INTERVAL", "GarbageProtocol", "ResetProtocol", "StallProtocol",
           "TrickleProtocol", "connection_fault", "reset", "trickle", "until_client_leaves"]

TRICKLE_INTERVAL = 0.5
"""Seconds between two bytes of a trickled greeting: every read gets a byte well within any
read timeout, so only a deadline on the whole greeting notices."""


def reset(transport: asyncio.BaseTransport) -> None:
    """Close the connection with a TCP reset (SO_LINGER 0), not a FIN."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert isinstance(transport, asyncio.WriteTransport)  # a TCP connection's transport
    transport.abort()


async def until_client_leaves(reader: asyncio.StreamReader) -> None:
    """Say nothing, ignore what comes, return when the client closes (a stalled server)."""
    while await reader.read(4096):
        pass


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes,
                  interval: float = TRICKLE_INTERVAL) -> None:
    """Send `data` one byte every `interval` seconds; stop early when the client leaves (EOF
    or anything it sends ends it too: a client that talks before the greeting is done)."""
    for i in range(len(data)):
        writer.write(data[i:i + 1])
        await writer.drain()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader.read(1), interval)
            return  # the client closed or spoke: this connection is over


class StallProtocol(asyncio.Protocol):
    """Accepts the connection and never says a word."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport


class ResetProtocol(asyncio.Protocol):
    """Answers the connection with a TCP reset."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        reset(transport)


class GarbageProtocol(asyncio.Protocol):
    """Sends `data` (bytes that are not the protocol), then closes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self.data)
        transport.close()


class TrickleProtocol(asyncio.Protocol):
    """`data` one byte every `interval` seconds, then silence until the client leaves."""

    def __init__(self, data: bytes, interval: float = TRICKLE_INTERVAL) -> None:
        self.data, self.interval, self.sent = data, interval, 0
        self.transport: asyncio.WriteTransport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        self.transport = transport
        self._next()

    def _next(self) -> None:
        if self.transport is None or self.sent >= len(self.data):
            return
        self.transport.write(self.data[self.sent:self.sent + 1])
        self.sent += 1
        self.timer = asyncio.get_running_loop().call_later(self.interval, self._next)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.timer is not None:
            self.timer.cancel()


def connection_fault(fault: str, *, garbage: bytes, greeting: bytes) -> asyncio.Protocol | None:
    """The protocol of a connection-level `fault` ("stall", "reset", "garbage" sends `garbage`,
    "trickle" trickles `greeting`); None for any other fault (the server's own business)."""
    if fault == "stall":
        return StallProtocol()
    if fault == "reset":
        return ResetProtocol()
    if fault == "garbage":
        return GarbageProtocol(garbage)
    if fault == "trickle":
        return TrickleProtocol(greeting)
    return None
