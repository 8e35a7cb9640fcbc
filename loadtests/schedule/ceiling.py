"""The ceiling search: a Locust LoadTestShape that adds users step by step and stops at the first
step whose requests fail the profile's `stop_when` (too many failures, or too slow).

`StepJudge` sees every request as it is recorded (in a distributed run: as it reaches the
master) and keeps the current step's counts; `judge_step` is the pure verdict. Each finished
step is written to the results stream as a typed `step` record (loadtests.stream.Step), so the
analysis pass finds the ceiling (the last good step) and its cause without the runner's memory.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from locust import LoadTestShape

from loadtests.profiles import RampSchedule, StopWhen
from loadtests.stream import Step

__all__ = ["CeilingShape", "StepJudge", "StepStats", "judge_step"]


@dataclass
class StepStats:
    users: int
    started: float  # wall clock
    requests: int = 0
    failures: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def judge_step(stats: StepStats, stop_when: StopWhen) -> tuple[bool, list[str]]:
    """(good, reasons it is not): the pure verdict on one step."""
    reasons = []
    if stats.requests:
        failed = 100.0 * stats.failures / stats.requests
        if failed > stop_when.failure_percent:
            reasons.append(f"{failed:.1f}% of {stats.requests} requests failed "
                           f"(limit {stop_when.failure_percent:g}%)")
    latency = stats.percentile(stop_when.latency_percentile)
    if latency is not None and latency > stop_when.latency_over * 1000:
        reasons.append(f"p{stop_when.latency_percentile:g} {latency:.0f} ms over "
                       f"{stop_when.latency_over * 1000:.0f} ms")
    return not reasons, reasons


class StepJudge:
    """Counts the requests of the current step (whole-session records are not judged by time:
    an idle session lasts as long as the run)."""

    def __init__(self, stop_when: StopWhen) -> None:
        self.stop_when = stop_when
        self.current: StepStats | None = None

    def begin(self, users: int) -> None:
        self.current = StepStats(users=users, started=time.time())

    def record(self, name: str, ok: bool, ms: float, error: str | None,
               code: int | str | None = None) -> None:
        step = self.current
        if step is None:
            return
        step.requests += 1
        if not ok:
            step.failures += 1
            step.errors[error or "unknown"] += 1
            if code is not None:
                step.codes[str(code)] += 1
        if name != "session":
            step.latencies.append(ms)

    def end(self, held: int) -> Step:
        """The finished step as a `step` record (and its verdict)."""
        step = self.current
        assert step is not None
        good, reasons = judge_step(step, self.stop_when)
        now = time.time()
        return Step(now, users=step.users, held=held, start=step.started, end=now,
                    requests=step.requests, failures=step.failures,
                    p_latency_ms=step.percentile(self.stop_when.latency_percentile),
                    good=good, reasons=reasons, errors=dict(step.errors.most_common(5)),
                    codes=dict(step.codes))


class CeilingShape(LoadTestShape):
    """Steps of users; `on_step(record)` receives each finished step; stops at the first bad one
    (or after the last step, at `max`). A step's hold time starts once its users are spawned."""

    def __init__(self, schedule: RampSchedule, judge: StepJudge,
                 on_step: Callable[[Step], None], held: Callable[[], int]) -> None:
        super().__init__()
        self.schedule = schedule
        self.judge = judge
        self.on_step = on_step
        self.held = held
        self.users = schedule.start
        self.holding_since: float | None = None
        self.announced = False
        self.finished = False

    def tick(self) -> tuple[int, float] | None:
        if self.finished:
            return None
        s = self.schedule
        if not self.announced:  # Locust spawns this step's users after we return it
            self.announced = True
            self.judge.begin(self.users)
            return self.users, s.spawn_rate
        now = time.monotonic()
        if self.holding_since is None:
            self.holding_since = now  # spawning is over: the hold starts
        if now - self.holding_since < s.hold:
            return self.users, s.spawn_rate
        record = self.judge.end(self.held())
        self.on_step(record)
        if not record.good or self.users >= s.max:
            self.finished = True
            return None
        self.users = min(s.max, self.users + s.step)
        self.announced, self.holding_since = False, None
        return self.tick()
