"""One pass over a saved results stream into the lists the analyses work from.

`collect(records)` is pure (records in, `RunRecords` out) so analyses are tested on crafted
records; `load_records(path)` is the thin I/O around it. `read_step_latencies(path)` is a lighter
pass for the QoS verdict: per step ("TYPE NAME") the sorted latencies and the failure count.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from loadtests.results import RESULTS_FILE, read_results

__all__ = ["Request", "RunRecords", "StepLatency", "collect", "load_records",
           "read_step_latencies", "results_path", "step_key", "step_latencies"]


class Request(NamedTuple):
    """A `req` record, the fields the analyses use."""

    ts: float
    type: str
    name: str
    ms: float
    ok: bool
    err: str | None
    sc: str | None


@dataclass
class RunRecords:
    """Everything in one stream, by kind, in stream order."""

    header: dict[str, Any] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    ticks: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    phases: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] = field(default_factory=dict)

    @property
    def t0(self) -> float:
        """Start of the load (the `load_start` phase), else the first tick or the header."""
        for p in self.phases:
            if p.get("name") == "load_start":
                return float(p["ts"])
        if self.ticks:
            return float(self.ticks[0]["ts"])
        return float(self.header.get("ts") or (self.requests[0].ts if self.requests else 0.0))

    @property
    def t_end(self) -> float:
        """End of the load: the end record's `load_end`, else the last record seen."""
        if self.end.get("load_end"):
            return float(self.end["load_end"])
        last = [r["ts"] for r in (self.ticks[-1:] + self.samples[-1:])]
        last += [r.ts for r in self.requests[-1:]]
        return float(max(last)) if last else self.t0


def step_key(rtype: str, name: str) -> str:
    """How a step is named in QoS settings and tables: `SMTP DATA`."""
    return f"{rtype} {name}"


def collect(records: Iterable[dict[str, Any]]) -> RunRecords:
    run = RunRecords()
    for rec in records:
        kind = rec.get("kind")
        if kind == "req":
            run.requests.append(Request(float(rec["ts"]), str(rec["type"]), str(rec["name"]),
                                        float(rec["ms"]), bool(rec["ok"]), rec.get("err"),
                                        rec.get("sc")))
        elif kind == "tick":
            run.ticks.append(rec)
        elif kind == "sample":
            run.samples.append(rec)
        elif kind == "phase":
            run.phases.append(rec)
        elif kind == "step":
            run.steps.append(rec)
        elif kind == "run":
            run.header = rec
        elif kind == "end":
            run.end = rec
    return run


def results_path(path: Path) -> Path:
    """A run folder or its results file -> the results file."""
    return path / RESULTS_FILE if path.is_dir() else path


def load_records(path: Path) -> RunRecords:
    return collect(read_results(results_path(path)))


@dataclass
class StepLatency:
    """Latencies of one step: all operations (sorted, ms) and how many of them failed; the
    latencies of the successful ones alone (sorted) for shares under a bound."""

    ms: list[float] = field(default_factory=list)
    ok_ms: list[float] = field(default_factory=list)
    failures: int = 0

    @property
    def count(self) -> int:
        return len(self.ms)

    def share_ok_under(self, bound_ms: float) -> float:
        """Percent of all operations that succeeded in less than `bound_ms`."""
        if not self.ms:
            return math.nan
        return 100.0 * bisect.bisect_left(self.ok_ms, bound_ms) / len(self.ms)


def step_latencies(requests: Iterable[dict[str, Any] | Request]) -> dict[str, StepLatency]:
    """Per step ("TYPE NAME"): sorted latencies and failures, from `req` records or Requests."""
    out: dict[str, StepLatency] = defaultdict(StepLatency)
    for r in requests:
        if isinstance(r, dict):
            if r.get("kind", "req") != "req":
                continue
            rtype, name, ms, ok = r["type"], r["name"], float(r["ms"]), bool(r["ok"])
        else:
            rtype, name, ms, ok = r.type, r.name, r.ms, r.ok
        step = out[step_key(rtype, name)]
        step.ms.append(ms)
        if ok:
            step.ok_ms.append(ms)
        else:
            step.failures += 1
    for step in out.values():
        step.ms.sort()
        step.ok_ms.sort()
    return dict(out)


def read_step_latencies(path: Path) -> dict[str, StepLatency]:
    """`step_latencies` of a run folder's (or file's) stream, read in one pass."""
    return step_latencies(read_results(results_path(path)))
