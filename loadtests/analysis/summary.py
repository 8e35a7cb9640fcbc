"""`summary.json`: what a run did, computed from its results stream alone.

`summarize_records(run)` is pure (the typed records of loadtests.analysis.stream in, the summary
out); `summarize(out_dir)` reads the stream first; `write_summary` writes the file (once per run:
see loadtests.report.finish, which adds the QoS verdict before).
Fields other tools rely on: `requests` (a list of {type, name, count, failures, p50_ms, p95_ms,
p99_ms}), `arrival` per open-model scenario ({intended_per_s, due_per_s, achieved_per_s,
achieved_percent, late, dropped, interrupted, in_flight_max}), `duration_s`, `profile`,
`target`. Also `errors` (per step, the most frequent failure causes of
loadtests.analysis.failures, each with an example text), `end` (why the run ended;
"incomplete (no end record)" with `incomplete` true for a killed run's stream, summarised up to
its last record), `skipped_lines` (lines of the stream that were not records, the first ones in
`skipped`) and, from the monitor's samples, the peaks of the resources of
loadtests.monitor.resources and the cost per held connection (loadtests.analysis
.connection_cost), and `generator.saturated_from_s` with its evidence (`generator.saturation`,
loadtests.analysis.saturation) when the samples carry the generator's lag.
"""

from __future__ import annotations

import bisect
import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from loadtests.analysis.cause import attribute_cause, samples_between
from loadtests.analysis.connection_cost import connection_cost
from loadtests.analysis.delivery import delivery_summary
from loadtests.analysis.failures import failure_groups
from loadtests.analysis.saturation import generator_saturation
from loadtests.analysis.stream import RunRecords, load_records
from loadtests.analysis.workers import workers_summary
from loadtests.monitor.resources import RESOURCES, http_ports, http_sockets
from loadtests.protocols import USER_KINDS
from loadtests.stream import Header, Req, Sample, Step

__all__ = ["SUMMARY_FILE", "percentile", "summarize", "summarize_records", "write_summary"]

SUMMARY_FILE = "summary.json"


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _arrival(header: Header, ticks: dict[str, dict[str, Any]],
             phases: dict[str, dict[str, float]], load_start: float | None,
             load_end: float | None) -> dict[str, Any]:
    """Per open-model scenario: the pacer's last counters over the arrival window (from its
    `arrival_start` to its `arrival_stop` phase; without them, the load window: a killed run's
    stream ends at its last record). `intended` counts the sessions due inside the window and
    `completed` those of them that ended, so `achieved_per_s` is compared with `due_per_s`
    (the same sessions over the same window) and `achieved_percent` is completed / due;
    `intended_per_s` is the profile's rate, which a window holding bursts exceeds."""
    out = {}
    for sc in (header.profile or {}).get("scenarios", []):
        schedule = sc.get("schedule", {})
        if schedule.get("kind") != "arrival":
            continue
        name = sc["name"]
        counters = ticks.get(name, {})
        window = phases.get(name, {})
        start = window.get("arrival_start", load_start)
        stop = window.get("arrival_stop", load_end)
        seconds = max(0.0, stop - start) if start is not None and stop is not None else 0.0
        completed, due = counters.get("completed", 0), counters.get("intended", 0)
        out[name] = {
            "intended_per_s": (header.rates or {}).get(name, schedule.get("rate")),
            "due_per_s": round(due / seconds, 3) if seconds > 0 else 0.0,
            "achieved_per_s": round(completed / seconds, 3) if seconds > 0 else 0.0,
            "achieved_percent": round(100 * completed / due, 1) if due else None,
            "window_s": round(seconds, 3),
            "intended": due,
            "started": counters.get("started", 0),
            "completed": completed,
            "interrupted": counters.get("interrupted", 0),
            "late": counters.get("late", 0),
            "dropped": counters.get("dropped", 0),
            "in_flight_max": counters.get("in_flight_max", 0),
            "max_in_flight": schedule.get("max_in_flight"),
        }
    return out


