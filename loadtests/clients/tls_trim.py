"""Heap pages freed by TLS handshakes given back to the system: at most once a second, <= 1%.

A TLS handshake allocates much more than the connection keeps (OpenSSL's 16 KiB record buffers,
the handshake buffer, certificate parsing and crypto temporaries) and frees it between blocks
that live as long as the connection (the SSL object, the peer's certificate, the session):
glibc keeps those freed pages inside the heap, where they stay resident. After a burst of
handshakes that is several KiB per TLS session, more than the Python objects of the connection
(bench/imap_idle). glibc's `malloc_trim(0)` hands every whole free page back
(`MADV_DONTNEED`); the addresses stay the allocator's and are faulted in again when reused.

`handshake_done(loop)` (called by clients/tls_buffer.py when a handshake completes) schedules
one trim on `loop`, `DELAY` seconds later unless one is due already, and never sooner after the
previous trim than `INTERVAL` seconds nor than 100x (1 / `SHARE`) the previous trim's own time:
however many handshakes, trimming takes at most 1% of the loop's time, and every handshake is
followed by a trim. A trim walks the allocator's free lists and locks each arena in turn: ~4 ms
on a generator holding 2,000-6,000 idle TLS sessions (bench/imap_idle prints the trims and
their time; `stats()` counts them). Without glibc (`malloc_trim` not found) nothing is
scheduled. It changes nothing a server sees.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

__all__ = ["DELAY", "INTERVAL", "SHARE", "handshake_done", "stats"]

DELAY = 0.25  # seconds from the handshake that asks for a trim to the trim
INTERVAL = 1.0  # seconds at least between two trims of this process...
SHARE = 0.01  # ...and at least the last trim's time / SHARE: trims take <= 1% of the time


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None (another C library)."""
    import ctypes  # here: a process that makes no TLS handshake never loads it
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Any = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


class _Trimmer:
    """This process's trims: where the next one is due, the last one's time, totals."""

    def __init__(self) -> None:
        self.trim: Callable[[int], int] | None = None
        self.looked_up = False  # malloc_trim is looked up at the first handshake
        self.loop: asyncio.AbstractEventLoop | None = None  # where the next trim is due
        self.last = -INTERVAL  # time.monotonic() of the last trim's end
        self.took = 0.0  # the last trim's time, seconds
        self.count = 0
        self.seconds = 0.0

    def request(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self.looked_up:
            self.trim, self.looked_up = _malloc_trim(), True
        if self.trim is None or (self.loop is not None and not self.loop.is_closed()):
            return  # no glibc, or one is due (on any loop: a trim is process-wide)
        gap = max(INTERVAL, self.took / SHARE)
        delay = max(DELAY, self.last + gap - time.monotonic())
        self.loop = loop
        loop.call_later(delay, self.run)

    def run(self) -> None:
        self.loop = None
        assert self.trim is not None
        t0 = time.monotonic()
        self.trim(0)
        self.last = time.monotonic()
        self.took = self.last - t0
        self.count += 1
        self.seconds += self.took


_TRIMMER = _Trimmer()


def handshake_done(loop: asyncio.AbstractEventLoop) -> None:
    """A TLS handshake completed on `loop`: make sure a trim follows (see the module)."""
    _TRIMMER.request(loop)


def stats() -> dict[str, float]:
    """Trims so far in this process and their total wall time, in seconds."""
    return {"trims": _TRIMMER.count, "trim_s": _TRIMMER.seconds}
