"""Runs a profile against a target in this process on Locust, writing the results stream.

Order of a run: header record -> spawn every scenario's users -> start the open-model pacers ->
once a second: flush the stream, write a tick, show progress -> at the end of the duration (or
on a stop request such as Ctrl-C): stop the pacers, let sessions in flight drain (bounded by the
profile's `drain`), stop the users -> end record -> summary.json from the stream.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event
from locust.env import Environment
from locust.event import Events

from loadtests import __version__, bridge
from loadtests.analysis import write_summary
from loadtests.pacing import ArrivalPacer
from loadtests.profiles import ArrivalSchedule, ClosedSchedule, Profile
from loadtests.results import RESULTS_FILE, ResultsWriter, describe_error
from loadtests.sessions import gauge
from loadtests.targets import Target
from loadtests.users import user_class_for

__all__ = ["Progress", "RunOptions", "RunResult", "run_profile"]


@dataclass(frozen=True)
class Progress:
    """What the runner reports each second to whoever shows progress."""

    elapsed: float
    duration: float
    phase: str  # "spawning", "running", "draining"
    users: int
    requests: int
    failures: int
    sessions: int
    scenarios: dict[str, dict[str, int]]


@dataclass
class RunOptions:
    out_dir: Path
    duration: float | None = None  # overrides the profile's
    allow_remote: bool = False
    profile_file: str | None = None
    on_progress: Callable[[Progress], None] | None = None
    stop: Event = field(default_factory=Event)  # set it (e.g. from a SIGINT handler) to end early
    extra_end: Callable[[], dict[str, Any]] | None = None  # more fields for the end record


@dataclass(frozen=True)
class RunResult:
    out_dir: Path
    summary: dict[str, Any]
    reason: str


class _Counters:
    """Request counts for the progress line (the stream holds the records themselves)."""

    def __init__(self) -> None:
        self.requests = self.failures = self.sessions = 0

    def on_request(self, name: str, exception: BaseException | None = None, **_: Any) -> None:
        self.requests += 1
        if exception is not None:
            self.failures += 1
        if name == "session":
            self.sessions += 1


def run_profile(profile: Profile, target: Target, options: RunOptions) -> RunResult:
    logging.getLogger("locust").setLevel(logging.ERROR)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    duration = options.duration if options.duration is not None else profile.duration
    bridge.start()
    gauge.reset()
    master_rng = random.Random(profile.seed)
    pacers: dict[str, ArrivalPacer] = {}
    classes = []
    for sc in profile.scenarios:
        pacer = None
        if isinstance(sc.schedule, ArrivalSchedule):
            pacer = ArrivalPacer(sc.schedule, random.Random(master_rng.random()))
            pacers[sc.name] = pacer
        classes.append(user_class_for(sc, target, pacer=pacer, allow_remote=options.allow_remote,
                                      seed=profile.seed))
    writer = ResultsWriter(options.out_dir / RESULTS_FILE)
    counters = _Counters()
    events = Events()
    events.request.add_listener(writer.on_request)
    events.request.add_listener(counters.on_request)
    events.user_error.add_listener(
        lambda user_instance, exception, tb, **_: writer.write(
            "error", user=type(user_instance).__name__, error=describe_error(exception)))
    env = Environment(user_classes=classes, events=events)
    runner = env.create_local_runner()
    writer.write("run", version=__version__, profile=profile.model_dump(mode="json"),
                 profile_file=options.profile_file, target=target.public(),
                 duration=duration,
                 rates={sc.name: round(sc.schedule.sessions_per_s, 6) for sc in profile.scenarios
                        if isinstance(sc.schedule, ArrivalSchedule)})
    writer.flush()

    total_users = sum(c.fixed_count for c in classes)
    spawn_rate = max(_spawn_rate(sc.schedule) for sc in profile.scenarios)
    start = time.monotonic()
    reason = "completed"
    phase = "spawning"

    def tick() -> None:
        snapshot = {name: p.snapshot() for name, p in pacers.items()}
        writer.write("tick", elapsed=round(time.monotonic() - start, 3), phase=phase,
                     users=runner.user_count, scenarios=snapshot, sessions=gauge.snapshot())
        writer.flush()
        if options.on_progress is not None:
            options.on_progress(Progress(
                elapsed=time.monotonic() - load_start if phase != "spawning" else 0.0,
                duration=duration, phase=phase, users=runner.user_count,
                requests=counters.requests, failures=counters.failures,
                sessions=counters.sessions, scenarios=snapshot))

    load_start = start
    load_end: float | None = None
    try:
        runner.start(total_users, spawn_rate=spawn_rate, wait=False)
        while runner.spawning_greenlet is not None and not runner.spawning_greenlet.dead:
            if options.stop.wait(timeout=1.0):
                break
            tick()
        load_start = time.monotonic()
        writer.write("phase", name="load_start", scenario="*")
        for name, pacer in pacers.items():
            pacer.start(duration)
            writer.write("phase", name="arrival_start", scenario=name, ts=time.time())
        phase = "running"
        deadline = load_start + duration
        while not options.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            options.stop.wait(timeout=min(1.0, remaining))
            tick()
        if options.stop.is_set():
            reason = "interrupted"
        phase = "draining"
        for name, pacer in pacers.items():
            pacer.stop()
            writer.write("phase", name="arrival_stop", scenario=name,
                         ts=pacer.stopped_at or time.time())
        load_end = time.time()
        drain_deadline = time.monotonic() + profile.drain
        while (any(p.in_flight for p in pacers.values()) and time.monotonic() < drain_deadline
               and not options.stop.is_set()):  # a (second) stop request cuts the drain short
            gevent.sleep(0.05)
        runner.stop()
        runner.quit()
        for pacer in pacers.values():
            pacer.close()  # sessions still waiting for a channel were never sent: dropped
        tick()
    except BaseException:
        reason = "crashed"
        raise
    finally:
        extra = options.extra_end() if options.extra_end is not None else {}
        writer.write("end", reason=reason, load_end=load_end or time.time(), **extra)
        writer.close()
    summary = write_summary(options.out_dir)
    return RunResult(options.out_dir, summary, reason)


def _spawn_rate(schedule: ArrivalSchedule | ClosedSchedule) -> float:
    if isinstance(schedule, ArrivalSchedule):
        return float(schedule.max_in_flight)  # channels are idle until the pacer starts
    return schedule.spawn_rate or float(schedule.users)
