"""Was the generator the limit? Decided from its own lateness, not from its CPU percent (pure).

Input: the monitor's `sample` records, whose `lag` holds per generator process and second how
late its event loops' timers fired (hub and asyncio, median / p95 / max) and how late its
sessions started (loadtests.monitor.lag). A process is *behind* in a second when

- the median lateness of its hub timers is at least `LOOP_LAG_MS`: every event waits about that
  long before the process gets to it, so each of a session's round trips and its start are
  delayed by the generator itself; or
- the median lateness of its asyncio timers is at least `ASYNCIO_STALL_MS`: the asyncio loop
  (the clients' side) stalled on its own; or
- the sessions it handed straight to an idle channel started `late_after` or more behind their
  intended time (p95): nothing but the generator delayed those; or
- its sessions started `late_after` or more behind (p95) while the process itself was busy at
  least `CPU_BUSY` per cent of a core: it does not keep its schedule, and its own work is why.
  (Busy alone says nothing: a process at 100% still takes more load by doing more per pass.)

The generator is *saturated* from the first second of a process running users that starts
`NEEDED` behind seconds out of `WINDOW` (3 of 4: a single second's dip inside a saturated
stretch does not reset it, a single late second outside one does not count). The master of a
distributed run runs no users: its lateness delays records, not sessions.

Why these thresholds (measured on 2 cores shared with other work, open-model SMTP, 200
sessions in flight, timers every 50 ms; per-second medians of the hub's timers): a process
that holds its rate stays at 0.1 to 0.7 ms (100/s and 1,000/s against smtp-sink); one that
cannot hold 12,500/s against smtp-sink with a core to itself (2,600-2,800/s achieved, its CPU at
84-97%, channels full, starts 1 s late) sits at 3.3 to 5.9 ms from its first second on — and
at 5 to 25 ms when other processes take its core as well (then it holds 600-1,800/s); one held
back by a slower target (the embedded target at 1,000, 2,000 and 5,000/s: channels full,
starts 1 s late, the generator at 30-72% CPU) stays at 0.6 to 2.5 ms, with single seconds up
to 4.8 ms but never two in four at 3 ms or more; at 100/s while the machine's load average
was 150-290 (other work), single seconds up to 2.9 ms. The median stays small even when
saturated: an event loop that never idles handles everything ready in each pass, so a timer
waits about one pass (a few ms with 200 sessions in flight; more sessions in flight, longer
passes) while the work queues elsewhere (socket buffers, the channel backlog). The p95 and
maximum are no use apart: single wake-ups 40-150 ms late happen in every case (the GC, the
monitor thread, other processes on the cores). The asyncio timers' median is no better a
signal here (1.8-3.6 ms saturated, up to 3.8 ms held back by the target: an idle asyncio loop
parks on a libev timer and wakes a little late), so only a stall of its own counts. Start lag
alone cannot tell: it grows to `max_wait` whenever channels are full, whoever is slow, so only
the starts handed to an idle channel count, or all starts when the process is busy. A
saturated process on a core of its own can run short passes: at 98-102% CPU, 3,170/s achieved
of 12,500/s, its median fell to 1.9-2.9 ms for seconds — there its late starts at full CPU
say it (`CPU_BUSY` 90%: saturated processes ran at 84-102%, the target-limited ones at 30-72%);
and single seconds dip, hence 3 of 4 rather than 3 in a row.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loadtests.stream import Sample

__all__ = ["ASYNCIO_STALL_MS", "CPU_BUSY", "LOOP_LAG_MS", "NEEDED", "NOT_LOADING", "WINDOW",
           "Saturation", "SaturationWatch", "behind", "format_saturation", "generator_saturation",
           "loop_lag"]

LOOP_LAG_MS = 3.0  # median hub timer lag of a second, ms: at or above it the process is behind
ASYNCIO_STALL_MS = 10.0  # median asyncio timer lag of a second, ms: the asyncio loop stalled
CPU_BUSY = 90.0  # per cent of a core: with late starts, the process's own work is why
WINDOW, NEEDED = 4, 3  # saturated from the first of NEEDED behind seconds in WINDOW seconds
LATE_AFTER_MS = 50.0  # a session's start this far behind is late (the schedules' default)
NOT_LOADING = ("master",)  # processes that run no users


@dataclass(frozen=True)
class Saturation:
    """The verdict: `from_ts` (epoch seconds of the sample that first showed it) or None, the
    process it was seen in, and the evidence in words."""

    from_ts: float | None = None
    process: str | None = None
    evidence: list[str] = field(default_factory=list)
    behind_seconds: int = 0  # over the whole input, every process
    measured: bool = False  # any sample carried lag readings at all
    worst_ms: float | None = None  # the highest median timer lag of a second, any process

    def as_dict(self, t0: float) -> dict[str, Any]:
        """`saturated_from_s` (seconds after `t0`, or None) and the evidence."""
        return {"saturated_from_s": None if self.from_ts is None
                else round(max(0.0, self.from_ts - t0), 1),
                "saturation": {"process": self.process, "evidence": self.evidence,
                               "behind_seconds": self.behind_seconds,
                               "loop_lag_ms_worst_second": self.worst_ms,
                               "loop_lag_ms_threshold": LOOP_LAG_MS,
                               "behind_needed": f"{NEEDED} of {WINDOW} s"}}


def loop_lag(reading: dict[str, Any]) -> float | None:
    """A reading's median hub timer lag, ms (None: no hub timer fired that second)."""
    value = reading.get("hub_p50_ms")
    return value if isinstance(value, int | float) else None


