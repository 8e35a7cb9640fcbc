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
    first_ts = last_ts = None
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
    }


def write_summary(out_dir: Path) -> dict[str, Any]:
    summary = summarize(out_dir)
    tmp = out_dir / (SUMMARY_FILE + ".tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(out_dir / SUMMARY_FILE)
    return summary
