"""The master's side of a distributed run's load, the same for `mailswarm run --workers N` /
`--master` (loadtests.run.distributed.MasterDriver) and a plugin's `locust --master`
(loadtests.locust.plugin): `START` the workers' arrivals, `FINISH` them and wait for every final
report, sum their pacer counters and sessions (loadtests.run.workers.WorkerBook), and watch
them: a worker whose process exits, that falls silent or leaves before its final report is lost
(recorded, its unsent part counted); one that joins after the load was split is recorded as
`late` — it has no part of the open-model schedules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import gevent
import locust.runners
from locust.runners import STATE_MISSING, MasterRunner

from loadtests.run.messages import FINISH, START
from loadtests.run.workers import WorkerBook, WorkerState

__all__ = ["FINAL_GRACE", "FINAL_PATIENCE", "LATE_CAUSE", "WATCH_EVERY", "MasterLoad",
           "missing_cause", "set_worker_timeout"]

FINAL_GRACE = 10.0  # seconds beyond the drain for every worker's final report
FINAL_PATIENCE = 300.0  # seconds more for workers still heard from (heartbeats) past the grace
WATCH_EVERY = 0.25  # seconds between two looks at the workers
LATE_CAUSE = ("joined after the load was split: it has no part of the open-model schedules "
              "(the other workers' parts are unchanged)")

log = logging.getLogger(__name__)

Schedule = Callable[[WorkerState], dict[str, Iterator[float]]]


def set_worker_timeout(seconds: float) -> None:
    """A worker is missing (lost) after `seconds` without a heartbeat: Locust counts down
    HEARTBEAT_LIVENESS once a second (module-wide, read as workers join and report)."""
    locust.runners.HEARTBEAT_LIVENESS = max(1, round(seconds) - 1)


def missing_cause(runner: MasterRunner, worker_id: str) -> str | None:
    """Why Locust no longer has `worker_id` in the run (left, or silent), else None."""
    node = runner.clients.get(worker_id)
    if node is None:
        return "it left the run before its final report"
    if node.state == STATE_MISSING:
        return f"no heartbeat for {locust.runners.HEARTBEAT_LIVENESS + 1} s"
    return None


class MasterLoad:
    """The load side of a master (the `Load` of loadtests.run.core): its workers pace, this
    process sums what they report. `schedule(worker)` gives a worker's part of every
    open-model schedule (to count what a lost worker did not send)."""

    def __init__(self, runner: MasterRunner, book: WorkerBook, schedule: Schedule) -> None:
        self.runner, self.book, self.schedule = runner, book, schedule
        self.load_started: float | None = None  # monotonic
        self.load_stopped: float | None = None
        self.duration = 0.0
        self._watcher: gevent.Greenlet | None = None

    # -- watching the workers -------------------------------------------------------------
    def why_lost(self, worker: WorkerState) -> str | None:
        """Why `worker` is lost, else None (a driver that knows the process says more)."""
        return missing_cause(self.runner, worker.id)

    def check_workers(self) -> None:
        """Record every worker lost since the last look."""
        for worker in self.book.running():
            cause = self.why_lost(worker)
            if cause is not None:
                self.lose(worker, cause)

    def lose(self, worker: WorkerState, cause: str) -> None:
        self.book.lose(worker.id, cause, self.schedule)
        log.warning("WORKER LOST: %s (part %d of %d, %s pid %d): %s; its part of the load is "
                    "not sent", worker.id, worker.index + 1, worker.of, worker.host, worker.pid,
                    cause)

    def late(self, worker_id: str, host: str = "", pid: int = 0, cause: str = LATE_CAUSE) -> None:
        """A worker joined once the load was split: recorded, with no part of it."""
        if self.book.late(worker_id, host, pid, cause):
            log.warning("LATE WORKER: %s: %s", worker_id, cause)

    def watch(self) -> None:
        """Look at the workers every WATCH_EVERY s until `close`."""
        def watching() -> None:
            while True:
                self.check_workers()
                gevent.sleep(WATCH_EVERY)

        self._watcher = gevent.spawn(watching)

    def _elapsed(self) -> float:
        """Seconds of the schedule run so far."""
        if self.load_started is None:
            return 0.0
        end = self.load_stopped if self.load_stopped is not None else time.monotonic()
        return min(end - self.load_started, self.duration)

    # -- the load -------------------------------------------------------------------------
    def pacer_snapshots(self) -> dict[str, dict[str, int]]:
        return self.book.pacer_snapshots(self._elapsed())

    def sessions(self) -> dict[str, dict[str, int]]:
        return self.book.sessions()

    def start_load(self, duration: float) -> None:
        self.duration = duration
        self.load_started = time.monotonic()
        self.runner.send_message(START, {"duration": duration})

    def stop_arrivals(self) -> None:
        self.load_stopped = time.monotonic()  # each worker stops its own on FINISH

    def drain(self, seconds: float) -> None:
        """Each worker drains its sessions, then sends its final report; wait for them all
        (a worker lost meanwhile is not waited for; one silent past the grace is lost)."""
        self.runner.send_message(FINISH, {"drain": seconds})
        # a longer --worker-timeout (a saturated host) also gives the final reports longer
        grace = max(FINAL_GRACE, locust.runners.HEARTBEAT_LIVENESS + 1.0)
        started = time.monotonic()
        self._wait_final(started + seconds + grace)
        if self.book.running():
            # past the grace, wait on only for workers still heard from (closing thousands
            # of sessions on a busy host takes long): the watcher loses the silent ones
            log.warning("waiting for the final reports of %d worker(s), still running",
                        len(self.book.running()))
            self._wait_final(started + seconds + grace + FINAL_PATIENCE)
        self.check_workers()
        waited = time.monotonic() - started
        for worker in self.book.running():
            self.lose(worker, f"no final report within {waited:.0f} s (still running)")

    def _wait_final(self, until: float) -> None:
        """Until every running worker has sent its final report, or `until` (monotonic)."""
        while self.book.running() and time.monotonic() < until:
            gevent.sleep(0.1)

    def after_stop(self) -> None:
        pass

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.kill()
            self._watcher = None
