"""mailswarm's measurements in a plain `locust` run: `import loadtests.locust.plugin` in a
locustfile adds

- the results stream (`--mailswarm-out DIR`): every request event, a tick a second (users,
  open sessions, pacer counters), the schedule's phases, and at `test_stop` the summary,
  `report.html` and the CSV tables (loadtests.report.finish; `mailswarm report DIR` again);
- the target monitor (loadtests.monitor.run) on the endpoints of the locustfile's classes;
- the open-model pacer of each class with `arrival_rate` (started when the spawn completes,
  stopped and drained, at most `--mailswarm-drain` s, when the test stops);
- `CeilingShape`: mailswarm's ceiling search as the locustfile's LoadTestShape;

locally and with `--master`/`--worker`: workers ship their records to the master as
`mailswarm run --workers` does (loadtests.locust.shipping), each taking every N-th session of
each open-model schedule; the master merges their reports and records a worker that leaves or
falls silent before its final report as lost, and one that joins after the split as late, with
no part of the load (loadtests.run.master). Locust's own stats, charts, `--csv` and `--html`
see the same request events.

The steps and records are `mailswarm run`'s own (loadtests.run.core.Sequence), called from
Locust's events; the end record's reason too: `completed` (-t ran out, or the shape ended the
test), `interrupted` (Ctrl-C, SIGTERM, the web UI's stop; no drain then).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any, ClassVar

import gevent
import locust.runners
from locust import events
from locust.env import Environment
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

from loadtests.locust.shipping import LocustfileLoad
from loadtests.locust.users import LocustfileUser, arrival_rng, configure_all
from loadtests.monitor.run import RunMonitor
from loadtests.profiles import (
    ArrivalSchedule,
    Profile,
    QosSettings,
    RampSchedule,
    load_profile,
)
from loadtests.run.core import COMPLETED, INTERRUPTED, Counters, Sequence
from loadtests.run.local import LocalLoad
from loadtests.run.master import MasterLoad
from loadtests.run.messages import FINAL, REPORT_KEY
from loadtests.run.pacers import Pacers
from loadtests.run.workers import WorkerBook, WorkerState
from loadtests.schedule import ceiling
from loadtests.schedule.pacing import ArrivalPacer
from loadtests.schedule.sessions import gauge
from loadtests.stream import (
    RESULTS_FILE,
    Record,
    StreamWriter,
    tls_listener,
    user_error_record,
)
from loadtests.stream.redact import Redactor
from loadtests.targets import Endpoint, Target
from loadtests.units import MAX_DURATION
from loadtests.users.requests import BulkListener

__all__ = ["CeilingShape", "LocustRun", "profile_of", "settings", "target_of"]

FOREVER = MAX_DURATION  # the pacers' (and the header's) duration when the run has no -t
RUN_TIME_SLACK = 0.5  # s: a test stopped this close to its -t ran its time (completed)


class CeilingShape(ceiling.CeilingShape):
    """The ceiling search for a locustfile: subclass it and set `ramp` (a profile's ramp
    schedule: `start`, `step`, `max`, `hold`, `spawn_rate`, `stop_when`)::

        class Ceiling(CeilingShape):
            ramp = {"start": 10, "step": 10, "max": 200, "hold": 10}

    Each finished step goes to the stream as a `step` record; the run stops at the first bad
    one. Needs this plugin (it judges the requests the plugin sees)."""

    abstract = True
    ramp: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        schedule = RampSchedule.model_validate({"kind": "ramp", **self.ramp})
        self.sink: Callable[[Record], None] = lambda record: None
        self.open_sessions: Callable[[], int] = lambda: 0
        super().__init__(schedule, ceiling.StepJudge(schedule.stop_when),
                         on_step=lambda record: self.sink(record),
                         held=lambda: self.open_sessions())


def _add_arguments(parser: Any) -> None:
    group = parser.add_argument_group("mailswarm measurements")
    group.add_argument("--mailswarm-out", metavar="DIR", default=None,
                       help="write mailswarm's results stream, summary and report here")
    group.add_argument("--mailswarm-drain", metavar="SECONDS", type=float, default=10.0,
                       help="when the test stops, wait this long at most for open-model "
                            "sessions in flight (10)")


_settings: dict[str, Any] = {}


def settings(*, qos: dict[str, Any] | None = None) -> None:
    """Run settings a locustfile gives the plugin: `qos` (a profile's `qos:` section; default:
    the `--mailswarm-profile`'s, else mailswarm's defaults)."""
    if qos is not None:
        _settings["qos"] = QosSettings.model_validate(qos)


def profile_of(classes: list[type[LocustfileUser]], name: str, duration: float,
               profile_file: str | None = None, drain: float = 0.0) -> Profile:
    """The profile a locustfile amounts to: one scenario per configured class, the QoS of
    `settings()`, else of the profile file, else the defaults."""
    qos = _settings.get("qos")
    if qos is None and profile_file:
        qos = load_profile(Path(profile_file)).qos
    return Profile(name=name, duration=duration or FOREVER, drain=drain,
                   scenarios=[cls.scenario for cls in classes], qos=qos or QosSettings())


def target_of(classes: list[type[LocustfileUser]]) -> Target:
    """One target holding every class's endpoints (the header's and the monitor's)."""
    endpoints: dict[str, Endpoint] = {}
    for cls in classes:
        for key, ep in cls.target.endpoints.items():
            if ep in endpoints.values():
                continue
            endpoints[key if key not in endpoints else f"{key}-{cls.__name__}"] = ep
    first = classes[0].target
    return Target(name="locustfile", domain=first.domain, users=first.users,
                  agent=first.agent, endpoints=endpoints)