def behind(reading: dict[str, Any], *, loop_ms: float = LOOP_LAG_MS,
           late_after_ms: float = LATE_AFTER_MS) -> bool:
    """One process's second (a `lag` reading) shows it behind (see the module docstring)."""
    def at_least(key: str, limit: float) -> bool:
        value = reading.get(key)
        return isinstance(value, int | float) and value >= limit

    return (at_least("hub_p50_ms", loop_ms) or at_least("asyncio_p50_ms", ASYNCIO_STALL_MS)
            or at_least("handoff_p95_ms", late_after_ms)
            or (at_least("cpu_percent", CPU_BUSY) and at_least("start_p95_ms", late_after_ms)))


def _range(values: list[float]) -> str:
    return f"{min(values):.1f} to {max(values):.1f}" if values else "-"


def _evidence(process: str, run: list[tuple[float, dict[str, Any]]], t0: float) -> list[str]:
    late = [r for _, r in run if behind(r)]
    hub = [lag for r in late if (lag := loop_lag(r)) is not None]
    aio = [v for r in late if isinstance(v := r.get("asyncio_p50_ms"), int | float)]
    out = [f"{process}: its event loop ran behind in {len(late)} of {len(run)} s from t = "
           f"{round(max(0.0, run[0][0] - t0), 1):g} s: timers fired a median {_range(hub)} ms "
           f"late (asyncio {_range(aio)} ms; under {LOOP_LAG_MS:g} ms in a process that holds "
           "its rate)"]
    cpu = [v for r in late if isinstance(v := r.get("cpu_percent"), int | float)]
    if cpu:
        out.append(f"{process}: its own CPU {_range(cpu)}% of a core in those seconds")
    starts = [r for _, r in run if r.get("starts")]
    if starts:
        total = sum(r["starts"] for r in starts)
        queued = sum(r.get("queued", 0) for r in starts)
        worst = max(r.get("start_p95_ms", 0) for r in starts)
        out.append(f"{process}: sessions started up to {worst:,.0f} ms late (p95 of a second); "
                   f"{queued:,} of {total:,} waited for a free channel")
    return out


def _first(flags: list[bool]) -> int | None:
    """The first behind second that starts NEEDED behind seconds out of WINDOW."""
    return next((i for i, flag in enumerate(flags)
                 if flag and sum(flags[i:i + WINDOW]) >= NEEDED), None)


def _stretch(flags: list[bool], first: int) -> int:
    """The end (exclusive) of the saturated stretch from `first`: its last behind second before
    two seconds in a row that are not."""
    last, gap = first, 0
    for i in range(first, len(flags)):
        if flags[i]:
            last, gap = i, 0
        else:
            gap += 1
            if gap >= 2:
                break
    return last + 1


def generator_saturation(samples: Sequence[Sample], *, t0: float | None = None,
                         loop_ms: float = LOOP_LAG_MS,
                         late_after_ms: float = LATE_AFTER_MS) -> Saturation:
    """The earliest saturated stretch of any process running users; `t0` (epoch seconds,
    default: the first sample) is where the evidence counts time from."""
    by_process: dict[str, list[tuple[float, dict[str, Any]]]] = defaultdict(list)
    for sample in sorted(samples, key=lambda s: s.ts):
        for process, reading in (sample.lag or {}).items():
            if process not in NOT_LOADING and isinstance(reading, dict):
                by_process[process].append((sample.ts, reading))
    if not by_process:
        return Saturation()
    start = t0 if t0 is not None else min(s.ts for s in samples)
    found: tuple[float, str, list[tuple[float, dict[str, Any]]]] | None = None
    total = 0
    worst = max((lag for readings in by_process.values() for _, r in readings
                 if (lag := loop_lag(r)) is not None), default=None)
    for process, readings in sorted(by_process.items()):
        flags = [behind(r, loop_ms=loop_ms, late_after_ms=late_after_ms) for _, r in readings]
        total += sum(flags)
        first = _first(flags)
        if first is not None and (found is None or readings[first][0] < found[0]):
            found = (readings[first][0], process, readings[first:_stretch(flags, first)])
    if found is None:
        return Saturation(behind_seconds=total, measured=True, worst_ms=worst)
    ts, process, run = found
    return Saturation(ts, process, _evidence(process, run, start), total, True, worst)


class SaturationWatch:
    """The same rule, live: `add` each second's `lag` of a sample; it returns the process that
    has just become saturated (once per run), else None."""

    def __init__(self) -> None:
        self._flags: dict[str, deque[bool]] = defaultdict(lambda: deque(maxlen=WINDOW))
        self.saturated: str | None = None

    def add(self, lag: dict[str, dict[str, Any]]) -> str | None:
        for process, reading in lag.items():
            if process in NOT_LOADING or self.saturated is not None:
                continue
            flags = self._flags[process]
            flags.append(behind(reading))
            if sum(flags) >= NEEDED:
                self.saturated = process
                return process
        return None


def format_saturation(summary: dict[str, Any]) -> list[str]:
    """The console's line on the generator's timeliness (none for a stream without lag)."""
    gen = summary.get("generator") or {}
    if "saturated_from_s" not in gen:
        return []
    sat = gen.get("saturation") or {}
    if gen["saturated_from_s"] is not None:
        return ["", f"generator: SATURATED from t = {gen['saturated_from_s']:g} s",
                *(f"  {e}" for e in sat.get("evidence") or [])]
    worst = sat.get("loop_lag_ms_worst_second")
    return ["", "generator: kept up (its event loop's median timer lag "
            + (f"at most {worst:g} ms a second" if worst is not None else "not measured")
            + f"; saturated means >= {LOOP_LAG_MS:g} ms in {NEEDED} of {WINDOW} s)"]
