"""Pure functions from a run's typed records to per-second series and table rows.

x values are seconds since the load started (`RunRecords.t0`); a request counts in the second
it started. Counters that ticks carry as running totals (intended, completed, late, dropped) are
turned into per-second rates by differencing consecutive ticks. The resources charted are those
of loadtests.monitor.resources marked `chart`.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from loadtests.analysis.failures import normalise_cause
from loadtests.analysis.stream import RunRecords
from loadtests.analysis.summary import percentile
from loadtests.monitor.resources import http_sockets, resources_with
from loadtests.stream import Delivery, Queue, Req, Sample, Sent, Tick

__all__ = [
    "PERCENTILES",
    "arrival_series",
    "delivery_queue_series",
    "failing_resource",
    "failure_cause",
    "failure_series",
    "http_series",
    "latency_series",
    "percentile_label",
    "rate_series",
    "resource_series",
    "sessions_series",
    "step_percentile_curves",
    "step_spans",
]

Points = list[tuple[float, float | None]]


def _bucket(ts: float, t0: float) -> int:
    return math.floor(ts - t0)


def _span(requests: Sequence[Req], t0: float, t1: float) -> range:
    last = max([_bucket(t1, t0)] + [_bucket(r.ts, t0) for r in requests[-1:]])
    first = min([0] + [_bucket(r.ts, t0) for r in requests[:1]])
    return range(first, last + 1)


def rate_series(requests: Sequence[Req], t0: float, t1: float) -> dict[str, Points]:
    """Per protocol, operations per second that succeeded / failed (sessions apart:
    `SMTP sessions ok/s`); x is the start of each second."""
    ok: dict[str, Counter[int]] = defaultdict(Counter)
    for r in requests:
        label = f"{r.type} {'sessions' if r.name == 'session' else 'ops'} " \
                f"{'ok' if r.ok else 'failed'}/s"
        ok[label][_bucket(r.ts, t0)] += 1
    seconds = _span(requests, t0, t1)
    return {label: [(float(s), float(c[s])) for s in seconds] for label, c in sorted(ok.items())}


def latency_series(requests: Iterable[Req], t0: float,
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


def failure_cause(err: str | None, code: int | str | None = None) -> str:
    """A failure's cause as the summary names it (loadtests.analysis.failures)."""
    return normalise_cause(err, code)


def failure_series(requests: Sequence[Req], t0: float, t1: float,
                   top: int = 6) -> dict[str, Points]:
    """Failures per second by cause; causes beyond the `top` most frequent are `other`."""
    counts: Counter[str] = Counter()
    per: dict[str, Counter[int]] = defaultdict(Counter)
    for r in requests:
        if not r.ok:
            cause = failure_cause(r.err, r.code)
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


def _diff(ticks: Sequence[Tick], t0: float, get: Callable[[Tick], Any]) -> Points:
    out: Points = []
    prev_t = prev_v = None
    for t in ticks:
        x, v = float(t.ts) - t0, get(t)
        if v is None:
            continue
        if prev_t is not None and x > prev_t:
            out.append((round(x, 3), round((v - prev_v) / (x - prev_t), 3)))
        prev_t, prev_v = x, v
    return out


def _scenario_counter(name: str, key: str) -> Callable[[Tick], Any]:
    return lambda tick: (tick.scenarios.get(name) or {}).get(key)


def arrival_series(ticks: Sequence[Tick], t0: float) -> dict[str, dict[str, Points]]:
    """Per open-model scenario: intended, started and completed sessions per second, late and
    dropped per second, and sessions in flight, from the pacers' running totals in the ticks."""
    names = sorted({n for t in ticks for n in t.scenarios})
    out = {}
    for name in names:
        series = {f"{key}/s": _diff(ticks, t0, _scenario_counter(name, key))
                  for key in ("intended", "started", "completed", "late", "dropped")}
        in_flight = _scenario_counter(name, "in_flight")
        series["in flight"] = [(round(float(t.ts) - t0, 3), float(v)) for t in ticks
                               if (v := in_flight(t)) is not None]
        out[name] = series
    return out


def _open(tick: Tick, proto: str) -> float:
    return float((tick.sessions.get(proto) or {}).get("open", 0))


