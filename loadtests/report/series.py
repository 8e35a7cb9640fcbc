"""Pure functions from a run's records to per-second series and table rows.

x values are seconds since the load started (`RunRecords.t0`); a request counts in the second
it started. Counters that ticks carry as running totals (intended, completed, late, dropped) are
turned into per-second rates by differencing consecutive ticks.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from loadtests.analysis.stream import Request, RunRecords
from loadtests.analysis.summary import percentile

__all__ = ["arrival_series", "failure_cause", "failure_series", "http_ports", "http_series",
           "latency_series", "rate_series", "resource_series", "sessions_series",
           "step_spans"]

Points = list[tuple[float, float | None]]


def _bucket(ts: float, t0: float) -> int:
    return math.floor(ts - t0)


def _span(requests: Sequence[Request], t0: float, t1: float) -> range:
    last = max([_bucket(t1, t0)] + [_bucket(r.ts, t0) for r in requests[-1:]])
    first = min([0] + [_bucket(r.ts, t0) for r in requests[:1]])
    return range(first, last + 1)


def rate_series(requests: Sequence[Request], t0: float, t1: float) -> dict[str, Points]:
    """Per protocol, operations per second that succeeded / failed (sessions apart:
    `SMTP sessions ok/s`); x is the start of each second."""
    ok: dict[str, Counter[int]] = defaultdict(Counter)
    for r in requests:
        label = f"{r.type} {'sessions' if r.name == 'session' else 'ops'} " \
                f"{'ok' if r.ok else 'failed'}/s"
        ok[label][_bucket(r.ts, t0)] += 1
    seconds = _span(requests, t0, t1)
    return {label: [(float(s), float(c[s])) for s in seconds] for label, c in sorted(ok.items())}


def latency_series(requests: Iterable[Request], t0: float,
                   exclude: Sequence[str] = ("session",)) -> dict[str, dict[str, Points]]:
    """Per protocol: p50/p95/p99 (ms) of the operations that started in each second."""
    values: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in requests:
        if r.name not in exclude:
            values[r.type][_bucket(r.ts, t0)].append(r.ms)
    out: dict[str, dict[str, Points]] = {}
    for proto, per_second in sorted(values.items()):
        series: dict[str, Points] = {"p50": [], "p95": [], "p99": []}
        for s in range(min(per_second), max(per_second) + 1):
            ms = sorted(per_second.get(s, []))
            for q in (50, 95, 99):
                series[f"p{q}"].append((float(s), percentile(ms, q)))
        out[proto] = series
    return out


_CODE = re.compile(r"^\s*(\d{3})\b")


def failure_cause(err: str | None) -> str:
    """A short cause for a failure text: the error kind plus the server's reply code when the
    text carries one (`SMTPResponseException 421`), else the kind alone."""
    if not err:
        return "unknown"
    kind, _, rest = err.partition(":")
    code = _CODE.match(rest)
    return f"{kind.strip()} {code.group(1)}" if code else kind.strip()[:60]


def failure_series(requests: Sequence[Request], t0: float, t1: float,
                   top: int = 6) -> dict[str, Points]:
    """Failures per second by cause; causes beyond the `top` most frequent are `other`."""
    counts: Counter[str] = Counter()
    per: dict[str, Counter[int]] = defaultdict(Counter)
    for r in requests:
        if not r.ok:
            cause = failure_cause(r.err)
            counts[cause] += 1
            per[cause][_bucket(r.ts, t0)] += 1
    if not counts:
        return {}
    keep = [c for c, _ in counts.most_common(top)]
    merged: dict[str, Counter[int]] = {c: per[c] for c in keep}
    rest = [c for c in counts if c not in keep]
    if rest:
        merged["other"] = sum((per[c] for c in rest), Counter())
    seconds = _span(requests, t0, t1)
    return {c: [(float(s), float(merged[c][s])) for s in seconds] for c in merged}


def _diff(ticks: Sequence[dict[str, Any]], t0: float, get: Any) -> Points:
    out: Points = []
    prev_t = prev_v = None
    for t in ticks:
        x, v = float(t["ts"]) - t0, get(t)
        if v is None:
            continue
        if prev_t is not None and x > prev_t:
            out.append((round(x, 3), round((v - prev_v) / (x - prev_t), 3)))
        prev_t, prev_v = x, v
    return out


def _scenario_counter(name: str, key: str) -> Any:
    return lambda tick: ((tick.get("scenarios") or {}).get(name) or {}).get(key)


def arrival_series(ticks: Sequence[dict[str, Any]], t0: float) -> dict[str, dict[str, Points]]:
    """Per open-model scenario: intended, started and completed sessions per second, late and
    dropped per second, and sessions in flight, from the pacers' running totals in the ticks."""
    names = sorted({n for t in ticks for n in (t.get("scenarios") or {})})
    out = {}
    for name in names:
        series = {f"{key}/s": _diff(ticks, t0, _scenario_counter(name, key))
                  for key in ("intended", "started", "completed", "late", "dropped")}
        in_flight = _scenario_counter(name, "in_flight")
        series["in flight"] = [(round(float(t["ts"]) - t0, 3), float(v)) for t in ticks
                               if (v := in_flight(t)) is not None]
        out[name] = series
    return out


