"""Runs the embedded target's servers in this process until SIGTERM or SIGINT.

When ready it prints one JSON line to stdout: `{"ready": true, "pid": ..., "host": ...,
"smtp_port": ..., "dns_port": ...}`; while running it rewrites `--stats-file` every second.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import sys
from pathlib import Path

from loadtests.target.config import EmbeddedSettings
from loadtests.target.dns import serve_dns
from loadtests.target.smtp import SmtpServerFactory
from loadtests.target.stats import TargetStats

__all__ = ["die_with_parent", "serve"]


def die_with_parent() -> None:
    """Ask Linux to send us SIGTERM when the process that started us dies (even by SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def serve(settings: EmbeddedSettings, stats_file: Path | None = None) -> None:
    loop = asyncio.get_running_loop()
    stats = TargetStats()
    smtp = await loop.create_server(
        SmtpServerFactory(settings, stats), settings.host, settings.smtp_port, backlog=1024
    )
    dns_port, udp, tcp = await serve_dns(settings, stats)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready = {
        "ready": True, "pid": os.getpid(), "host": settings.host,
        "smtp_port": smtp.sockets[0].getsockname()[1], "dns_port": dns_port,
        "domain": settings.domain, "users": settings.users,
    }
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    try:
        while not stop.is_set():
            if stats_file is not None:
                stats.write(stats_file)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        smtp.close()
        tcp.close()
        udp.close()
        if stats_file is not None:
            stats.write(stats_file)
