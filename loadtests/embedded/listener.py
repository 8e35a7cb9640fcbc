"""How the embedded target's POP3 and IMAP servers take connections: the server models of the seeds.

- `event` (default): one asyncio loop serves every connection (like nginx or Dovecot's
  imap-login with many clients per process). `max_connections` > 0 caps the connections held:
  one over the cap gets the protocol's refusal line (`-ERR ...`, `* BYE Connection queue full`)
  and is closed.
- `thread`: one OS thread per connection (the old thread-per-connection server). At most
  `thread_limit` threads: when all are busy the acceptor stops accepting, so new clients wait in
  the kernel's listen queue (then overflow it, as the seed's servers did). Each thread runs the
  same asyncio handler on a loop of its own (costing 2 more fds per connection, for its wake-up
  socketpair); `thread_stack_size` sets each thread's stack.

A handler is `async def handle(reader, writer)` serving one connection to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import socket
import ssl as ssl_module
import threading
from collections.abc import Awaitable, Callable

from loadtests.counts import SessionCounts

__all__ = ["LISTENER_FIELDS", "Handler", "Listener", "start_listener"]

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


LISTENER_FIELDS = {"opened": "accepted", "open": "active", "peak": "peak", "failed": "refused"}
"""A listener's connections as the target's stats file names them."""


class Listener:
    """A listening socket and the way its connections are served; `close()` stops accepting."""

    def __init__(self, name: str, port: int, counters: SessionCounts,
                 close: Callable[[], None]) -> None:
        self.name = name
        self.port = port
        self.counters = counters
        self._close = close

    def close(self) -> None:
        self._close()


async def start_listener(name: str, handler: Handler, host: str, port: int, *,
                         refusal: bytes, mode: str = "event", max_connections: int = 0,
                         thread_limit: int = 256, thread_stack_size: int = 0,
                         backlog: int = 128, ssl: ssl_module.SSLContext | None = None
                         ) -> Listener:
    """Listen on host:port; with `ssl`, every connection is TLS from its start (event mode
    only: the thread model serves plain TCP)."""
    counters = SessionCounts()
    if mode == "thread":
        if ssl is not None:
            raise ValueError("implicit TLS ports need the event mode")
        return _start_threaded(name, handler, host, port, counters, thread_limit,
                               thread_stack_size, backlog)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if max_connections and counters.open >= max_connections:
            counters.failed += 1
            with contextlib.suppress(OSError):
                writer.write(refusal)
                await writer.drain()
            writer.close()
            return
        counters.opening()
        try:
            await handler(reader, writer)
        finally:
            counters.closed()
            writer.close()

    server = await asyncio.start_server(serve, host, port, backlog=backlog, ssl=ssl)
    return Listener(name, server.sockets[0].getsockname()[1], counters, server.close)


def _start_threaded(name: str, handler: Handler, host: str, port: int,
                    counters: SessionCounts, thread_limit: int, stack_size: int,
                    backlog: int) -> Listener:
    sock = socket.create_server((host, port), backlog=backlog, reuse_port=False)
    slots = threading.Semaphore(thread_limit)
    lock = threading.Lock()
    stopping = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        async def run() -> None:
            reader, writer = await asyncio.open_connection(sock=conn)
            try:
                await handler(reader, writer)
            finally:
                writer.close()

        # poll(): no epoll fd per thread, and unlike select() no limit at fd 1024
        loop = asyncio.SelectorEventLoop(selectors.PollSelector())
        try:
            loop.run_until_complete(run())
        except Exception:
            pass  # the handler's own errors end only its connection
        finally:
            loop.close()
            conn.close()
            with lock:
                counters.closed()
            slots.release()

    def accept_loop() -> None:
        while not stopping.is_set():
            slots.acquire()  # at the thread limit: stop accepting, let the listen queue fill
            if stopping.is_set():
                break
            try:
                conn, _ = sock.accept()
            except OSError:
                slots.release()
                if stopping.is_set():
                    break
                stopping.wait(0.05)  # EMFILE and friends: the server is out of something
                continue
            with lock:
                counters.opening()
            if stack_size:
                threading.stack_size(stack_size)
            try:
                threading.Thread(target=serve_one, args=(conn,), daemon=True,
                                 name=f"{name}-conn").start()
            except RuntimeError:  # can't start new thread
                with lock:
                    counters.closed()
                    counters.failed += 1
                conn.close()
                slots.release()

    def close() -> None:
        stopping.set()
        slots.release()  # wake an acceptor waiting for a slot
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    threading.Thread(target=accept_loop, daemon=True, name=f"{name}-accept").start()
    return Listener(name, sock.getsockname()[1], counters, close)
