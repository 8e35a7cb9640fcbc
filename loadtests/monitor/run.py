"""Samples the target and the generator once a second during a run, into the results stream.

Each `sample` record holds what loadtests.monitor measures: per monitored process tree (open
fds and their limit, threads, processes, RSS/PSS, CPU), the TCP states on the target's ports,
listen-queue overflows, memory — and the generator's own CPU, fds and ephemeral ports, and in
`lag` how late each generator process was (loadtests.monitor.lag: event-loop timer lag and
session start lag, the generator's saturation signal; workers' readings are `put` into
`self.lag` as their reports arrive). Process trees are grouped as `groups.monitor_groups` says
(`imap+pop3` for Dovecot). When the target file names an `agent`, the target's part comes from
`mailswarm agent` on that host (grouped the same way); the generator's is always local.
Sampling reads /proc and blocks, so it runs in a native thread, never on the gevent hub. With
`lag`, the modules of the package that import gevent (the agent side runs without them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import gevent
from gevent.event import Event

from loadtests.analysis.saturation import LOOP_LAG_MS, SaturationWatch, loop_lag
from loadtests.monitor.agent import AgentError, fetch_agent_sample
from loadtests.monitor.groups import monitor_groups, target_ports
from loadtests.monitor.lag import LagBook, LagProbe
from loadtests.monitor.sampler import Sampler
from loadtests.schedule.pacing import ArrivalPacer
from loadtests.stream import Sample, StreamWriter
from loadtests.targets import Target

__all__ = ["RunMonitor"]

log = logging.getLogger(__name__)


class RunMonitor:
    def __init__(self, target: Target, writer: StreamWriter, interval: float = 1.0, *,
                 pacers: Callable[[], Iterable[ArrivalPacer]] = tuple,
                 process: str = "local") -> None:
        """`pacers`: this process's open-model pacers; `process`: its name in `lag`."""
        self.groups = monitor_groups(target)
        ports = target_ports(target)
        self.agent = target.agent
        self.sampler = Sampler({} if self.agent else self.groups, ports)
        self.writer = writer
        self.interval = interval
        self._stop = Event()
        self._greenlet: gevent.Greenlet | None = None
        self.lag = LagBook(LagProbe(pacers), process)
        self.saturation = SaturationWatch()  # said on stderr as soon as it is seen
        self.latest: dict[str, Any] = {}  # the newest sample, for live views

    def describe(self) -> dict[str, Any]:
        """For the run header: what is monitored, and which endpoints each group serves."""
        return {"groups": {name: [r.model_dump(mode="json", exclude_none=True) for r in refs]
                           for name, refs in self.groups.items()},
                "agent": self.agent, "ports": self.sampler.ports}

    def _sample(self) -> dict[str, Any]:
        sample = self.sampler.sample()
        if self.agent:
            try:
                remote = fetch_agent_sample(self.agent)
            except AgentError as exc:
                sample["agent_error"] = str(exc)
            else:
                sample["targets"] = remote.get("targets", {})
                sample["system"] = remote.get("system", sample.get("system"))
        return sample

    def _loop(self) -> None:
        pool = gevent.get_hub().threadpool
        next_at = time.monotonic()
        while not self._stop.is_set():
            try:
                sample = pool.spawn(self._sample).get()
                assert sample is not None  # get() blocks until _sample returns its dict
            except Exception as exc:  # a monitor problem must not end the run
                sample = {"error": f"{type(exc).__name__}: {exc}"}
            sample.pop("ts", None)
            self.latest = sample
            lag = self.lag.take()
            self.writer.write(Sample(
                time.time(), sample.get("targets") or {}, sample.get("system") or {},
                sample.get("generator"), sample.get("cost"), sample.get("agent_error"),
                sample.get("error"), lag))
            self._watch(lag)
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _watch(self, lag: dict[str, dict[str, Any]]) -> None:
        """Say on stderr, as it happens, when a process running users becomes saturated (the
        rule of loadtests.analysis.saturation, which the summary applies to the whole run)."""
        process = self.saturation.add(lag)
        if process is not None:
            reading = lag[process]
            log.warning("GENERATOR SATURATED: %s's event loop is running behind (its timers "
                        "%.1f ms late, median, on time < %g ms; sessions handed to an idle "
                        "channel %s ms late, p95): from now on the figures are the "
                        "generator's limit, not the target's", process,
                        loop_lag(reading) or 0.0, LOOP_LAG_MS, reading.get("handoff_p95_ms", "-"))

    def start(self) -> None:
        self.lag.probe.start()
        self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        self._stop.set()
        if self._greenlet is not None:
            self._greenlet.join(timeout=5)
        self.lag.probe.stop()
