"""A process's open-model pacers as one set: start, stop, drain and close them together.

The drain is the end of every process's load phase (a local run, and each worker of a
distributed one): no new arrivals, then wait for the sessions in flight to end, at most `drain`
seconds; sessions still waiting for a channel when the pacers close are counted as dropped.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import gevent
from gevent.event import Event

from loadtests.schedule.pacing import ArrivalPacer

__all__ = ["Pacers"]


class Pacers:
    def __init__(self, pacers: Mapping[str, ArrivalPacer]) -> None:
        self.by_name = dict(pacers)

    def start(self, duration: float) -> None:
        for pacer in self.by_name.values():
            pacer.start(duration)

    def stop(self) -> None:
        """No new arrivals from now on."""
        for pacer in self.by_name.values():
            pacer.stop()

    def drain(self, seconds: float, stop: Event | None = None) -> None:
        """Wait until no session is in flight, at most `seconds`; a set `stop` cuts it short."""
        deadline = time.monotonic() + seconds
        while (any(p.in_flight for p in self.by_name.values())
               and time.monotonic() < deadline
               and not (stop is not None and stop.is_set())):
            gevent.sleep(0.05)

    def close(self) -> None:
        """Sessions still waiting for a channel were never sent: count them as dropped."""
        for pacer in self.by_name.values():
            pacer.close()

    def snapshots(self) -> dict[str, dict[str, int]]:
        return {name: p.snapshot() for name, p in self.by_name.items()}
