"""A run whose users all run in this process."""

from __future__ import annotations

from locust.runners import LocalRunner

from loadtests.run.core import RunParts
from loadtests.schedule.sessions import gauge

__all__ = ["LocalDriver"]


class LocalDriver:
    """Users, pacers and session gauge of this process."""

    def __init__(self, parts: RunParts) -> None:
        self.runner: LocalRunner = parts.env.create_local_runner()
        self.pacers = parts.pacers
        self.stop = parts.options.stop

    def pacer_snapshots(self) -> dict[str, dict[str, int]]:
        return self.pacers.snapshots()

    def sessions(self) -> dict[str, dict[str, int]]:
        return gauge.snapshot()

    def connect(self) -> None:
        pass

    def spawning(self) -> bool:
        glet = self.runner.spawning_greenlet
        return glet is not None and not glet.dead

    def start_load(self, duration: float) -> None:
        self.pacers.start(duration)

    def stop_arrivals(self) -> None:
        self.pacers.stop()

    def drain(self, seconds: float) -> None:
        self.pacers.drain(seconds, self.stop)  # a stop request cuts the drain short

    def after_stop(self) -> None:
        self.pacers.close()

    def close(self) -> None:
        pass
