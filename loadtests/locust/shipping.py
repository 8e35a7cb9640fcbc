"""A Locust worker's side of mailswarm's measurements: its records, pacer counters and open
sessions shipped to the master with every `report_to_master` and once more, in full, when the
master asks it to finish — the messages and payload of `mailswarm run --workers`
(loadtests.run.messages; the master merges them with loadtests.run.distributed.WorkerFeed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import WorkerRunner

from loadtests.run.messages import FINAL, FINISH, REPORT_KEY, START
from loadtests.run.pacers import Pacers
from loadtests.schedule.sessions import gauge
from loadtests.stream import req_dict, to_dict, user_error_record

__all__ = ["WorkerShipper"]


class WorkerShipper:
    """Buffers this worker's records; starts and finishes its pacers on the master's word.
    `pacers()` gives this process's pacers (classes are configured at their first spawn)."""

    def __init__(self, environment: Environment, runner: WorkerRunner,
                 pacers: Callable[[], Pacers]) -> None:
        self.runner = runner
        self.pacers = pacers
        self.buffer: list[dict[str, Any]] = []
        events = environment.events
        events.request.add_listener(lambda **kw: self.buffer.append(req_dict(**kw)))
        events.user_error.add_listener(lambda user_instance, exception, tb, **_: self.buffer.append(
            to_dict(user_error_record(user_instance, exception))))
        events.report_to_master.add_listener(
            lambda client_id, data, **_: data.__setitem__(REPORT_KEY, self.payload()))
        runner.register_message(START, self._on_start)
        runner.register_message(FINISH, lambda environment, msg, **_: gevent.spawn(
            self.finish, msg.data["drain"]))

    def payload(self) -> dict[str, Any]:
        records = self.buffer[:]
        self.buffer.clear()
        return {"records": records, "pacers": self.pacers().snapshots(),
                "sessions": gauge.snapshot()}

    def _on_start(self, environment: Environment, msg: Any, **_: Any) -> None:
        pacers = self.pacers()
        if "share" in msg.data:  # this worker's part of each rate (1 / workers)
            for pacer in pacers.by_name.values():
                pacer.share = msg.data["share"]
        pacers.start(msg.data["duration"])

    def finish(self, drain: float) -> None:
        """No new arrivals, sessions in flight drained (at most `drain` s), users stopped,
        then everything left goes to the master as the final report."""
        pacers = self.pacers()
        pacers.stop()
        pacers.drain(drain)
        self.runner.stop()
        pacers.close()
        self.runner.send_message(FINAL, self.payload())