class _Discard:
    """The stream when no --mailswarm-out is given."""

    def write(self, record: Record) -> None:
        pass

    def write_ok_req(self, *_: Any) -> None:
        pass

    def on_request(self, **_: Any) -> None:
        pass

    def on_requests(self, _: Any) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class LocustRun:
    """The plugin in a local or master process: loadtests.run.core's `Sequence` (the steps and
    records `mailswarm run` takes) driven by Locust's events, over this process's pacers
    (`LocalLoad`) or the workers' (`MasterLoad`), then the end-of-run pass."""

    def __init__(self, environment: Environment, runner: Any) -> None:
        self.env = environment
        self.runner = runner
        options = environment.parsed_options
        assert options is not None, "Locust parses its options before init"
        self.locustfile: str = options.locustfile or "locustfile"
        self.out = Path(options.mailswarm_out) if getattr(options, "mailswarm_out", None) else None
        self.drain = float(getattr(options, "mailswarm_drain", 10.0))
        self.run_time = float(getattr(options, "run_time", 0) or 0)
        self.classes = configure_all(environment)
        self.pacers = Pacers({c.scenario.name: c.pacer for c in self.classes
                              if c.pacer is not None})
        self.distributed = isinstance(runner, MasterRunner)
        self.shape = environment.shape_class if isinstance(
            environment.shape_class, CeilingShape) else None
        self.writer: StreamWriter | _Discard = _Discard()
        self.counters = Counters(self.shape.judge.record if self.shape is not None else None)
        self.load: LocalLoad | MasterLoad = self._new_load()  # each test gets its own
        self.seq: Sequence | None = None
        self.profile: Profile | None = None
        self.ticker: gevent.Greenlet | None = None
        self.load_started = False
        self.running = False  # between test_start and test_stop
        self.interrupted = False  # Locust is quitting (Ctrl-C, SIGTERM) while the test runs
        self.tests = 0
        self.tls_seen: Callable[..., None] = tls_listener(lambda record: None)
        ev = environment.events
        if self.distributed:
            # every worker walks the same arrival schedules, taking its own part of them
            options.mailswarm_arrival_seed = secrets.token_hex(8)
            ev.worker_report.add_listener(
                lambda client_id, data, **_: self._book().take(client_id, data.get(REPORT_KEY)))
            runner.register_message(
                FINAL, lambda environment, msg, **_: self._book().take(msg.node_id, msg.data,
                                                                        True))
            ev.worker_connect.add_listener(self.on_worker_connect)
        else:
            ev.request.add_listener(BulkListener(self._on_request, self._on_requests))
            # the TLS versions and ciphers seen, once each per test, as `tls` records
            ev.request.add_listener(lambda **kw: self.tls_seen(**kw))
            ev.user_error.add_listener(lambda user_instance, exception, tb, **_: self.writer.write(
                user_error_record(user_instance, exception)))
        ev.test_start.add_listener(self.on_test_start)
        ev.spawning_complete.add_listener(self.on_spawned)
        ev.test_stopping.add_listener(self.on_stopping)
        ev.test_stop.add_listener(self.on_test_stop)
        ev.quitting.add_listener(self.on_quitting)
        if self.shape is not None:
            self.shape.sink = lambda record: self.writer.write(record)
            self.shape.open_sessions = lambda: sum(
                c.get("open", 0) for c in self.load.sessions().values())

    def _new_load(self) -> LocalLoad | MasterLoad:
        """This process's pacers, or (master) a book of the workers writing to the stream."""
        if not self.distributed:
            return LocalLoad(self.pacers)
        return MasterLoad(self.runner, WorkerBook(self.writer, self.counters),  # type: ignore[arg-type]
                          self._schedule)

    def _book(self) -> WorkerBook:
        assert isinstance(self.load, MasterLoad), "a master's"
        return self.load.book

    def _on_request(self, **kw: Any) -> None:
        self._on_requests((kw,))

    def _on_requests(self, requests: Collection[dict[str, Any]]) -> None:
        self.writer.on_requests(requests)
        self.counters.on_requests(requests)

    def _ticking(self, seq: Sequence) -> None:
        while True:
            gevent.sleep(1.0)
            seq.tick()

    def _out_dir(self) -> Path | None:
        """The run's folder; a second test of the same process (web UI) gets its own."""
        if self.out is None:
            return None
        return self.out if self.tests == 1 else self.out.with_name(f"{self.out.name}-{self.tests}")

    # -- the workers (master) --------------------------------------------------------------
    def _join_workers(self, load: MasterLoad) -> None:
        """This test's workers, each given its part of every open-model schedule (the workers
        read `mailswarm_parts` from the options of the master's spawn message)."""
        nodes = sorted((n for n in self.runner.clients.values() if n.state != STATE_MISSING),
                       key=lambda n: n.id)
        options = self.env.parsed_options
        assert options is not None, "Locust parses its options before init"
        options.mailswarm_parts = {n.id: [i, len(nodes)] for i, n in enumerate(nodes)}
        for index, node in enumerate(nodes):
            load.book.join(WorkerState(node.id, index, len(nodes)))
        load.watch()

    def _schedule(self, worker: WorkerState) -> dict[str, Iterator[float]]:
        """The offsets of `worker`'s part of every open-model schedule."""
        options = self.env.parsed_options
        return {c.scenario.name: ArrivalPacer(
            c.scenario.schedule, arrival_rng(c, c.scenario.name, options),
            (worker.index, worker.of)).offsets()
            for c in self.classes if isinstance(c.scenario.schedule, ArrivalSchedule)}

    def on_worker_connect(self, client_id: str, **_: Any) -> None:
        """A worker joining once this test's load is split gets no part of it: recorded."""
        if self.running and isinstance(self.load, MasterLoad):
            self.load.late(client_id)

    # -- the test's events -----------------------------------------------------------------
    def on_test_start(self, environment: Environment, **_: Any) -> None:
        self.tests += 1
        out = self._out_dir()
        gauge.reset()
        self.load_started, self.running, self.interrupted = False, True, False
        profile = self.profile = profile_of(
            self.classes, Path(self.locustfile).stem, self.run_time,
            getattr(environment.parsed_options, "mailswarm_profile", None), self.drain)
        target = target_of(self.classes)
        monitor = None
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            self.writer = StreamWriter(out / RESULTS_FILE,
                                       Redactor(c.target.secret() for c in self.classes))
            monitor = RunMonitor(target, self.writer, pacers=self.pacers.by_name.values,
                                 process="master" if self.distributed else "local")
        self.load = self._new_load()
        self.tls_seen = tls_listener(lambda record: self.writer.write(record))
        self.seq = seq = Sequence(self.writer, self.load, self.runner, self.counters, monitor,
                                  self.arrival_scenarios())
        seq.begin(profile, target, duration=self.run_time,
                  workers=self.runner.worker_count if self.distributed else 0,
                  profile_file=self.locustfile)
        if isinstance(self.load, MasterLoad):
            self._join_workers(self.load)
        self.ticker = gevent.spawn(self._ticking, seq)

    def on_spawned(self, user_count: int = 0, **_: Any) -> None:
        """The users are there: the load starts (the open-model arrivals with it)."""
        if self.load_started or self.seq is None:
            return  # a ceiling shape's later steps
        self.load_started = True
        elapsed = time.monotonic() - self.seq.start
        self.seq.start_load(max(0.0, self.run_time - elapsed) or FOREVER)

    def arrival_scenarios(self) -> list[str]:
        return [c.scenario.name for c in self.classes
                if isinstance(c.scenario.schedule, ArrivalSchedule)]

    def on_quitting(self, **_: Any) -> None:
        """Locust quits (Ctrl-C, SIGTERM) while the test runs: it ends interrupted."""
        if self.running:
            self.interrupted = True

    def on_stopping(self, environment: Environment, **_: Any) -> None:
        """No new arrivals; sessions in flight drain (workers: until each sent its final
        report), as long as `--mailswarm-drain` — not at all once interrupted."""
        if self.seq is None:
            return
        self.seq.stop_arrivals()
        self.seq.drain(0.0 if self.interrupted else self.drain)

    def end_reason(self) -> str:
        """Why the test ended, in `mailswarm run`'s words (loadtests.run.core.END_REASONS):
        completed when its time (-t) ran out or its shape ended it, interrupted when Locust
        quit early (Ctrl-C, SIGTERM) or it was stopped before its end (the web UI's stop)."""
        if self.interrupted:
            return INTERRUPTED
        if self.shape is not None:
            return COMPLETED if self.shape.finished else INTERRUPTED
        if self.env.shape_class is not None:
            return COMPLETED  # a shape of the locustfile's own ends the test by itself
        seq = self.seq
        ran = time.monotonic() - seq.start if seq is not None else 0.0
        return COMPLETED if self.run_time and ran >= self.run_time - RUN_TIME_SLACK \
            else INTERRUPTED

    def on_test_stop(self, environment: Environment, **_: Any) -> None:
        """The users are stopped: the last tick, the end record, the summary and report."""
        seq = self.seq
        if seq is None:
            return
        if self.ticker is not None:
            self.ticker.kill()
        try:
            seq.stopped()
            if isinstance(self.load, MasterLoad):
                self.load.close()
        finally:
            seq.end(self.end_reason())
            self.running, self.seq = False, None
        writer, self.writer = self.writer, _Discard()
        if isinstance(self.load, MasterLoad):
            self.load.book.writer = self.writer  # type: ignore[assignment]
        out = self._out_dir()
        if out is not None and isinstance(writer, StreamWriter):
            from loadtests.console import format_summary
            from loadtests.report.finish import finish_run

            summary = finish_run(out, self.profile.qos if self.profile is not None else None)
            print(format_summary(summary), flush=True)
            print(f"\nmailswarm results: {out / RESULTS_FILE}\nreport: {out / 'report.html'}",
                  flush=True)


_run: LocustRun | None = None


@events.init_command_line_parser.add_listener
def _on_parser(parser: Any, **_: Any) -> None:
    _add_arguments(parser)


@events.init.add_listener
def _on_init(environment: Environment, runner: Any = None, **_: Any) -> None:
    global _run
    if isinstance(runner, WorkerRunner):
        locust.runners.WORKER_REPORT_INTERVAL = 1.0  # ship records every second, not every 3
        LocustfileLoad(environment).ship(environment.events, runner)
    elif runner is not None:
        _run = LocustRun(environment, runner)
