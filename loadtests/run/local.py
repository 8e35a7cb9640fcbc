"""The load of this process: its open-model pacers and session gauge (`LocalLoad`, also a local
plugin run's, loadtests.locust.plugin), and `mailswarm run`'s driver of a run whose users all
run in this process (`LocalDriver`)."""

from __future__ import annotations

from gevent.event import Event
from locust.runners import LocalRunner

from loadtests.run.core import RunParts
from loadtests.run.pacers import Pacers
from loadtests.schedule.sessions import gauge

__all__ = ["LocalDriver", "LocalLoad"]


class LocalLoad:
    """Pacers and session gauge of this process; a set `stop` cuts the drain short."""

    def __init__(self, pacers: Pacers, stop: Event | None = None) -> None:
        self.pacers = pacers
        self.stop = stop

    def pacer_snapshots(self) -> dict[str, dict[str, int]]:
        return self.pacers.snapshots()

    def sessions(self) -> dict[str, dict[str, int]]:
        return gauge.snapshot()

    def start_load(self, duration: float) -> None:
        self.pacers.start(duration)

    def stop_arrivals(self) -> None:
        self.pacers.stop()

    def drain(self, seconds: float) -> None:
        self.pacers.drain(seconds, self.stop)

    def after_stop(self) -> None:
        self.pacers.close()


class LocalDriver(LocalLoad):
    """`mailswarm run`'s users in this process: a Locust LocalRunner over LocalLoad."""

    def __init__(self, parts: RunParts) -> None:
        super().__init__(parts.pacers, parts.options.stop)
        self.runner: LocalRunner = parts.env.create_local_runner()

    def connect(self) -> None:
        pass

    def spawning(self) -> bool:
        glet = self.runner.spawning_greenlet
        return glet is not None and not glet.dead

    def close(self) -> None:
        pass
