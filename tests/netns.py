"""Network namespaces the tests build: removing one with every process still running in it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

__all__ = ["remove_namespace"]


def remove_namespace(name: str) -> None:
    """Kill what still runs in namespace `name` (the test started it there) and delete it."""
    pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                          timeout=10).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
