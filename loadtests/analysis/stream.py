"""One pass over a saved results stream into the typed lists the analyses work from.

`collect(records)` is pure (typed records in, `RunRecords` out) so analyses are tested on
crafted records; `load_records(path)` is the thin I/O around it (loadtests.stream's reader).
`step_latencies` gives, per step ("TYPE NAME"), the sorted latencies and the failure count the
QoS verdict reads.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.stream import (
    RESULTS_FILE,
    Delivery,
    End,
    Header,
    Phase,
    Queue,
    Record,
    Req,
    Sample,
    Sent,
    Step,
    Tick,
    TlsSeen,
    Tracking,
    UserError,
    WorkerEvent,
    read_stream,
)

__all__ = ["RunRecords", "StepLatency", "collect", "load_records", "read_step_latencies",
           "results_path", "step_key", "step_latencies"]


@dataclass
class RunRecords:
    """Everything in one stream, by kind, in stream order."""

    header: Header = field(default_factory=Header)
    requests: list[Req] = field(default_factory=list)
    ticks: list[Tick] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    phases: list[Phase] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    errors: list[UserError] = field(default_factory=list)
    workers: list[WorkerEvent] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    queues: list[Queue] = field(default_factory=list)
    trackings: list[Tracking] = field(default_factory=list)
    tls: list[TlsSeen] = field(default_factory=list)
    end: End | None = None
    skipped: list[tuple[int, str]] = field(default_factory=list)
    """Lines of the stream that were not records: (line number, why)."""

    @property
    def t0(self) -> float:
        """Start of the load (the `load_start` phase), else the first tick or the header."""
        for p in self.phases:
            if p.name == "load_start":
                return float(p.ts)
        if self.ticks:
            return float(self.ticks[0].ts)
        return float(self.header.ts or (self.requests[0].ts if self.requests else 0.0))

    @property
    def t_end(self) -> float:
        """End of the load: the end record's `load_end`, else the last record seen."""
        if self.end is not None and self.end.load_end:
            return float(self.end.load_end)
        last = ([t.ts for t in self.ticks[-1:]] + [s.ts for s in self.samples[-1:]]
                + [r.ts for r in self.requests[-1:]])
        return float(max(last)) if last else self.t0


def step_key(rtype: str, name: str) -> str:
    """How a step is named in QoS settings and tables: `SMTP DATA`."""
    return f"{rtype} {name}"


def collect(records: Iterable[Record]) -> RunRecords:
    run = RunRecords()
    lists: dict[type, list[Any]] = {Req: run.requests, Tick: run.ticks,
                               Sample: run.samples, Phase: run.phases, Step: run.steps,
                               UserError: run.errors, WorkerEvent: run.workers, Sent: run.sent,
                               Delivery: run.deliveries, Queue: run.queues,
                               Tracking: run.trackings, TlsSeen: run.tls}
    for rec in records:
        into = lists.get(type(rec))
        if into is not None:
            into.append(rec)
        elif type(rec) is Header:
            run.header = rec
        elif type(rec) is End:
            run.end = rec
    return run


def results_path(path: Path) -> Path:
    """A run folder or its results file -> the results file."""
    return path / RESULTS_FILE if path.is_dir() else path


def load_records(path: Path) -> RunRecords:
    """The records of a run folder (or results file), in one pass; the lines that were not
    records in `skipped`."""
    reader = read_stream(results_path(path))
    run = collect(reader)
    run.skipped = list(getattr(reader, "skipped", []))
    return run


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


def step_latencies(requests: Iterable[Req]) -> dict[str, StepLatency]:
    """Per step ("TYPE NAME"): sorted latencies and failures of the requests."""
    out: dict[str, StepLatency] = defaultdict(StepLatency)
    for r in requests:
        step = out[step_key(r.type, r.name)]
        step.ms.append(r.ms)
        if r.ok:
            step.ok_ms.append(r.ms)
        else:
            step.failures += 1
    for step in out.values():
        step.ms.sort()
        step.ok_ms.sort()
    return dict(out)


def read_step_latencies(path: Path) -> dict[str, StepLatency]:
    """`step_latencies` of a run folder's (or file's) stream, read in one pass."""
    return step_latencies(r for r in read_stream(results_path(path)) if type(r) is Req)