class _Resources:
    """Peaks of the monitor's samples: the target's process trees, its ports, the generator."""

    def __init__(self, header: Header) -> None:
        self.targets: dict[str, dict[str, Any]] = defaultdict(dict)
        self.connections: dict[str, int] = defaultdict(int)
        self.generator: dict[str, Any] = {}
        self.ports: dict[str, int] = defaultdict(int)
        self.endpoints: dict[str, Any] = (header.target or {}).get("endpoints", {})
        self.http_ports = http_ports(header.target)
        self.http_series: list[tuple[int, int]] = []  # (open HTTP sessions, connections)
        self.points: dict[str, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        self.samples = 0

    def _peak(self, into: dict[str, Any], key: str, value: Any) -> None:
        if isinstance(value, int | float) and (key not in into or value > into[key]):
            into[key] = value

    def _keep(self, into: dict[str, Any], values: dict[str, Any], generator: bool) -> None:
        for res in RESOURCES:
            if generator and not res.generator:
                continue
            if res.is_limit:
                if values.get(res.key) is not None:
                    into[res.key] = values[res.key]
            elif res.peak:
                self._peak(into, f"{res.key}_max", values.get(res.key))

    def add(self, rec: Sample, http_sessions: int = 0) -> None:
        """One monitor sample; `http_sessions`: HTTP sessions open at the latest tick."""
        self.samples += 1
        tcp = (rec.system or {}).get("tcp") or {}
        endpoints = self.endpoints
        for name, t in (rec.targets or {}).items():
            # each port once: a STARTTLS endpoint shares its port with the plain one
            ports = {endpoints[key]["address"].rsplit(":", 1)[1]
                     for key in name.split("+") if key in endpoints}
            held = sum(((tcp.get("ports") or {}).get(port) or {}).get("local", {})
                       .get("ESTABLISHED", 0) for port in ports)
            self.connections[name] = max(self.connections[name], held)
            self.points[name].append((held, t))
            self._keep(self.targets[name], t, generator=False)
        gen = rec.generator or {}
        self._keep(self.generator, gen, generator=True)
        self._peak(self.generator, "ephemeral_ports_max",
                   (gen.get("ephemeral_ports") or {}).get("in_use"))
        listen = (rec.system or {}).get("listen") or {}
        for key in ("ListenOverflows", "ListenDrops"):
            if key in listen:
                self.ports.setdefault(f"{key}_first", listen[key])
                self.ports[f"{key}_last"] = listen[key]
        if self.http_ports:
            web = http_sockets(rec.system, self.http_ports)
            self._peak(self.ports, "http_connections_max", web.connections)
            self._peak(self.ports, "http_time_wait_client_max", web.time_wait_client)
            self._peak(self.ports, "http_time_wait_target_max", web.time_wait_target)
            self._peak(self.ports, "http_time_wait_max", web.time_wait)
            self.http_series.append((http_sessions, web.connections))

    def summary(self, sessions: dict[str, dict[str, Any]]) -> dict[str, Any]:
        if not self.samples:
            return {}
        costed = [res.key for res in RESOURCES if res.per_connection]
        for name, peaks in self.targets.items():
            peaks["connections_max"] = self.connections.get(name, 0)
            peaks.update(connection_cost(self.points[name], costed))
        out: dict[str, Any] = {
            "target_resources": dict(self.targets),
            "generator": self.generator,
            "listen_overflows": self.ports.get("ListenOverflows_last", 0)
            - self.ports.get("ListenOverflows_first", 0),
        }
        if self.http_ports:
            out["http"] = {
                "peak_sessions": (sessions.get("HTTP") or {}).get("peak", 0),
                "peak_connections": self.ports.get("http_connections_max", 0),
                "time_wait_peak": self.ports.get("http_time_wait_max", 0),
                "time_wait_peak_client": self.ports.get("http_time_wait_client_max", 0),
                "time_wait_peak_target": self.ports.get("http_time_wait_target_max", 0),
                **self._held_connections((sessions.get("HTTP") or {}).get("peak", 0)),
            }
        return out

    def _held_connections(self, peak_sessions: int) -> dict[str, Any]:
        """Connections while (nearly) all sessions were open: the steady state the seed's
        "100 connections for 3,000 sessions" describes, apart from the login storm before it."""
        held = [conns for open_, conns in self.http_series
                if peak_sessions and open_ >= 0.95 * peak_sessions]
        if not held:
            return {}
        return {"held_samples": len(held), "held_connections_max": max(held),
                "held_connections_mean": round(sum(held) / len(held), 1)}


def _ceiling(header: Header, steps: list[Step], samples: list[Sample]) -> dict[str, Any]:
    """`ceiling` and `steps` of a ceiling search (a ramp profile), from its `step` records."""
    if not steps:
        return {}
    scenario = (header.profile or {}).get("scenarios", [{}])[0]
    user = str(scenario.get("user", ""))
    kind = USER_KINDS.get(user)
    protocol = kind.request_type if kind is not None else user.upper()
    table = [{"users": s.users, "held": s.held, "requests": s.requests, "failures": s.failures,
              "p_latency_ms": s.p_latency_ms, "good": s.good, "reasons": s.reasons,
              "start": s.start, "end": s.end} for s in steps]
    bad = next((i for i, s in enumerate(steps) if not s.good), None)
    if bad is None:
        last = steps[-1]
        return {"steps": table, "ceiling": {
            "protocol": protocol, "sessions": last.held, "step": last.users,
            "cause": "not reached", "evidence": [
                f"every step up to {last.users} users was good; raise max or duration"]}}
    failed = steps[bad]
    good = steps[bad - 1] if bad > 0 else None
    cause, evidence = attribute_cause(
        good, failed,
        samples_between(samples, good.start, good.end) if good else [],
        samples_between(samples, failed.start, failed.end),
        first=steps[0], first_samples=samples_between(samples, steps[0].start, steps[0].end),
        endpoint=scenario.get("endpoint") or (kind.protocol if kind is not None else user))
    return {"steps": table, "ceiling": {
        "protocol": protocol, "sessions": good.held if good else 0,
        "step": good.users if good else 0, "failed_step": failed.users,
        "cause": cause, "evidence": [*failed.reasons, *evidence]}}


def _requests(requests: list[Req]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows per (type, name): count, failures, percentiles; and per step its most frequent
    failure causes (loadtests.analysis.failures), each with one example text (`error`)."""
    latencies: dict[tuple[str, str], list[float]] = defaultdict(list)
    failures: Counter[tuple[str, str]] = Counter()
    for r in requests:
        key = (r.type, r.name)
        latencies[key].append(r.ms)
        if not r.ok:
            failures[key] += 1
    rows = []
    for (rtype, name), values in sorted(latencies.items()):
        values.sort()
        rows.append({
            "type": rtype, "name": name, "count": len(values), "failures": failures[(rtype, name)],
            "p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95),
            "p99_ms": percentile(values, 99), "max_ms": values[-1],
        })
    shown: Counter[tuple[str, str]] = Counter()
    top = []
    for g in sorted(failure_groups(requests), key=lambda g: (g.type, g.name, -g.count)):
        if shown[(g.type, g.name)] < 5:
            shown[(g.type, g.name)] += 1
            top.append({"type": g.type, "name": g.name, "cause": g.cause, "error": g.example,
                        "count": g.count})
    return rows, top


def _with_saturation(peaks: dict[str, Any], samples: list[Sample],
                     load_start: float | None) -> dict[str, Any]:
    """The monitor's peaks, the generator's part with `saturated_from_s` (seconds after the load
    started, or None) and its evidence (loadtests.analysis.saturation) when the samples carry
    lag readings."""
    verdict = generator_saturation(samples, t0=load_start)
    if verdict.measured and "generator" in peaks:
        t0 = load_start if load_start is not None else min(s.ts for s in samples)
        peaks["generator"].update(verdict.as_dict(t0))
    return peaks


def summarize_records(run: RunRecords) -> dict[str, Any]:
    """The summary of a run's records (pure)."""
    header, end = run.header, run.end
    scenarios: dict[str, dict[str, Any]] = {}
    sessions: dict[str, dict[str, Any]] = {}
    open_samples: dict[str, list[int]] = defaultdict(list)
    for tick in run.ticks:
        scenarios.update(tick.scenarios)
        sessions.update(tick.sessions)
        if tick.phase == "running":
            for proto, counts in tick.sessions.items():
                open_samples[proto].append(counts["open"])
    phases: dict[str, dict[str, float]] = defaultdict(dict)
    for phase in run.phases:
        phases[phase.scenario][phase.name] = phase.ts
    resources = _Resources(header)
    tick_ts = [t.ts for t in run.ticks]
    for sample in run.samples:  # HTTP sessions open at the latest tick before the sample
        at = bisect.bisect_right(tick_ts, sample.ts) - 1
        http = (run.ticks[at].sessions.get("HTTP") or {}).get("open", 0) if at >= 0 else 0
        resources.add(sample, http)
    escaped = Counter(e.error or "unknown" for e in run.errors)
    requests, errors = _requests(run.requests)
    first_ts = tick_ts[0] if tick_ts else None
    load_start = phases.get("*", {}).get("load_start", first_ts)
    if end is not None and end.load_end is not None:
        load_end: float | None = end.load_end
    else:  # a killed run's stream: up to its last record
        load_end = run.t_end if (run.ticks or run.samples or run.requests) else None
    return {
        "profile": (header.profile or {}).get("name"),
        "profile_file": header.profile_file,
        "target": header.target or None,
        "started": header.ts or None,
        "duration_s": round(load_end - load_start, 3) if load_start and load_end else 0.0,
        "end": end.reason if end is not None else "incomplete (no end record)",
        "incomplete": end is None,
        "skipped_lines": len(run.skipped),
        "skipped": [{"line": n, "why": why} for n, why in run.skipped[:10]],
        "requests": requests,
        "arrival": _arrival(header, scenarios, phases, load_start, load_end),
        "sessions": {
            proto: {"peak": c["peak"], "opened": c["opened"], "dropped": c["dropped"],
                    "mean": round(sum(open_samples[proto]) / len(open_samples[proto]), 2)
                    if open_samples[proto] else 0.0}
            for proto, c in sorted(sessions.items())
        },
        "errors": errors,
        "user_errors": [{"error": text, "count": c} for text, c in escaped.most_common(10)],
        "embedded_target": end.embedded_target if end is not None else None,
        "delivery": delivery_summary(run),
        "tls": tls_summary(run),
        **_with_saturation(resources.summary(sessions), run.samples, load_start),
        **_ceiling(header, run.steps, run.samples),
        **workers_summary(run),
    }


def tls_summary(run: RunRecords) -> list[dict[str, Any]]:
    """The TLS versions and ciphers the run negotiated, per scenario (the `tls` records, one per
    (scenario, version, cipher) and process: duplicates of workers merged); [] without TLS."""
    seen = sorted({(t.sc or "", t.version or "", t.cipher or "") for t in run.tls})
    return [{"scenario": sc, "version": v, "cipher": c} for sc, v, c in seen]


def summarize(out_dir: Path) -> dict[str, Any]:
    """The summary of a run folder's stream (read in one pass)."""
    return summarize_records(load_records(out_dir))


def write_summary(out_dir: Path, summary: dict[str, Any]) -> None:
    """`OUT/summary.json`, replaced atomically."""
    tmp = out_dir / (SUMMARY_FILE + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(out_dir / SUMMARY_FILE)
