"""Holding the stack for a while (a test session): ports are fixed, so only one holder at a time.

    with using(["unbound", "postfix"]) as cfg:   # waits while another process holds it
        ...                                      # the stack is up; down again on exit

Two pytest sessions on one machine would otherwise start and stop the same servers under each
other. The hold is an flock next to the run folder, so it ends when its process does; it is
re-entrant inside one process (nested or successive module fixtures).
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from loadtests.stack.manager import down, up
from loadtests.stack.settings import DovecotLimits, StackConfig

__all__ = ["StackBusy", "exclusive", "using", "wait_while_held_elsewhere"]

_held: dict[Path, tuple[IO[str], int]] = {}
_guard = threading.Lock()


class StackBusy(TimeoutError):
    """Another process held the stack for longer than we were willing to wait."""


def _lock_path(cfg: StackConfig) -> Path:
    return cfg.run_dir.with_name(cfg.run_dir.name + ".hold")


def wait_while_held_elsewhere(cfg: StackConfig, wait: float = 900.0) -> None:
    """Block while another process holds the stack (so a bare up()/down() elsewhere does not
    pull servers from under a holder); returns at once when this process holds it."""
    path = _lock_path(cfg)
    with _guard:
        if path in _held or not path.exists():
            return
    with open(path, "a") as handle:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return  # closing the file drops the shared lock again
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StackBusy(f"another process holds the stack ({path})") from None
                time.sleep(0.5)


@contextlib.contextmanager
def exclusive(config: StackConfig | None = None, *, wait: float = 900.0) -> Iterator[StackConfig]:
    """Hold the stack's run folder against other processes; StackBusy after `wait` seconds."""
    cfg = config or StackConfig()
    path = _lock_path(cfg)
    with _guard:
        entry = _held.get(path)
        if entry is not None:
            _held[path] = (entry[0], entry[1] + 1)
    if entry is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle: IO[str] = open(path, "a")  # noqa: SIM115 - kept open while held
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.close()
                    raise StackBusy(f"another process holds the stack ({path}) "
                                    f"for more than {wait:.0f} s") from None
                time.sleep(0.5)
        with _guard:
            _held[path] = (handle, 1)
    try:
        yield cfg
    finally:
        with _guard:
            handle, count = _held[path]
            if count > 1:
                _held[path] = (handle, count - 1)
            else:
                del _held[path]
                handle.close()  # releases the flock


@contextlib.contextmanager
def using(services: list[str] | None = None, *, config: StackConfig | None = None,
          dovecot_limits: DovecotLimits | None = None, wait: float = 900.0,
          stop: bool = True) -> Iterator[StackConfig]:
    """Hold the stack, bring `services` up, yield the config, and take it down again at the end
    (`stop=False` leaves it running). Raises StackBusy, StackError or PackageError."""
    with exclusive(config, wait=wait) as cfg:
        try:
            up(services, config=cfg, dovecot_limits=dovecot_limits)
            yield cfg
        finally:
            if stop:
                down(config=cfg)
