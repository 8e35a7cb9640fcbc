"""Runs a profile against a target on Locust, writing the results stream.

Order of a run: header record -> spawn every scenario's users -> start the open-model pacers ->
once a second: flush the stream, write a tick, show progress -> at the end of the duration (or
on a stop request such as Ctrl-C): stop the pacers, let sessions in flight drain (bounded by the
profile's `drain`), stop the users -> end record -> one pass over the stream: summary.json
(with the QoS verdict), report.html and its CSV tables (loadtests.report.finish).

With `workers` = 0 everything runs in this process. With N > 0 this process is a Locust master
and N local worker processes (loadtests.worker) run the users, each with 1/N of every arrival
rate; their records reach this stream through Locust's messaging (one process holds at most
~19,000 sockets here, so large runs need several).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event
from locust.env import Environment
from locust.event import Events
from locust.runners import STATE_RUNNING, Runner

from loadtests import __version__, bridge
from loadtests.clients.errors import describe
from loadtests.monitoring import RunMonitor
from loadtests.profiles import ArrivalSchedule, Profile, RampSchedule
from loadtests.report.finish import finish_run
from loadtests.schedule.ceiling import CeilingShape, StepJudge
from loadtests.schedule.loadplan import build_load, spawn_rate
from loadtests.schedule.pacing import ArrivalPacer
from loadtests.schedule.sessions import gauge
from loadtests.stream import (
    RESULTS_FILE,
    End,
    Header,
    Phase,
    Req,
    StreamWriter,
    Tick,
    decode,
    user_error_record,
)
from loadtests.targets import Target
from loadtests.worker import FINAL, FINISH, REPORT_KEY, START, job_for_worker

__all__ = ["Progress", "RunError", "RunOptions", "RunResult", "run_profile"]


class RunError(RuntimeError):
    """The run could not start (e.g. worker processes did not connect)."""


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
    workers: int = 0  # 0: run the users in this process
    profile_file: str | None = None
    on_progress: Callable[[Progress], None] | None = None
    stop: Event = field(default_factory=Event)  # set it (e.g. from a SIGINT handler) to end early
    extra_end: Callable[[], dict[str, Any]] | None = None  # more fields for the end record
    web: tuple[str, int] | None = None  # serve Locust's web UI (+ a target tab) there


@dataclass(frozen=True)
class RunResult:
    out_dir: Path
    summary: dict[str, Any]
    reason: str


class _Counters:
    """Request counts for the progress line (the stream holds the records themselves), and the
    tap through which a ceiling search's judge sees every request."""

    def __init__(self, tap: Callable[[str, bool, float, str | None, int | str | None], None]
                 | None = None) -> None:
        self.requests = self.failures = self.sessions = 0
        self.tap = tap

    def count(self, name: str, ok: bool, ms: float = 0.0, error: str | None = None,
              code: int | str | None = None) -> None:
        self.requests += 1
        self.failures += not ok
        self.sessions += name == "session"
        if self.tap is not None:
            self.tap(name, ok, ms, error, code)

    def on_request(self, name: str, response_time: float = 0.0,
                   exception: BaseException | None = None, **_: Any) -> None:
        if exception is None:
            self.count(name, True, response_time)
        else:
            info = describe(exception)
            self.count(name, False, response_time, str(info), info.code)


class _LocalFeed:
    """Counters of this process's own pacers and sessions."""

    def __init__(self, pacers: dict[str, ArrivalPacer]) -> None:
        self.pacers = pacers

    def pacer_snapshots(self) -> dict[str, dict[str, int]]:
        return {name: p.snapshot() for name, p in self.pacers.items()}

    def sessions(self) -> dict[str, dict[str, int]]:
        return gauge.snapshot()


