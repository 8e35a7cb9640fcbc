"""What the caller gives a run (`RunOptions`) and gets back (`RunResult`, or `RunError`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gevent.event import Event

from loadtests.run.progress import Progress

__all__ = ["DEFAULT_WORKER_TIMEOUT", "RunError", "RunOptions", "RunResult", "worker_count"]


class RunError(RuntimeError):
    """The run could not start (e.g. worker processes did not connect)."""



DEFAULT_WORKER_TIMEOUT = 10.0  # seconds without a worker's heartbeat: it is lost (Locust: 4)


@dataclass
class RunOptions:
    out_dir: Path
    duration: float | None = None  # overrides the profile's
    allow_remote: bool = False
    workers: int = 0  # 0: run the users in this process; N: in N local worker processes
    expect_workers: int = 0  # N: be the master of N workers started by hand (mailswarm worker)
    master_bind: tuple[str, int] | None = None  # where the master listens (local: a free port)
    worker_timeout: float = DEFAULT_WORKER_TIMEOUT  # seconds silent (no heartbeat): lost
    profile_file: str | None = None
    on_progress: Callable[[Progress], None] | None = None
    stop: Event = field(default_factory=Event)  # set it (e.g. from a SIGINT handler) to end early
    extra_end: Callable[[], dict[str, Any]] | None = None  # more fields for the end record
    embedded_stats: Path | None = None  # the stats file of the embedded target run started
    web: tuple[str, int] | None = None  # serve Locust's web UI (+ a target tab) there


@dataclass(frozen=True)
class RunResult:
    out_dir: Path
    summary: dict[str, Any]
    reason: str


def worker_count(options: RunOptions) -> int:
    """The worker processes the run's load is split across (0: it runs in this process)."""
    return options.workers or options.expect_workers
