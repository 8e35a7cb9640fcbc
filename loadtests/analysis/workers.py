"""`summary.json`'s `workers` field of a distributed run, from its `worker` records and ticks.

`{expected, joined, lost: [...], not_sent: {scenario: n}}` (+ `late: [...]` when any): the
worker processes the load was split into, those that joined, each one lost (which, when, why,
its part of the load, what it had reported), per open-model scenario the sessions of the lost
workers' parts whose outcome was never reported (the tick counters' `lost`), and each worker
that joined after the split (no share of the load). Absent for a run in one process.
`format_workers` is the console's line for it.
"""

from __future__ import annotations

from typing import Any

from loadtests.analysis.stream import RunRecords

__all__ = ["format_workers", "workers_summary"]


def workers_summary(run: RunRecords) -> dict[str, Any]:
    """`{"workers": {...}}` of a distributed run; `{}` otherwise."""
    if not run.header.workers and not run.workers:
        return {}
    t0 = run.t0
    lost = [{"worker": w.worker, "index": w.index, "of": w.of, "host": w.host, "pid": w.pid,
             "at_s": round(w.ts - t0, 3), "cause": w.cause, "users": w.users,
             "rate_share": round(1 / w.of, 6) if w.of else None, "sent": w.sent or {}}
            for w in run.workers if w.event == "lost"]
    late = [{"worker": w.worker, "host": w.host, "pid": w.pid, "at_s": round(w.ts - t0, 3),
             "cause": w.cause} for w in run.workers if w.event == "late"]
    last = run.ticks[-1].scenarios if run.ticks else {}
    out: dict[str, Any] = {
        "expected": run.header.workers,
        "joined": sum(w.event == "joined" for w in run.workers),
        "lost": lost,
        "not_sent": {name: c["lost"] for name, c in last.items() if c.get("lost")},
    }
    if late:
        out["late"] = late
    return {"workers": out}


def format_workers(summary: dict[str, Any]) -> list[str]:
    """Console lines for the `workers` field (none for a run in one process)."""
    workers = summary.get("workers")
    if not workers:
        return []
    lines = ["", f"workers: {workers['joined']} of {workers['expected']} joined, "
                 f"{len(workers['lost']) or 'none'} lost"]
    for w in workers["lost"]:
        lines.append(f"  WORKER LOST: {w['worker']} (part {w['index'] + 1} of {w['of']}, "
                     f"{w['host']} pid {w['pid']}) at {w['at_s']} s: {w['cause']}")
    for w in workers.get("late") or []:
        lines.append(f"  LATE WORKER: {w['worker']} at {w['at_s']} s got no share of the load: "
                     f"{w['cause']}")
    for name, count in workers["not_sent"].items():
        lines.append(f"  {name}: {count} sessions of the lost workers' part never reported "
                     "(not sent, or in flight when lost)")
    return lines
