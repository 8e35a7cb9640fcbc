"""The open-model pacer: hands intended start times to Locust users, counting late and dropped.

A scenario on an arrival schedule runs `max_in_flight` Locust users (its channels). One greenlet
walks the intended start times and queues a token at each. A channel takes the oldest token; one
that waited longer than `max_wait` for a channel is counted as dropped (k6's dropped_iterations),
one taken more than `late_after` after its intended time is counted as late — sessions are never
silently skipped or shifted. Latency of whole sessions is measured by the users from the intended
time (coordinated omission).
"""

from __future__ import annotations

import itertools
import random
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import gevent
from gevent.hub import Waiter

from loadtests.profiles import ArrivalSchedule
from loadtests.schedule.arrivals import arrival_offsets

__all__ = ["ArrivalPacer", "Token"]

_YIELD_EVERY = 256  # tokens issued back to back (when behind) between two yields to the hub


@dataclass(frozen=True, slots=True)
class Token:
    """One session to start: intended start on the wall clock and on the monotonic clock."""

    wall: float
    mono: float
    lag: float  # seconds between the intended start and the pick-up


class ArrivalPacer:
    def __init__(self, schedule: ArrivalSchedule, rng: random.Random,
                 part: tuple[int, int] = (0, 1)) -> None:
        """`part` (index, count): this process takes every count-th session of the schedule,
        from the index-th (N worker processes with the same `rng` seed share it exactly)."""
        self.schedule = schedule
        self.part = part
        self._rng = rng
        self._queue: deque[tuple[float, float]] = deque()  # (wall, monotonic) intended starts
        # idle channels, longest idle first; each is handed a (wall, monotonic) intended start
        # through a bare Waiter, switched to by a hub callback (no AsyncResult, its links and
        # its Timeout context per session)
        self._waiters: deque[Waiter[tuple[float, float]]] = deque()
        self._run_callback: Callable[..., object] | None = None  # the hub's, set by start()
        self._greenlet: gevent.Greenlet | None = None
        self.idle = 0
        self.intended = 0
        self.started = 0
        self.late = 0
        self.dropped = 0
        self.completed = 0
        self.interrupted = 0
        self.in_flight = 0
        self.in_flight_max = 0
        # start lags (s) since `take_lags`: tokens handed to an idle channel / from the backlog
        self._lags: tuple[list[float], list[float]] = ([], [])
        self.started_at: float | None = None  # wall clock
        self.stopped_at: float | None = None

    # -- the schedule's side ---------------------------------------------------------------
    def start(self, duration: float) -> None:
        """Start issuing tokens now, for `duration` seconds."""
        self._run_callback = gevent.get_hub().loop.run_callback
        self._greenlet = gevent.spawn(self._issue, duration)

    def _issue(self, duration: float) -> None:
        mono0, wall0 = time.monotonic(), time.time()
        self.started_at = wall0
        try:
            for offset in self.offsets():
                if offset >= duration:
                    break
                delay = mono0 + offset - time.monotonic()
                if delay > 0:
                    gevent.sleep(delay)
                elif self.intended % _YIELD_EVERY == 0:
                    gevent.sleep(0)  # behind schedule: still let signals, ticks and users run
                self.intended += 1
                self._offer((wall0 + offset, mono0 + offset))
            remaining = mono0 + duration - time.monotonic()
            if remaining > 0:
                gevent.sleep(remaining)
        finally:
            self.stopped_at = time.time()

    def offsets(self) -> Iterator[float]:
        """This part's intended start offsets (s from the start), from a copy of the rng."""
        rng = random.Random()
        rng.setstate(self._rng.getstate())
        bursts = self.schedule.bursts
        offsets = arrival_offsets(
            self.schedule.sessions_per_s, self.schedule.process, rng,
            burst_share=bursts.share if bursts else 0.0,
            burst_every=bursts.every if bursts else 60.0,
            burst_spread=bursts.spread if bursts else 1.0)
        index, count = self.part
        return itertools.islice(offsets, index, None, count)

    def stop(self) -> None:
        """Stop issuing tokens (tokens already queued are still served)."""
        if self._greenlet is not None:
            self._greenlet.kill(block=True)

    @property
    def running(self) -> bool:
        return self._greenlet is not None and not self._greenlet.dead

    # -- the users' side -------------------------------------------------------------------
    def _expire(self, now: float) -> None:
        """Count tokens that waited longer than max_wait as dropped."""
        limit = now - self.schedule.max_wait
        while self._queue and self._queue[0][1] < limit:
            self._queue.popleft()
            self.dropped += 1

    def close(self) -> None:
        """The run is over: tokens nobody took are dropped."""
        self.stop()
        self.dropped += len(self._queue)
        self._queue.clear()

    def _offer(self, item: tuple[float, float]) -> None:
        """A token is due: straight to the channel idle longest, else into the backlog."""
        if self._waiters:
            assert self._run_callback is not None, "tokens are offered after start()"
            self._run_callback(self._waiters.popleft().switch, item)
        else:
            self._expire(time.monotonic())
            self._queue.append(item)

    def take(self) -> Token:
        """Block until a token is due; the caller must call `finish()` after the session."""
        self._expire(time.monotonic())
        backlog = bool(self._queue)
        if backlog:
            wall, mono = self._queue.popleft()
        else:
            waiter: Waiter[tuple[float, float]] = Waiter()
            self._waiters.append(waiter)
            self.idle += 1
            try:
                wall, mono = waiter.get()
            except BaseException:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                else:
                    self.dropped += 1  # handed to us as we were stopped: nobody will run it
                raise
            finally:
                self.idle -= 1
        lag = time.monotonic() - mono
        self._lags[backlog].append(lag)
        if lag > self.schedule.late_after:
            self.late += 1
        self.started += 1
        self.in_flight += 1
        self.in_flight_max = max(self.in_flight_max, self.in_flight)
        return Token(wall, mono, lag)

    def take_lags(self) -> tuple[list[float], list[float]]:
        """Start lags (s) since the previous call: of sessions handed to an idle channel (only
        the generator delayed them), and of those that waited in the backlog for a channel."""
        lags, self._lags = self._lags, ([], [])
        return lags

    def finish(self, completed: bool) -> None:
        self.in_flight -= 1
        if completed:
            self.completed += 1
        else:
            self.interrupted += 1

    def snapshot(self) -> dict[str, int]:
        return {
            "intended": self.intended, "started": self.started, "late": self.late,
            "dropped": self.dropped, "completed": self.completed,
            "interrupted": self.interrupted, "in_flight": self.in_flight,
            "in_flight_max": self.in_flight_max, "idle": self.idle, "queued": len(self._queue),
        }
