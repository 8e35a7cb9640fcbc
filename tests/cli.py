"""Runs `mailswarm` (`python -m loadtests.cli`) in a fresh process, as a user would: to its end
(`run_cli`, returncode/stdout/stderr) or in the background (`start_cli`, a Popen to watch,
signal and `communicate` with). Output is text and unbuffered; the working directory is the
checkout, so profile paths such as `profiles/smtp-50mps.yaml` resolve."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psutil

__all__ = ["ROOT", "alive", "run_cli", "start_cli", "workers_of"]

ROOT = Path(__file__).resolve().parent.parent
_COMMAND = (sys.executable, "-m", "loadtests.cli")


def _env(env: Mapping[str, str] | None) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}


def run_cli(*args: str, timeout: float = 120, env: Mapping[str, str] | None = None,
            **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """`mailswarm ARGS...` to its end (at most `timeout` seconds), output captured."""
    return subprocess.run([*_COMMAND, *args], cwd=ROOT, env=_env(env), capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def start_cli(*args: str, env: Mapping[str, str] | None = None, stdout: int = subprocess.PIPE,
              stderr: int = subprocess.PIPE, **kwargs: Any) -> subprocess.Popen[str]:
    """`mailswarm ARGS...` started in the background; the caller waits for it or stops it."""
    return subprocess.Popen([*_COMMAND, *args], cwd=ROOT, env=_env(env), stdout=stdout,
                            stderr=stderr, text=True, **kwargs)


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie waiting for its parent to reap it does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def workers_of(proc: subprocess.Popen[str], count: int,
               timeout: float = 60) -> list[psutil.Process]:
    """The worker processes the run `proc` started (its children), once `count` are there."""
    deadline = time.monotonic() + timeout
    workers: list[psutil.Process] = []
    while time.monotonic() < deadline and len(workers) < count:
        workers = [p for p in psutil.Process(proc.pid).children()
                   if "loadtests.run.worker" in " ".join(p.cmdline())]
        time.sleep(0.2)
    assert len(workers) == count
    return workers
