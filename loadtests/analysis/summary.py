"""`summary.json`: what a run did, computed from its results stream alone.

Fields other tools rely on: `requests` (a list of {type, name, count, failures, p50_ms, p95_ms,
p99_ms}), `arrival` per open-model scenario ({intended_per_s, achieved_per_s, late, dropped,
in_flight_max}), `duration_s`, `profile`, `target`. Also `errors` (the most frequent failure
texts per request) and `end` (why the run ended).
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from loadtests.analysis.cause import attribute_cause, samples_between
from loadtests.results import RESULTS_FILE, read_results

__all__ = ["SUMMARY_FILE", "percentile", "summarize", "write_summary"]

SUMMARY_FILE = "summary.json"


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of an already sorted list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _arrival(header: dict[str, Any], ticks: dict[str, dict[str, Any]],
             phases: dict[str, dict[str, float]]) -> dict[str, Any]:
    out = {}
    for sc in header.get("profile", {}).get("scenarios", []):
        schedule = sc.get("schedule", {})
        if schedule.get("kind") != "arrival":
            continue
        name = sc["name"]
        counters = ticks.get(name, {})
        window = phases.get(name, {})
        seconds = window.get("arrival_stop", 0) - window.get("arrival_start", 0)
        completed = counters.get("completed", 0)
        out[name] = {
            "intended_per_s": header.get("rates", {}).get(name, schedule.get("rate")),
            "achieved_per_s": round(completed / seconds, 3) if seconds > 0 else 0.0,
            "window_s": round(seconds, 3),
            "intended": counters.get("intended", 0),
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

    def __init__(self) -> None:
        self.targets: dict[str, dict[str, Any]] = defaultdict(dict)
        self.first: dict[str, dict[str, Any]] = {}
        self.connections: dict[str, int] = defaultdict(int)
        self.generator: dict[str, Any] = {}
        self.ports: dict[str, int] = defaultdict(int)
        self.http_ports: set[str] | None = None
        self.http_series: list[tuple[int, int]] = []  # (open HTTP sessions, connections)
        self.samples = 0

    def _peak(self, into: dict[str, Any], key: str, value: Any) -> None:
        if isinstance(value, int | float) and (key not in into or value > into[key]):
            into[key] = value

    def add(self, rec: dict[str, Any], header: dict[str, Any], http_sessions: int = 0) -> None:
        """One monitor sample; `http_sessions`: HTTP sessions open at the latest tick."""
        self.samples += 1
        tcp = (rec.get("system") or {}).get("tcp") or {}
        endpoints = (header.get("target") or {}).get("endpoints", {})
        for name, t in (rec.get("targets") or {}).items():
            self.first.setdefault(name, t)
            held = sum(((tcp.get("ports") or {}).get(endpoints[key]["address"].rsplit(":", 1)[1])
                        or {}).get("local", {}).get("ESTABLISHED", 0)
                       for key in name.split("+") if key in endpoints)
            self.connections[name] = max(self.connections[name], held)
            peaks = self.targets[name]
            for key in ("open_fds", "threads", "processes", "rss_bytes", "pss_bytes",
                        "cpu_percent", "fd_max_ratio"):
                self._peak(peaks, f"{key}_max", t.get(key))
            for key in ("fd_limit", "fd_limit_hard"):
                if t.get(key) is not None:
                    peaks[key] = t[key]
        gen = rec.get("generator") or {}
        for key in ("cpu_percent", "open_fds", "rss_bytes"):
            self._peak(self.generator, f"{key}_max", gen.get(key))
        if gen.get("fd_limit") is not None:
            self.generator["fd_limit"] = gen["fd_limit"]
        self._peak(self.generator, "ephemeral_ports_max",
                   (gen.get("ephemeral_ports") or {}).get("in_use"))
        if self.http_ports is None:
            endpoints = (header.get("target") or {}).get("endpoints", {})
            self.http_ports = {e["address"].rsplit(":", 1)[1] for e in endpoints.values()
                               if e["protocol"] == "http"}
        listen = (rec.get("system") or {}).get("listen") or {}
        for key in ("ListenOverflows", "ListenDrops"):
            if key in listen:
                self.ports.setdefault(f"{key}_first", listen[key])
                self.ports[f"{key}_last"] = listen[key]
        held = 0
        for port in self.http_ports:
            sides = (tcp.get("ports") or {}).get(port) or {}
            client = (sides.get("remote") or {})
            server = (sides.get("local") or {})
            held += client.get("ESTABLISHED", 0)
            self._peak(self.ports, "http_connections_max", client.get("ESTABLISHED", 0))
            self._peak(self.ports, "http_time_wait_client_max", client.get("TIME_WAIT", 0))
            self._peak(self.ports, "http_time_wait_target_max", server.get("TIME_WAIT", 0))
            self._peak(self.ports, "http_time_wait_max",
                       client.get("TIME_WAIT", 0) + server.get("TIME_WAIT", 0))
        if self.http_ports:
            self.http_series.append((http_sessions, held))

    def summary(self, sessions: dict[str, dict[str, Any]]) -> dict[str, Any]:
        if not self.samples:
            return {}
        for name, peaks in self.targets.items():
            held, first = self.connections.get(name, 0), self.first.get(name, {})
            peaks["connections_max"] = held
            if held >= 50:  # what each held connection costs: growth over the first sample,
                # per connection (few connections: noise of the process's own growth)
                peaks["per_connection"] = {
                    key: round((peaks[f"{key}_max"] - first[key]) / held, 1)
                    for key in ("rss_bytes", "pss_bytes", "open_fds", "processes", "threads")
                    if peaks.get(f"{key}_max") is not None and first.get(key) is not None}
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


def _ceiling(header: dict[str, Any], steps: list[dict[str, Any]],
             samples: list[dict[str, Any]]) -> dict[str, Any]:
    """`ceiling` and `steps` of a ceiling search (a ramp profile), from its `step` records."""
    if not steps:
        return {}
    scenario = (header.get("profile") or {}).get("scenarios", [{}])[0]
    protocol = {"smtp": "SMTP", "pop3": "POP3", "webuser": "HTTP"}.get(
        scenario.get("user", ""), "IMAP")
    table = [{k: s.get(k) for k in ("users", "held", "requests", "failures", "p_latency_ms",
                                    "good", "reasons", "start", "end")} for s in steps]
    bad = next((i for i, s in enumerate(steps) if not s["good"]), None)
    if bad is None:
        last = steps[-1]
        return {"steps": table, "ceiling": {
            "protocol": protocol, "sessions": last["held"], "step": last["users"],
            "cause": "not reached", "evidence": [
                f"every step up to {last['users']} users was good; raise max or duration"]}}
    failed = steps[bad]
    good = steps[bad - 1] if bad > 0 else None
    cause, evidence = attribute_cause(
        good, failed,
        samples_between(samples, good["start"], good["end"]) if good else [],
        samples_between(samples, failed["start"], failed["end"]),
        first=steps[0], first_samples=samples_between(samples, steps[0]["start"],
                                                      steps[0]["end"]),
        endpoint=scenario.get("endpoint") or {"HTTP": "http"}.get(protocol, protocol.lower()))
    return {"steps": table, "ceiling": {
        "protocol": protocol, "sessions": good["held"] if good else 0,
        "step": good["users"] if good else 0, "failed_step": failed["users"],
        "cause": cause, "evidence": [*failed["reasons"], *evidence]}}


def summarize(out_dir: Path) -> dict[str, Any]:
    header: dict[str, Any] = {}
    end: dict[str, Any] = {}
    latencies: dict[tuple[str, str], list[float]] = defaultdict(list)
    failures: Counter[tuple[str, str]] = Counter()
    errors: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    ticks: dict[str, dict[str, Any]] = {}
    sessions: dict[str, dict[str, Any]] = {}
    open_samples: dict[str, list[int]] = defaultdict(list)
    phases: dict[str, dict[str, float]] = defaultdict(dict)
    escaped: Counter[str] = Counter()
    resources = _Resources()
    samples: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    first_ts = last_ts = None
    http_open = 0
    for rec in read_results(out_dir / RESULTS_FILE):
        kind = rec.get("kind")
        if kind == "req":
            key = (rec["type"], rec["name"])
            latencies[key].append(rec["ms"])
            if not rec["ok"]:
                failures[key] += 1
                errors[key][rec.get("err") or "unknown"] += 1
        elif kind == "tick":
            ticks.update(rec.get("scenarios", {}))
            sessions.update(rec.get("sessions", {}))
            http_open = (rec.get("sessions", {}).get("HTTP") or {}).get("open", http_open)
            if rec.get("phase") == "running":
                for proto, counts in rec.get("sessions", {}).items():
                    open_samples[proto].append(counts["open"])
            first_ts = rec["ts"] if first_ts is None else first_ts
            last_ts = rec["ts"]
        elif kind == "phase":
            phases[rec["scenario"]][rec["name"]] = rec["ts"]
        elif kind == "run":
            header = rec
        elif kind == "end":
            end = rec
        elif kind == "error":
            escaped[rec.get("error", "unknown")] += 1
        elif kind == "sample":
            resources.add(rec, header, http_open)
            samples.append(rec)
        elif kind == "step":
            steps.append(rec)
    requests = []
    for (rtype, name), values in sorted(latencies.items()):
        values.sort()
        requests.append({
            "type": rtype, "name": name, "count": len(values), "failures": failures[(rtype, name)],
            "p50_ms": percentile(values, 50), "p95_ms": percentile(values, 95),
            "p99_ms": percentile(values, 99), "max_ms": values[-1],
        })
    load_start = phases.get("*", {}).get("load_start", first_ts)
    load_end = end.get("load_end", last_ts)
    return {
        "profile": header.get("profile", {}).get("name"),
        "profile_file": header.get("profile_file"),
        "target": header.get("target"),
        "started": header.get("ts"),
        "duration_s": round(load_end - load_start, 3) if load_start and load_end else 0.0,
        "end": end.get("reason", "killed (no end record)"),
        "requests": requests,
        "arrival": _arrival(header, ticks, phases),
        "sessions": {
            proto: {"peak": c["peak"], "opened": c["opened"], "dropped": c["dropped"],
                    "mean": round(sum(open_samples[proto]) / len(open_samples[proto]), 2)
                    if open_samples[proto] else 0.0}
            for proto, c in sorted(sessions.items())
        },
        "errors": [
            {"type": t, "name": n, "error": text, "count": count}
            for (t, n), counter in sorted(errors.items())
            for text, count in counter.most_common(5)
        ],
        "user_errors": [{"error": text, "count": c} for text, c in escaped.most_common(10)],
        "embedded_target": end.get("embedded_target"),
        **resources.summary(sessions),
        **_ceiling(header, steps, samples),
    }


def write_summary(out_dir: Path) -> dict[str, Any]:
    summary = summarize(out_dir)
    tmp = out_dir / (SUMMARY_FILE + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(out_dir / SUMMARY_FILE)
    return summary
