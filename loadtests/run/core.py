"""The sequence every run follows, whether it is `mailswarm run PROFILE` or `locust -f
LOCUSTFILE` with `import loadtests.locust.plugin`, and whether its users run here or in worker
processes.

Order of a run: header record -> spawn the users -> start the load (the open-model pacers) ->
once a second: flush the stream, write a tick, show progress -> at the end of the duration (or
on a stop request such as Ctrl-C): stop new arrivals, let sessions in flight drain (bounded by
the profile's `drain`; not at all after a stop request), stop the users -> end record with the
end reason (`END_REASONS`) -> summary.json from the stream.

`Sequence` holds those steps and their records. `Run` drives it from its own loop (`mailswarm
run`); the plugin (loadtests.locust.plugin) calls the same steps from Locust's events
(test_start, spawning_complete, test_stopping, test_stop). Where the users run is the `Load`'s
part: this process's pacers (`loadtests.run.local`), or workers the master sums
(`loadtests.run.master`); `mailswarm run`'s `Driver` also creates the Locust runner
(`loadtests.run.local`, `loadtests.run.distributed`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import gevent
from locust.env import Environment
from locust.event import Events
from locust.runners import Runner

from loadtests import __version__, bridge
from loadtests.clients.errors import describe
from loadtests.delivery.hook import DeliveryHook
from loadtests.monitor.run import RunMonitor
from loadtests.profiles import ArrivalSchedule, Profile, RampSchedule
from loadtests.protocols import request_type
from loadtests.report.finish import finish_run
from loadtests.run.messages import REPORT_KEY
from loadtests.run.options import RunOptions, RunResult, worker_count
from loadtests.run.pacers import Pacers
from loadtests.run.progress import Progress
from loadtests.run.sources import use_source_addresses
from loadtests.schedule.ceiling import CeilingShape, StepJudge
from loadtests.schedule.loadplan import build_load, spawn_rate
from loadtests.schedule.sessions import gauge
from loadtests.stream import (
    RESULTS_FILE,
    End,
    Header,
    Phase,
    StreamWriter,
    Tick,
    tls_listener,
    user_error_record,
)
from loadtests.stream.redact import Redactor
from loadtests.targets import Target
from loadtests.users.requests import BulkListener

__all__ = ["COMPLETED", "CRASHED", "END_REASONS", "INTERRUPTED", "Counters", "Driver", "Load",
           "Run", "RunParts", "Sequence"]

COMPLETED = "completed"  # the duration (-t) ran out, or the ceiling search found its ceiling
INTERRUPTED = "interrupted"  # stopped early: Ctrl-C, SIGTERM, the web UI's stop, a stop request
CRASHED = "crashed"  # the run itself failed
END_REASONS = (COMPLETED, INTERRUPTED, CRASHED)
"""The end record's `reason`, the same in `mailswarm run` and a plugin's `locust -f` run."""


class Counters:
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

    def on_requests(self, requests: Iterable[dict[str, Any]]) -> None:
        """`on_request` for each of a session's request events (their keyword arguments)."""
        one = self.on_request
        for kw in requests:
            one(kw["name"], kw.get("response_time", 0.0), kw.get("exception"))


@dataclass(frozen=True)
class RunParts:
    """What a driver is built from."""

    profile: Profile
    target: Target
    options: RunOptions
    env: Environment
    events: Events
    writer: StreamWriter
    counters: Counters
    pacers: Pacers  # this process's pacers (a driver whose users run elsewhere ignores them)


class Load(Protocol):
    """Where the users run, as the sequence sees it: this process, or worker processes."""

    def pacer_snapshots(self) -> dict[str, dict[str, int]]:
        """Counters of every open-model pacer, by scenario."""

    def sessions(self) -> dict[str, dict[str, int]]:
        """Open, opened, dropped and peak sessions, by protocol."""

    def start_load(self, duration: float) -> None:
        """Start the open-model arrivals, for `duration` seconds."""

    def stop_arrivals(self) -> None:
        """No new arrivals from now on."""

    def drain(self, seconds: float) -> None:
        """Let sessions in flight end, at most `seconds` (0 after a stop request)."""

    def after_stop(self) -> None:
        """The users are stopped: settle the counters."""


class Driver(Load, Protocol):
    """A `Load` that also makes `mailswarm run`'s Locust runner."""

    @property
    def runner(self) -> Runner:
        """Locust's runner of this process (local, or the master)."""

    def connect(self) -> None:
        """Make the runner ready to spawn users (raises RunError if it cannot)."""

    def spawning(self) -> bool:
        """True while users are still being spawned."""

    def close(self) -> None:
        """Release what `connect` started; called at the end of every run, also a failed one."""


