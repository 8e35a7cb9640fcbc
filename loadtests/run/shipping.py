"""A worker process's side of the measurements: its records (error texts redacted: the target's
password never leaves the process), pacer counters and open sessions, shipped to the master
with every `report_to_master` (REPORT_KEY) and once more, in full, as the final report when the
master asks it to finish (`FINISH` -> `FINAL`). Used by `mailswarm worker` (loadtests.run.worker)
and by the Locust plugin's workers (loadtests.locust.shipping); the master merges the reports
with loadtests.run.workers.WorkerBook.
"""

from __future__ import annotations

from typing import Any

import gevent
from locust.event import Events
from locust.runners import WorkerRunner

from loadtests.run.messages import FINAL, FINISH, REPORT_KEY, START
from loadtests.run.pacers import Pacers
from loadtests.schedule.sessions import gauge
from loadtests.stream import req_dict, tls_listener, to_dict, user_error_record
from loadtests.stream.redact import Redactor

__all__ = ["WorkerLoad"]


class WorkerLoad:
    """A worker's records (redacted) and pacers, shipped to the master: each report carries the
    records since the last one; `START` starts the pacers, `FINISH` drains them, stops the users
    and sends the final report (`ship`)."""

    def __init__(self) -> None:
        self.pacers = Pacers({})
        self.buffer: list[dict[str, Any]] = []
        self.redactor = Redactor()  # the target's password never leaves this process

    def keep(self, record: dict[str, Any]) -> None:
        """Buffer a `req` or `error` record dict for the next report, its error text redacted."""
        self.buffer.append(self.redactor.req_dict(record))

    def payload(self, users: int) -> dict[str, Any]:
        records = self.buffer[:]
        self.buffer.clear()
        return {"records": records, "pacers": self.pacers.snapshots(),
                "sessions": gauge.snapshot(), "users": users}

    def start(self, duration: float) -> None:
        """The master's `START`: the open-model arrivals begin."""
        self.pacers.start(duration)

    def ship(self, events: Events, runner: WorkerRunner) -> None:
        """Buffer this process's records, add them to every report to the master, and follow
        the master's `START` and `FINISH`."""
        events.request.add_listener(lambda **kw: self.keep(req_dict(**kw)))
        events.user_error.add_listener(lambda user_instance, exception, tb, **_: self.keep(
            to_dict(user_error_record(user_instance, exception))))
        # the TLS versions and ciphers seen, once each, as `tls` records
        events.request.add_listener(tls_listener(lambda record: self.keep(to_dict(record))))
        events.report_to_master.add_listener(lambda client_id, data, **_: data.__setitem__(
            REPORT_KEY, self.payload(runner.user_count)))

        def finish(drain: float) -> None:
            self.pacers.stop()
            self.pacers.drain(drain)
            runner.stop()
            self.pacers.close()
            runner.send_message(FINAL, self.payload(runner.user_count))

        runner.register_message(START, lambda environment, msg, **_: self.start(
            msg.data["duration"]))
        runner.register_message(FINISH, lambda environment, msg, **_: gevent.spawn(
            finish, msg.data["drain"]))
