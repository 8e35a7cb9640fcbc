"""What the caller gives a run (`RunOptions`) and gets back (`RunResult`, or `RunError`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gevent.event import Event

from loadtests.run.progress import Progress

__all__ = ["RunError", "RunOptions", "RunResult"]


class RunError(RuntimeError):
    """The run could not start (e.g. worker processes did not connect)."""


@dataclass
class RunOptions:
    out_dir: Path
    duration: float | None = None  # overrides the profile's
    allow_remote: bool = False
    workers: int = 0  # 0: run the users in this process
    profile_file: str | None = None
    on_progress: Callable[[Progress], None] | None = None
    stop: Event = field(default_factory=Event)  # set it (e.g. from a SIGINT handler) to end early
    extra_end: Callable[[], dict[str, Any]] | None = None  # more fields for the end record
    web: tuple[str, int] | None = None  # serve Locust's web UI (+ a target tab) there


@dataclass(frozen=True)
class RunResult:
    out_dir: Path
    summary: dict[str, Any]
    reason: str
