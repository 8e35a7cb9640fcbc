"""A worker process's side of the measurements: its records (error texts redacted: the target's
password never leaves the process), pacer counters and open sessions, shipped to the master
with every `report_to_master` (REPORT_KEY) and once more, in full, as the final report when the
master asks it to finish (`FINISH` -> `FINAL`).

A succeeded request travels as a row, `[ts, type, name, ms, len, sc, lag_ms]` (`REQ_ROW`): no
keys to pack and unpack, nothing to redact; everything else (failed requests, with their error
text redacted here, and other records) as its record dict, in the order they happened. The
master (loadtests.run.workers.WorkerBook.take) merges the reports and turns both back into the
same `req` records. Used by `mailswarm worker` (loadtests.run.worker) and by the Locust
plugin's workers (loadtests.locust.shipping).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import gevent
from locust.event import Events
from locust.runners import WorkerRunner

from loadtests.run.messages import FINAL, FINISH, REPORT_KEY, START
from loadtests.run.pacers import Pacers
from loadtests.schedule.sessions import gauge
from loadtests.stream import req_dict, tls_listener, to_dict, user_error_record
from loadtests.stream.redact import Redactor
from loadtests.users.requests import BulkListener

__all__ = ["REQ_ROW", "WorkerLoad"]

REQ_ROW = ("ts", "type", "name", "ms", "len", "sc", "lag_ms")  # a succeeded request's row


class WorkerLoad:
    """A worker's records (redacted) and pacers, shipped to the master: each report carries the
    records since the last one; `START` starts the pacers, `FINISH` drains them, stops the users
    and sends the final report (`ship`)."""

    def __init__(self) -> None:
        self.pacers = Pacers({})
        self.buffer: list[dict[str, Any] | tuple[Any, ...]] = []  # record dicts and req rows
        self.redactor = Redactor()  # the target's password never leaves this process

    def keep(self, record: dict[str, Any]) -> None:
        """Buffer a `req` or `error` record dict for the next report, its error text redacted."""
        self.buffer.append(self.redactor.req_dict(record))

    def request(self, request_type: str, name: str, response_time: float,
                response_length: int | None = 0, exception: BaseException | None = None,
                context: dict[str, Any] | None = None, start_time: float | None = None,
                **kw: Any) -> None:
        """Listener for Locust's `events.request`: a succeeded request as a row (REQ_ROW),
        a failed one as its record dict (`keep`: its error text redacted)."""
        if exception is not None:
            self.keep(req_dict(request_type, name, response_time, response_length, exception,
                               context, start_time))
            return
        ctx = context or {}
        self.buffer.append((start_time or time.time(), request_type, name,
                            round(response_time, 3), int(response_length or 0),
                            ctx.get("scenario"), ctx.get("lag_ms")))

    def requests(self, requests: Iterable[dict[str, Any]]) -> None:
        """`request` for each of a session's request events (their keyword arguments)."""
        one = self.request
        for kw in requests:
            one(kw["request_type"], kw["name"], kw["response_time"], kw.get("response_length"),
                kw.get("exception"), kw.get("context"), kw.get("start_time"))

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
        events.request.add_listener(BulkListener(self.request, self.requests))
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
