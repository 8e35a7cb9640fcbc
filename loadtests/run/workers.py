"""The master's book of its workers: who joined, what each reported, who finished, who was lost,
and what a lost worker's part of the schedule did not send.

Every record a worker ships is written to the master's stream as it arrives (`take`). A worker
is lost when its process exits, Locust stops hearing its heartbeat, or it leaves the run before
its final report: a `worker` record says which, when, why and what it had reported, and from
then on the summed pacer counters carry its part of each open-model schedule as `lost` — the
sessions due in its part (counted from the same schedule it was following) whose outcome was
never reported — instead of its stale `in_flight`.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from loadtests.run.core import Counters
from loadtests.stream import Req, StreamWriter, WorkerEvent, decode

__all__ = ["DueCount", "WorkerBook", "WorkerState"]

_STALE = ("in_flight", "idle", "queued")  # meaningless once a worker is gone


class DueCount:
    """How many offsets of an increasing sequence lie below a growing bound (incremental: a
    long run's schedule is walked once)."""

    def __init__(self, offsets: Iterator[float]) -> None:
        self._offsets = offsets
        self._next = next(offsets, math.inf)
        self.count = 0

    def until(self, elapsed: float) -> int:
        while self._next < elapsed:
            self.count += 1
            self._next = next(self._offsets, math.inf)
        return self.count


@dataclass
class WorkerState:
    """One worker as the master knows it."""

    id: str
    index: int
    of: int
    host: str = ""
    pid: int = 0
    pacers: dict[str, dict[str, int]] = field(default_factory=dict)
    sessions: dict[str, dict[str, int]] = field(default_factory=dict)
    users: int = 0
    finished: bool = False
    lost: bool = False
    due: dict[str, DueCount] = field(default_factory=dict)  # a lost worker's schedule

    def snapshot(self, elapsed: float) -> dict[str, dict[str, int]]:
        """Its pacer counters; a lost worker's with its whole part due so far as intended and
        the part never reported on as `lost`."""
        if not self.lost:
            return self.pacers
        out = {}
        for name, counts in self.pacers.items():
            counts = {k: v for k, v in counts.items() if k not in _STALE}
            due = self.due.get(name)
            if due is not None:
                intended = max(due.until(elapsed), counts.get("intended", 0))
                known = sum(counts.get(k, 0) for k in ("completed", "interrupted", "dropped"))
                counts["intended"] = intended
                counts["lost"] = intended - known
            out[name] = counts
        return out


class WorkerBook:
    """Master side: workers by Locust client id, their records and counters."""

    def __init__(self, writer: StreamWriter, counters: Counters) -> None:
        self.writer = writer
        self.counters = counters
        self.workers: dict[str, WorkerState] = {}
        self._peaks: dict[str, int] = defaultdict(int)
        self._late: set[str] = set()

    # -- membership -----------------------------------------------------------------------
    def join(self, worker: WorkerState) -> None:
        self.workers[worker.id] = worker
        self.writer.write(WorkerEvent(time.time(), "joined", worker.index, worker.of, worker.host,
                                      worker.pid, worker=worker.id))

    def lose(self, worker_id: str, cause: str,
             schedule: Callable[[WorkerState], dict[str, Iterator[float]]]) -> None:
        """Record `worker_id` as lost; `schedule` gives its part's offsets per scenario."""
        worker = self.workers[worker_id]
        if worker.lost or worker.finished:
            return
        worker.lost = True
        worker.due = {name: DueCount(offsets) for name, offsets in schedule(worker).items()}
        self.writer.write(WorkerEvent(time.time(), "lost", worker.index, worker.of, worker.host,
                                      worker.pid, worker.users, dict(worker.pacers), cause,
                                      worker=worker.id))
        self.writer.flush()

    def late(self, worker_id: str, host: str, pid: int, cause: str) -> bool:
        """Record `worker_id` as joined after the load was split (no part of it: index -1);
        False when it is already known."""
        if worker_id in self.workers or worker_id in self._late:
            return False
        self._late.add(worker_id)
        self.writer.write(WorkerEvent(time.time(), "late", -1, len(self.workers), host, pid,
                                      cause=cause, worker=worker_id))
        self.writer.flush()
        return True

    def running(self) -> list[WorkerState]:
        """Joined, neither finished nor lost."""
        return [w for w in self.workers.values() if not (w.finished or w.lost)]

    # -- reports --------------------------------------------------------------------------
    def take(self, worker_id: str, data: dict[str, Any] | None, final: bool = False) -> None:
        """A worker's shipped records and counters (its final report with `final`)."""
        worker = self.workers.get(worker_id)
        if data:
            write, count = self.writer.write, self.counters.count
            write_ok_req = self.writer.write_ok_req
            for shipped in data["records"]:
                if type(shipped) is list:  # a succeeded request's row (run/shipping.REQ_ROW)
                    ts, rtype, name, ms, length, sc, lag_ms = shipped
                    write_ok_req(ts, rtype, name, ms, length, sc, lag_ms, worker_id)
                    count(name, True, ms, None, None)
                    continue
                shipped["worker"] = worker_id
                record = decode(shipped)
                if record is None:
                    continue
                write(record)
                if type(record) is Req:
                    count(record.name, record.ok, record.ms, record.err, record.code)
            if worker is not None and not worker.lost:
                worker.pacers = data["pacers"]
                worker.sessions = data["sessions"]
                worker.users = data.get("users", worker.users)
        if final and worker is not None:
            worker.finished = True

    def pacer_snapshots(self, elapsed: float) -> dict[str, dict[str, int]]:
        """Every worker's pacer counters summed by scenario (`in_flight_max`: the sum of the
        workers' maxima); `elapsed`: seconds of the schedule run so far."""
        total: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for worker in self.workers.values():
            for name, counts in worker.snapshot(elapsed).items():
                for key, value in counts.items():
                    total[name][key] += value
        return {name: dict(c) for name, c in total.items()}

    def sessions(self) -> dict[str, dict[str, int]]:
        """Sessions by protocol, summed over the workers (a lost worker's open ones: none)."""
        total: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for worker in self.workers.values():
            for proto, counts in worker.sessions.items():
                for key in ("open", "opened", "dropped"):
                    if not (worker.lost and key == "open"):
                        total[proto][key] += counts[key]
        for proto, counts in total.items():  # peak of the sum, as sampled each second
            self._peaks[proto] = max(self._peaks[proto], counts["open"])
            counts["peak"] = self._peaks[proto]
        return {proto: dict(c) for proto, c in total.items()}