def sessions_series(ticks: Sequence[Tick], t0: float) -> dict[str, Points]:
    """Users running and open sessions per protocol, as sampled by each tick."""
    out: dict[str, Points] = {"users": [(round(float(t.ts) - t0, 3), float(t.users))
                                        for t in ticks]}
    for proto in sorted({p for t in ticks for p in t.sessions}):
        out[f"{proto} sessions"] = [(round(float(t.ts) - t0, 3), _open(t, proto))
                                    for t in ticks]
    return out


def resource_series(samples: Sequence[Sample], t0: float
                    ) -> tuple[dict[str, dict[str, Points]], dict[str, dict[str, float]]]:
    """Per charted resource (`open fds`, `threads`, `processes`, `RSS MB`, `PSS MB`): one line
    per monitored group of the target; and the limits per resource and group (the fd limit)."""
    series: dict[str, dict[str, Points]] = defaultdict(lambda: defaultdict(list))
    limits: dict[str, dict[str, float]] = defaultdict(dict)
    charted = resources_with("chart")
    for s in samples:
        x = round(float(s.ts) - t0, 3)
        for group, t in sorted((s.targets or {}).items()):
            for res in charted:
                value = t.get(res.key)
                series[res.label][group].append((x, None if value is None else value * res.scale))
                if res.limit and t.get(res.limit):
                    limits[res.label][group] = float(t[res.limit])
    return ({label: dict(groups) for label, groups in series.items()
             if any(v is not None for pts in groups.values() for _, v in pts)},
            dict(limits))


def http_series(ticks: Sequence[Tick], samples: Sequence[Sample], t0: float,
                ports: Sequence[str]) -> dict[str, Points]:
    """WebUser runs: HTTP sessions open (ticks) vs connections ESTABLISHED to the web ports and
    TIME_WAIT sockets on them (samples, both sides; `http_ports` of the run's target)."""
    if not ports or not any((t.sessions.get("HTTP") or {}).get("peak") for t in ticks):
        return {}  # not a WebUser run (the embedded target serves HTTP in every run)
    out: dict[str, Points] = {
        "HTTP sessions": [(round(float(t.ts) - t0, 3), _open(t, "HTTP")) for t in ticks],
        "connections": [], "TIME_WAIT": []}
    for s in samples:
        web = http_sockets(s.system, ports)
        x = round(float(s.ts) - t0, 3)
        out["connections"].append((x, float(web.connections)))
        out["TIME_WAIT"].append((x, float(web.time_wait)))
    return out


def step_spans(run: RunRecords) -> list[dict[str, Any]]:
    """Ramp steps (`step` records: users, held, start, end, good) as rows: step (its number
    in the ramp), users, held, good, start/end (s since the load started), and the operations
    (sessions apart) that started inside: count, failures, error %, p50/p95/p99 ms. Empty for
    runs without steps."""
    if not run.steps:
        return []
    t0 = run.t0
    requests = [r for r in run.requests if r.name != "session"]
    rows = []
    for number, rec in enumerate(run.steps, 1):
        a, b = float(rec.start), float(rec.end)
        inside = [r for r in requests if a <= r.ts < b]
        ms = sorted(r.ms for r in inside)
        fails = sum(1 for r in inside if not r.ok)
        rows.append({"step": number, "users": rec.users, "held": rec.held,
                     "good": rec.good, "start_s": round(a - t0, 3),
                     "end_s": round(b - t0, 3), "count": len(ms), "failures": fails,
                     "error_percent": round(100 * fails / len(ms), 3) if ms else 0.0,
                     "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95),
                     "p99_ms": percentile(ms, 99)})
    return rows


PERCENTILES = (0.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0)
"""The points of a percentile curve (HDR style: evenly spaced, the tail spread out)."""


def percentile_label(q: float) -> str:
    return {0.0: "min", 100.0: "max"}.get(q, f"p{q:g}")