class _Writer(Protocol):
    def write(self, record: Any) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class Sequence:
    """The steps of one run and the records they write, in order: `begin` (header, monitor
    started), `tick` (each second), `start_load`, `stop_arrivals`, `drain`, `stopped`, `end`
    (monitor stopped, end record). `arrivals`: the open-model scenarios' names."""

    def __init__(self, writer: _Writer, load: Load, runner: Runner, counters: Counters,
                 monitor: RunMonitor | None, arrivals: list[str],
                 on_progress: Callable[[Progress], None] | None = None) -> None:
        self.writer, self.load, self.runner, self.counters = writer, load, runner, counters
        self.monitor, self.arrivals, self.on_progress = monitor, arrivals, on_progress
        self.phase = "spawning"
        self.start = self.load_start = 0.0  # monotonic clock: header written, load started
        self.duration = 0.0
        self.load_end: float | None = None  # wall clock: the arrivals stopped

    def begin(self, profile: Profile, target: Target, *, duration: float, workers: int,
              profile_file: str | None) -> None:
        """The header record; the monitor starts."""
        self.duration = duration
        self.writer.write(Header(
            time.time(), version=__version__, profile=profile.model_dump(mode="json"),
            profile_file=profile_file, target=target.public(),
            monitor=self.monitor.describe() if self.monitor is not None else {},
            duration=duration, workers=workers,
            rates={sc.name: round(sc.schedule.sessions_per_s, 6) for sc in profile.scenarios
                   if isinstance(sc.schedule, ArrivalSchedule)}))
        self.writer.flush()
        self.start = self.load_start = time.monotonic()
        if self.monitor is not None:
            self.monitor.start()

    def tick(self) -> None:
        """Once a second: the tick record, the stream flushed, progress shown."""
        runner, counters, phase = self.runner, self.counters, self.phase
        snapshot = self.load.pacer_snapshots()
        self.writer.write(Tick(time.time(), round(time.monotonic() - self.start, 3), phase,
                               runner.user_count, snapshot, self.load.sessions()))
        self.writer.flush()
        if self.on_progress is not None:
            self.on_progress(Progress(
                elapsed=time.monotonic() - self.load_start if phase != "spawning" else 0.0,
                duration=self.duration, phase=phase, users=runner.user_count,
                requests=counters.requests, failures=counters.failures,
                sessions=counters.sessions, scenarios=snapshot))

    def start_load(self, duration: float) -> None:
        """The users are there: the load (and the open-model arrivals, for `duration` s)."""
        self.load_start = time.monotonic()
        self.writer.write(Phase(time.time(), "load_start", "*"))
        self.load.start_load(duration)
        for name in self.arrivals:
            self.writer.write(Phase(time.time(), "arrival_start", name))
        self.phase = "running"

    def stop_arrivals(self) -> float:
        """No new arrivals; returns the wall clock time they stopped."""
        self.phase = "draining"
        self.load.stop_arrivals()
        self.load_end = load_end = time.time()
        for name in self.arrivals:
            self.writer.write(Phase(load_end, "arrival_stop", name))
        return load_end

    def drain(self, seconds: float) -> None:
        """Sessions in flight end, at most `seconds`."""
        self.load.drain(seconds)

    def stopped(self) -> None:
        """The users are stopped: counters settled, the last tick of the load."""
        self.load.after_stop()
        self.tick()

    def end(self, reason: str, **extra: Any) -> None:
        """The monitor stops; the end record; the stream is closed."""
        assert reason in END_REASONS, reason
        try:
            if self.monitor is not None:
                self.monitor.stop()
        finally:  # a second Ctrl-C can cut the above short: the stream still gets its end
            self.writer.write(End(time.time(), reason, self.load_end or time.time(), **extra))
            self.writer.close()