def sessions_series(ticks: Sequence[dict[str, Any]], t0: float) -> dict[str, Points]:
    """Users running and open sessions per protocol, as sampled by each tick."""
    out: dict[str, Points] = {"users": [(round(float(t["ts"]) - t0, 3), float(t.get("users", 0)))
                                        for t in ticks]}
    for proto in sorted({p for t in ticks for p in (t.get("sessions") or {})}):
        out[f"{proto} sessions"] = [
            (round(float(t["ts"]) - t0, 3),
             float(((t.get("sessions") or {}).get(proto) or {}).get("open", 0)))
            for t in ticks]
    return out


_RESOURCES = {"open_fds": ("open fds", 1.0), "threads": ("threads", 1.0),
              "processes": ("processes", 1.0), "rss_bytes": ("RSS MB", 1 / 2**20),
              "pss_bytes": ("PSS MB", 1 / 2**20)}


def resource_series(samples: Sequence[dict[str, Any]], t0: float
                    ) -> tuple[dict[str, dict[str, Points]], dict[str, dict[str, float]]]:
    """Per resource (`open fds`, `threads`, `processes`, `RSS MB`, `PSS MB`): one line per
    monitored group of the target; and the limits per resource and group (the fd limit)."""
    series: dict[str, dict[str, Points]] = defaultdict(lambda: defaultdict(list))
    limits: dict[str, dict[str, float]] = defaultdict(dict)
    for s in samples:
        x = round(float(s["ts"]) - t0, 3)
        for group, t in sorted((s.get("targets") or {}).items()):
            for key, (label, scale) in _RESOURCES.items():
                value = t.get(key)
                series[label][group].append((x, None if value is None else value * scale))
            if t.get("fd_limit"):
                limits["open fds"][group] = float(t["fd_limit"])
    return ({label: dict(groups) for label, groups in series.items()
             if any(v is not None for pts in groups.values() for _, v in pts)},
            dict(limits))


def http_ports(header: dict[str, Any]) -> list[str]:
    endpoints = (header.get("target") or {}).get("endpoints") or {}
    return sorted({str(e["address"]).rsplit(":", 1)[1] for e in endpoints.values()
                   if e.get("protocol") == "http" and ":" in str(e.get("address", ""))})


def http_series(ticks: Sequence[dict[str, Any]], samples: Sequence[dict[str, Any]], t0: float,
                ports: Sequence[str]) -> dict[str, Points]:
    """WebUser runs: HTTP sessions open (ticks) vs connections ESTABLISHED to the web ports and
    TIME_WAIT sockets on them (samples, both sides)."""
    if not ports or not any(((t.get("sessions") or {}).get("HTTP") or {}).get("peak")
                            for t in ticks):
        return {}  # not a WebUser run (the embedded target serves HTTP in every run)
    out: dict[str, Points] = {
        "HTTP sessions": [(round(float(t["ts"]) - t0, 3),
                           float(((t.get("sessions") or {}).get("HTTP") or {}).get("open", 0)))
                          for t in ticks],
        "connections": [], "TIME_WAIT": []}
    for s in samples:
        tcp = ((s.get("system") or {}).get("tcp") or {}).get("ports") or {}
        est = tw = 0
        for port in ports:
            sides = tcp.get(port) or {}
            est += (sides.get("remote") or {}).get("ESTABLISHED", 0)
            tw += sum((sides.get(side) or {}).get("TIME_WAIT", 0) for side in ("local", "remote"))
        x = round(float(s["ts"]) - t0, 3)
        out["connections"].append((x, float(est)))
        out["TIME_WAIT"].append((x, float(tw)))
    return out


def _step_number(rec: dict[str, Any], default: int) -> Any:
    for key in ("step", "index", "number"):
        if rec.get(key) is not None:
            return rec[key]
    return default


def step_spans(run: RunRecords) -> list[dict[str, Any]]:
    """Ramp steps (`step` records: users, held, start, end, good) as rows: step, users, held,
    good, start/end (s since the load started), and the operations (sessions apart) that
    started inside: count, failures, error %, p50/p95/p99 ms. Empty for runs without steps.
    A record without `start`/`end` starts at its `ts` and ends where the next one starts."""
    if not run.steps:
        return []
    t0 = run.t0
    starts = [float(s.get("start") or s["ts"]) for s in run.steps]
    ends = [float(s["end"]) if s.get("end") else nxt
            for s, nxt in zip(run.steps, [*starts[1:], run.t_end], strict=True)]
    requests = [r for r in run.requests if r.name != "session"]
    rows = []
    for i, (rec, a, b) in enumerate(zip(run.steps, starts, ends, strict=True)):
        inside = [r for r in requests if a <= r.ts < b]
        ms = sorted(r.ms for r in inside)
        fails = sum(1 for r in inside if not r.ok)
        rows.append({"step": _step_number(rec, i + 1),
                     "users": rec.get("users", rec.get("sessions")), "held": rec.get("held"),
                     "good": rec.get("good"), "start_s": round(a - t0, 3),
                     "end_s": round(b - t0, 3), "count": len(ms), "failures": fails,
                     "error_percent": round(100 * fails / len(ms), 3) if ms else 0.0,
                     "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95),
                     "p99_ms": percentile(ms, 99)})
    return rows