def step_percentile_curves(run: RunRecords) -> dict[str, list[tuple[str, float | None]]]:
    """Per ramp step (`step N: U users`): the latency (ms) of its operations (sessions apart)
    at each of `PERCENTILES`, x being the percentile's label. Empty without steps."""
    out: dict[str, list[tuple[str, float | None]]] = {}
    requests = [r for r in run.requests if r.name != "session"]
    for number, rec in enumerate(run.steps, 1):
        ms = sorted(r.ms for r in requests if rec.start <= r.ts < rec.end)
        if ms:
            label = f"step {number}: {rec.users} users{'' if rec.good else ' (failed)'}"
            out[label] = [(percentile_label(q), percentile(ms, q)) for q in PERCENTILES]
    return out


_CAUSE_RESOURCE = (  # (text in a ceiling's cause, key in a group's sample entry, label)
    ("thread limit", "threads", "threads"),
    ("process limit", "processes", "processes"),
    ("open files", "open_fds", "open fds"),
    ("CPU", "cpu_percent", "CPU %"),
)


def failing_resource(samples: Sequence[Sample], cause: str, t0: float
                     ) -> tuple[str, str, Points] | None:
    """The resource a ceiling's `cause` names (`target G: thread limit` -> G's threads,
    `generator: ...` -> the generator's, `memory exhausted` -> available memory, a listen queue
    overflow -> ListenOverflows) per sample, as (series label, axis label, points); None when the
    cause names none (a server reply)."""
    group, _, what = cause.rpartition(": ")
    group = group.removeprefix("target ")

    def pick(get: Callable[[Sample], Any]) -> Points:
        return [(round(float(s.ts) - t0, 3), get(s)) for s in samples]

    if "memory" in cause:
        return "available memory MiB", "MiB available", pick(lambda s: _nested(s.system, "memory",
                                                              "available_bytes", scale=1 / 2**20))
    if "listen queue" in cause:
        return "ListenOverflows", "overflows", pick(
            lambda s: _nested(s.system, "listen", "ListenOverflows"))
    found = next(((key, label) for needle, key, label in _CAUSE_RESOURCE if needle in what),
                 None)
    if found is None:
        return None
    key, label = found
    if group == "generator":
        return f"generator {label}", label, pick(lambda s: _nested(s.generator, key))
    return f"{group} {label}", label, pick(lambda s: _nested(s.targets, group, key))


def _nested(node: Any, *keys: str, scale: float = 1.0) -> float | None:
    for key in keys:
        node = node.get(key) if isinstance(node, dict) else None
    return float(node) * scale if isinstance(node, int | float) else None


def delivery_queue_series(sent: Sequence[Sent], deliveries: Sequence[Delivery],
                          queues: Sequence[Queue], t0: float) -> dict[str, dict[str, Points]]:
    """Queue size next to delivery latency and the arrival rate (delivery tracking), as
    {"queue": {"<source> queue": size per sample (all its queues)}, "latency": {"p50 s",
    "p95 s", "max s": of the copies delivered intact, by the second they were SENT (so a queue
    of size Q at t lines up with the wait of what joined it at t)}, "arrival": {"accepted/s":
    messages the server accepted per second}}. Empty when the run has none of these records."""
    if not (deliveries or queues):
        return {}
    queue: dict[str, Points] = defaultdict(list)
    for q in queues:
        queue[f"{q.source} queue"].append((round(float(q.ts) - t0, 3),
                                           float(sum(q.counts.values()))))
    waits: dict[int, list[float]] = defaultdict(list)
    for d in deliveries:
        if d.outcome == "delivered" and d.latency_s is not None:
            waits[_bucket(d.ts - d.latency_s, t0)].append(d.latency_s)
    accepted = Counter(_bucket(r.ts, t0) for r in sent)
    seconds = sorted({*waits, *accepted})
    span = range(seconds[0], seconds[-1] + 1) if seconds else range(0)
    latency: dict[str, Points] = {"p50 s": [], "p95 s": [], "max s": []}
    for second in span:
        got = sorted(waits.get(second, []))
        latency["p50 s"].append((float(second), percentile(got, 50)))
        latency["p95 s"].append((float(second), percentile(got, 95)))
        latency["max s"].append((float(second), got[-1] if got else None))
    return {"queue": dict(queue), "latency": latency,
            "arrival": {"accepted/s": [(float(s), float(accepted[s])) for s in span]}}