class Run:
    """One run of a profile against a target, its users placed by the driver `driver_for`
    builds."""

    def __init__(self, profile: Profile, target: Target, options: RunOptions,
                 driver_for: Callable[[RunParts], Driver]) -> None:
        logging.getLogger("locust").setLevel(logging.ERROR)
        options.out_dir.mkdir(parents=True, exist_ok=True)
        self.profile, self.target, self.options = profile, target, options
        self.duration = options.duration if options.duration is not None else profile.duration
        bridge.start()
        gauge.reset()
        use_source_addresses(target)
        self.classes, pacers = build_load(profile, target, allow_remote=options.allow_remote)
        writer = self.writer = StreamWriter(options.out_dir / RESULTS_FILE,
                                            Redactor([target.secret()]))
        ramp = next((sc for sc in profile.scenarios if isinstance(sc.schedule, RampSchedule)),
                    None)
        judge = StepJudge(ramp.schedule.stop_when) if ramp is not None else None  # type: ignore[union-attr]
        self.counters = counters = Counters(judge.record if judge is not None else None)
        events = Events()
        events.request.add_listener(BulkListener(writer.on_request, writer.on_requests))
        events.request.add_listener(BulkListener(counters.on_request, counters.on_requests))
        if any(e.tls != "none" for e in target.endpoints.values()):  # version and cipher, once
            events.request.add_listener(tls_listener(writer.write))
        events.user_error.add_listener(
            lambda user_instance, exception, tb, **_: writer.write(
                user_error_record(user_instance, exception)))
        self.shape: CeilingShape | None = None
        if ramp is not None and judge is not None:
            assert isinstance(ramp.schedule, RampSchedule)
            self.shape = CeilingShape(
                ramp.schedule, judge, on_step=writer.write,
                held=lambda: self.driver.sessions().get(request_type(ramp.user), {}).get("open", 0))
        env = Environment(user_classes=self.classes, events=events, shape_class=self.shape)
        self.driver = driver_for(RunParts(profile, target, options, env, events, writer, counters,
                                          Pacers(pacers)))
        self.runner = self.driver.runner
        self.monitor = RunMonitor(target, writer, pacers=pacers.values,
                                  process="master" if worker_count(options) else "local")
        events.worker_report.add_listener(lambda client_id, data, **_: self.monitor.lag.put(
            client_id, (data.get(REPORT_KEY) or {}).get("lag")))  # a worker's own lag
        self.delivery = DeliveryHook.for_run(profile, target, writer, events,  # None: untracked
                                             options.embedded_stats)
        if options.web is not None:
            from loadtests.webui import attach_web_ui

            attach_web_ui(env, options.web[0], options.web[1], lambda: self.monitor.latest)
        self.seq = Sequence(writer, self.driver, self.runner, counters, self.monitor,
                            [sc.name for sc in profile.scenarios
                             if isinstance(sc.schedule, ArrivalSchedule)], options.on_progress)

    def _spawn(self) -> None:
        """Start the users (or the ceiling search's steps) and tick until they are all there."""
        runner, options, shape = self.runner, self.options, self.shape
        total_users = sum(c.fixed_count for c in self.classes)
        starter: gevent.Greenlet | None = None
        if shape is not None:
            runner.start_shape()
        else:  # a master's start() dispatches the whole ramp before it returns: not here,
            # where the ramp's records are flushed and its ticks written once a second
            starter = gevent.spawn(runner.start, total_users,
                                   spawn_rate=spawn_rate(self.profile), wait=False)
        gevent.sleep(0.1)
        try:
            while starter is not None and (not starter.dead or self.driver.spawning()):
                if options.stop.wait(timeout=1.0):
                    break
                self.seq.tick()
        finally:
            if starter is not None:
                starter.kill()  # stopped mid-ramp: no spawn message after the stop

    def _load(self) -> str:
        """The load phase, until the duration is over, the ceiling found, or a stop request;
        returns the end reason."""
        options, shape, seq = self.options, self.shape, self.seq
        seq.start_load(self.duration)
        deadline = seq.load_start + self.duration
        while not options.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (shape is not None and shape.finished):
                break
            options.stop.wait(timeout=min(1.0, remaining))
            seq.tick()
        return INTERRUPTED if options.stop.is_set() else COMPLETED

    def _drain(self) -> None:
        """Stop new arrivals, drain the sessions in flight, stop the users."""
        self.seq.stop_arrivals()
        self.seq.drain(0.0 if self.options.stop.is_set() else self.profile.drain)
        self.runner.stop()
        self.runner.quit()
        self.seq.stopped()

    def execute(self) -> RunResult:
        options, seq = self.options, self.seq
        reason = CRASHED
        try:
            seq.begin(self.profile, self.target, duration=self.duration,
                      workers=worker_count(options), profile_file=options.profile_file)
            if self.delivery is not None:
                self.delivery.start()
            self.driver.connect()
            self._spawn()
            reason = self._load()
            self._drain()
            if self.delivery is not None:  # wait for the copies still missing (deadline)
                seq.phase = "delivery"
                self.delivery.wait(options.stop, seq.tick)
        except KeyboardInterrupt:  # a second Ctrl-C: stop at once, still closing the stream
            reason = INTERRUPTED
            raise
        except BaseException:
            reason = CRASHED
            raise
        finally:
            extra: dict[str, Any] = {}
            try:
                if self.delivery is not None:
                    self.delivery.close()  # what is still missing is written as lost
                with contextlib.suppress(Exception):
                    self.runner.quit()
                self.driver.close()
                extra = options.extra_end() if options.extra_end is not None else {}
            finally:  # a second Ctrl-C can cut the above short: the stream still gets its end
                seq.end(reason, **extra)
        summary = finish_run(options.out_dir, self.profile.qos)
        return RunResult(options.out_dir, summary, reason)
