"""Samples the target and the generator once a second during a run, into the results stream.

Each `sample` record holds what loadtests.monitor measures: per monitored process tree (open
fds and their limit, threads, processes, RSS/PSS, CPU), the TCP states on the target's ports,
listen-queue overflows, memory — and the generator's own CPU, fds and ephemeral ports. Process
trees are grouped as `groups.monitor_groups` says (`imap+pop3` for Dovecot). When the target
file names an `agent`, the target's part comes from `mailswarm agent` on that host (grouped the
same way); the generator's is always local. Sampling reads /proc and blocks, so it runs in a
native thread, never on the gevent hub. The one module of the package that imports gevent (the
agent side runs without it).
"""

from __future__ import annotations

import time
from typing import Any

import gevent
from gevent.event import Event

from loadtests.monitor.agent import AgentError, fetch_agent_sample
from loadtests.monitor.groups import monitor_groups, target_ports
from loadtests.monitor.sampler import Sampler
from loadtests.stream import Sample, StreamWriter
from loadtests.targets import Target

__all__ = ["RunMonitor"]


class RunMonitor:
    def __init__(self, target: Target, writer: StreamWriter, interval: float = 1.0) -> None:
        self.groups = monitor_groups(target)
        ports = target_ports(target)
        self.agent = target.agent
        self.sampler = Sampler({} if self.agent else self.groups, ports)
        self.writer = writer
        self.interval = interval
        self._stop = Event()
        self._greenlet: gevent.Greenlet | None = None
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
            self.writer.write(Sample(
                time.time(), sample.get("targets") or {}, sample.get("system") or {},
                sample.get("generator"), sample.get("cost"), sample.get("agent_error"),
                sample.get("error")))
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        self._stop.set()
        if self._greenlet is not None:
            self._greenlet.join(timeout=5)
