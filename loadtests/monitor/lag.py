"""How late a generator process is: its event loops' timer lag and its sessions' start lag.

A process running users is on time while its event loops get round fast: a greenlet on the
gevent hub sleeping `interval` wakes a little after it asked to, and an asyncio timer of the
bridge's loop fires on time. When the process has more to do than its CPU allows, every pass of
the hub takes longer and those wake-ups come late — long before the CPU figure says more than
"100%" (it reads 100% from well below the rate one process holds). `LagProbe` samples both every
`interval` (20 wake-ups a second: cheap) and, from the open-model pacers, how late each session
started against its intended time (split: handed to an idle channel at once — the generator's
own delay — or taken from the backlog after waiting for a channel). `take()` summarises the
readings since the previous call, once a second, as the `lag` of a `sample` record;
`LagBook` holds this process's probe and the readings workers ship to the master, by process.

A reading (all ms; keys absent when nothing was measured)::

    {"probes": 20, "cpu_percent": 41.0, "hub_p50_ms": 0.3, "hub_p95_ms": 0.4,
     "hub_max_ms": 1.9, "asyncio_p50_ms": 0.3, "asyncio_p95_ms": 0.6, "asyncio_max_ms": 2.0,
     "start_p95_ms": 1.1, "start_max_ms": 3.0, "starts": 812, "queued": 0,
     "handoff_p95_ms": 1.1}

`cpu_percent` is the process's own CPU time (all its threads) over the wall time since the
previous reading, per cent of one core.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable
from typing import Any

import gevent

from loadtests import bridge
from loadtests.schedule.pacing import ArrivalPacer

__all__ = ["PROBE_INTERVAL", "LagBook", "LagProbe", "merge_readings", "summarise"]

PROBE_INTERVAL = 0.05  # seconds between two wake-ups of each probe


def _percentile(ordered: list[float], q: float) -> float:
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summarise(hub: list[float], aio: list[float], starts: list[float],
              handoffs: list[float], queued: int,
              cpu_percent: float | None = None) -> dict[str, float | int]:
    """A reading from raw lags in seconds (see the module docstring)."""
    out: dict[str, float | int] = {"probes": len(hub)}
    if cpu_percent is not None:
        out["cpu_percent"] = round(cpu_percent, 1)
    for name, values in (("hub", hub), ("asyncio", aio), ("start", starts),
                         ("handoff", handoffs)):
        if values:
            ordered = sorted(values)
            if name in ("hub", "asyncio"):
                out[f"{name}_p50_ms"] = round(_percentile(ordered, 0.5) * 1000, 2)
            out[f"{name}_p95_ms"] = round(_percentile(ordered, 0.95) * 1000, 2)
            if name != "handoff":
                out[f"{name}_max_ms"] = round(ordered[-1] * 1000, 2)
    if starts:
        out["starts"] = len(starts)
        out["queued"] = queued
    return out


def merge_readings(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Two readings of one process as one (a worker's reports between two samples): counts add,
    percentiles and maxima take the larger."""
    out = dict(old)
    for key, value in new.items():
        if not isinstance(value, int | float):
            continue
        if key in ("probes", "starts", "queued"):
            out[key] = out.get(key, 0) + value
        elif key == "cpu_percent":  # two readings of about a second each
            out[key] = round((out.get(key, value) + value) / 2, 1)
        else:
            out[key] = max(out.get(key, value), value)
    return out


class LagProbe:
    """This process's timeliness; `pacers()` gives its open-model pacers (none: closed model)."""

    def __init__(self, pacers: Callable[[], Iterable[ArrivalPacer]] = tuple,
                 interval: float = PROBE_INTERVAL) -> None:
        self.pacers = pacers
        self.interval = interval
        self._hub: list[float] = []
        self._aio: list[float] = []
        self._greenlet: gevent.Greenlet | None = None
        self._stop_aio: Callable[[], None] | None = None
        self._clock = (time.process_time(), time.perf_counter())  # this process's CPU, wall

    def start(self) -> None:
        self._clock = (time.process_time(), time.perf_counter())
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._watch_hub)
        if self._stop_aio is None:
            # without an asyncio loop in this process: the hub's lag only
            with contextlib.suppress(bridge.BridgeNotStarted):
                self._stop_aio = bridge.probe_lag(self.interval, self._record_aio)

    def _watch_hub(self) -> None:
        interval, clock = self.interval, time.perf_counter
        while True:
            due = clock() + interval
            gevent.sleep(interval)
            self._hub.append(max(0.0, clock() - due))

    def _record_aio(self, lag: float) -> None:
        self._aio.append(lag)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None
        if self._stop_aio is not None:
            self._stop_aio()
            self._stop_aio = None

    def take(self) -> dict[str, float | int]:
        """The reading since the previous call."""
        hub, self._hub = self._hub, []
        aio, self._aio = self._aio, []
        starts: list[float] = []
        handoffs: list[float] = []
        queued = 0
        for pacer in self.pacers():
            direct, waited = pacer.take_lags()
            handoffs += direct
            starts += direct + waited
            queued += len(waited)
        cpu0, wall0 = self._clock
        self._clock = cpu, wall = time.process_time(), time.perf_counter()
        cpu_percent = 100 * (cpu - cpu0) / (wall - wall0) if wall > wall0 else None
        return summarise(hub, aio, starts, handoffs, queued, cpu_percent)


class LagBook:
    """The readings of every generator process for the next sample: this process's own probe
    (under `name`) and what workers shipped since (`put`)."""

    def __init__(self, probe: LagProbe, name: str = "local") -> None:
        self.probe = probe
        self.name = name
        self._remote: dict[str, dict[str, Any]] = {}

    def put(self, process: str, reading: dict[str, Any] | None) -> None:
        if reading:
            old = self._remote.get(process)
            self._remote[process] = reading if old is None else merge_readings(old, reading)

    def take(self) -> dict[str, dict[str, Any]]:
        remote, self._remote = self._remote, {}
        return {self.name: self.probe.take(), **remote}