class _WorkerFeed:
    """Master side: records and counters arriving from the worker processes."""

    def __init__(self, writer: StreamWriter, counters: _Counters) -> None:
        self.writer = writer
        self.counters = counters
        self.pacers: dict[str, dict[str, dict[str, int]]] = {}
        self.sessions_by_worker: dict[str, dict[str, dict[str, int]]] = {}
        self.finished: set[str] = set()
        self._peaks: dict[str, int] = defaultdict(int)

    def _take(self, worker: str, data: dict[str, Any] | None) -> None:
        if not data:
            return
        for shipped in data["records"]:
            shipped["worker"] = worker
            record = decode(shipped)
            if record is None:
                continue
            self.writer.write(record)
            if type(record) is Req:
                self.counters.count(record.name, record.ok, record.ms, record.err, record.code)
        self.pacers[worker] = data["pacers"]
        self.sessions_by_worker[worker] = data["sessions"]

    def on_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        self._take(client_id, data.get(REPORT_KEY))

    def on_final(self, environment: Environment, msg: Any, **_: Any) -> None:
        self._take(msg.node_id, msg.data)
        self.finished.add(msg.node_id)

    def pacer_snapshots(self) -> dict[str, dict[str, int]]:
        total: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for per_worker in self.pacers.values():
            for name, counts in per_worker.items():
                for key, value in counts.items():
                    total[name][key] += value  # in_flight_max: sum of the workers' maxima
        return {name: dict(c) for name, c in total.items()}

    def sessions(self) -> dict[str, dict[str, int]]:
        total: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for per_worker in self.sessions_by_worker.values():
            for proto, counts in per_worker.items():
                for key in ("open", "opened", "dropped"):
                    total[proto][key] += counts[key]
        for proto, counts in total.items():  # peak of the sum, as sampled each second
            self._peaks[proto] = max(self._peaks[proto], counts["open"])
            counts["peak"] = self._peaks[proto]
        return {proto: dict(c) for proto, c in total.items()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_workers(profile: Profile, target: Target, options: RunOptions,
                   port: int) -> list[subprocess.Popen[bytes]]:
    procs = []
    for index in range(options.workers):
        proc = subprocess.Popen(
            [sys.executable, "-m", "loadtests.worker", "--master-port", str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=(options.out_dir / f"worker{index}.log").open("ab"))
        assert proc.stdin is not None
        proc.stdin.write(job_for_worker(profile, target, allow_remote=options.allow_remote,
                                        workers=options.workers, index=index).encode())
        proc.stdin.close()
        procs.append(proc)
    return procs


def _stop_workers(procs: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_profile(profile: Profile, target: Target, options: RunOptions) -> RunResult:
    logging.getLogger("locust").setLevel(logging.ERROR)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    duration = options.duration if options.duration is not None else profile.duration
    distributed = options.workers > 0
    bridge.start()
    gauge.reset()
    classes, pacers = build_load(profile, target, allow_remote=options.allow_remote)
    if distributed:
        pacers = {}  # the workers pace; the master only counts
    writer = StreamWriter(options.out_dir / RESULTS_FILE)
    ramp = next((sc for sc in profile.scenarios if isinstance(sc.schedule, RampSchedule)), None)
    judge = StepJudge(ramp.schedule.stop_when) if ramp is not None else None  # type: ignore[union-attr]
    counters = _Counters(judge.record if judge is not None else None)
    events = Events()
    events.request.add_listener(writer.on_request)
    events.request.add_listener(counters.on_request)
    events.user_error.add_listener(
        lambda user_instance, exception, tb, **_: writer.write(
            user_error_record(user_instance, exception)))
    shape: CeilingShape | None = None
    if ramp is not None and judge is not None:
        assert isinstance(ramp.schedule, RampSchedule)
        shape = CeilingShape(
            ramp.schedule, judge, on_step=writer.write,
            held=lambda: feed.sessions().get(ramp.protocol.upper(), {}).get("open", 0))
    env = Environment(user_classes=classes, events=events, shape_class=shape)
    feed: _LocalFeed | _WorkerFeed
    procs: list[subprocess.Popen[bytes]] = []
    runner: Runner
    if distributed:
        port = _free_port()
        runner = env.create_master_runner("127.0.0.1", port)
        feed = _WorkerFeed(writer, counters)
        events.worker_report.add_listener(feed.on_report)
        runner.register_message(FINAL, feed.on_final)
    else:
        runner = env.create_local_runner()
        feed = _LocalFeed(pacers)
    monitor = RunMonitor(target, writer)
    if options.web is not None:
        from loadtests.webui import attach_web_ui

        attach_web_ui(env, options.web[0], options.web[1], lambda: monitor.latest)
    writer.write(Header(
        time.time(), version=__version__, profile=profile.model_dump(mode="json"),
        profile_file=options.profile_file, target=target.public(), monitor=monitor.describe(),
        duration=duration, workers=options.workers,
        rates={sc.name: round(sc.schedule.sessions_per_s, 6) for sc in profile.scenarios
               if isinstance(sc.schedule, ArrivalSchedule)}))
    writer.flush()

    total_users = sum(c.fixed_count for c in classes)
    start = time.monotonic()
    load_start = start
    load_end: float | None = None
    reason = "completed"
    phase = "spawning"

    def tick() -> None:
        snapshot = feed.pacer_snapshots()
        sessions = feed.sessions()
        writer.write(Tick(time.time(), round(time.monotonic() - start, 3), phase,
                          runner.user_count, snapshot, sessions))
        writer.flush()
        if options.on_progress is not None:
            options.on_progress(Progress(
                elapsed=time.monotonic() - load_start if phase != "spawning" else 0.0,
                duration=duration, phase=phase, users=runner.user_count,
                requests=counters.requests, failures=counters.failures,
                sessions=counters.sessions, scenarios=snapshot))

    def spawning() -> bool:
        if distributed:
            return not (runner.state == STATE_RUNNING and getattr(runner, "spawning_completed",
                                                                   False))
        glet = runner.spawning_greenlet
        return glet is not None and not glet.dead

    try:
        monitor.start()
        if distributed:
            procs = _start_workers(profile, target, options, port)
            deadline = time.monotonic() + 60
            while runner.worker_count < options.workers:  # type: ignore[attr-defined]
                if time.monotonic() > deadline or options.stop.wait(timeout=0.2):
                    raise RunError(f"only {runner.worker_count} of {options.workers} worker "  # type: ignore[attr-defined]
                                   f"processes connected; see {options.out_dir}/worker*.log")
        if shape is not None:
            runner.start_shape()
        else:
            runner.start(total_users, spawn_rate=spawn_rate(profile), wait=False)
        gevent.sleep(0.1)
        while shape is None and spawning():
            if options.stop.wait(timeout=1.0):
                break
            tick()
        load_start = time.monotonic()
        writer.write(Phase(time.time(), "load_start", "*"))
        if distributed:
            runner.send_message(START, {"duration": duration})
        for pacer in pacers.values():
            pacer.start(duration)
        for sc in profile.scenarios:
            if isinstance(sc.schedule, ArrivalSchedule):
                writer.write(Phase(time.time(), "arrival_start", sc.name))
        phase = "running"
        deadline = load_start + duration
        while not options.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (shape is not None and shape.finished):
                break
            options.stop.wait(timeout=min(1.0, remaining))
            tick()
        if options.stop.is_set():
            reason = "interrupted"
        phase = "draining"
        for pacer in pacers.values():
            pacer.stop()
        load_end = time.time()
        for sc in profile.scenarios:
            if isinstance(sc.schedule, ArrivalSchedule):
                writer.write(Phase(load_end, "arrival_stop", sc.name))
        drain = 0.0 if options.stop.is_set() else profile.drain
        if distributed:
            runner.send_message(FINISH, {"drain": drain})
            wait_until = time.monotonic() + drain + 10
            # a worker that died (no heartbeat) is no longer counted: don't wait for it
            while (len(feed.finished) < min(options.workers, runner.worker_count)  # type: ignore[union-attr,attr-defined]
                   and time.monotonic() < wait_until):
                gevent.sleep(0.1)
        else:
            drain_deadline = time.monotonic() + drain
            while (any(p.in_flight for p in pacers.values())
                   and time.monotonic() < drain_deadline
                   and not options.stop.is_set()):  # a stop request cuts the drain short
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
        monitor.stop()
        with contextlib.suppress(Exception):
            runner.quit()
        _stop_workers(procs)
        extra = options.extra_end() if options.extra_end is not None else {}
        writer.write(End(time.time(), reason, load_end or time.time(), **extra))
        writer.close()
    summary = finish_run(options.out_dir, profile.qos)
    return RunResult(options.out_dir, summary, reason)
