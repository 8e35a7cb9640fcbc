"""The QoS verdict of a run (SPECmail-style): for each protocol step, more than `percent` % of
operations succeed in less than `under` seconds (or `steps["TYPE NAME"]`), and failures stay
under `max_error_percent` %.

The share under a bound is read from the latency distribution of the stream (every operation,
not a percentile): an operation counts as "under" when it succeeded faster than the bound; the
denominator is every operation of the step, failed ones included. Steps named in `exclude`
(a name such as `session`, or `TYPE NAME`) are not judged. Without the stream the verdict falls
back to the summary's percentiles and says so in each check (`basis: "percentiles"`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loadtests.analysis.delivery import delivery_checks
from loadtests.analysis.stream import StepLatency, read_step_latencies, step_key

__all__ = ["evaluate_qos", "qos_settings"]

_DEFAULTS: dict[str, Any] = {"percent": 95.0, "under": 5.0, "max_error_percent": 1.0,
                             "steps": {}, "exclude": ["session"]}


def qos_settings(qos: Any) -> dict[str, Any]:
    """QosSettings (pydantic) or a dict (e.g. the `qos` of a run header) -> a plain dict with the
    defaults filled in; durations in seconds."""
    data = qos.model_dump(mode="json") if hasattr(qos, "model_dump") else dict(qos or {})
    return {**_DEFAULTS, **{k: v for k, v in data.items() if v is not None}}


def _bound_s(settings: dict[str, Any], rtype: str, name: str) -> float:
    steps = settings.get("steps") or {}
    for key in (step_key(rtype, name), name):
        if key in steps:
            return float(steps[key])
    return float(settings["under"])


def _excluded(settings: dict[str, Any], rtype: str, name: str) -> bool:
    exclude = set(settings.get("exclude") or [])
    return name in exclude or step_key(rtype, name) in exclude


def _share_from_percentiles(row: dict[str, Any], bound_ms: float) -> float:
    """A lower bound of the share under `bound_ms` from the summary's percentiles alone."""
    for q, key in ((100.0, "max_ms"), (99.0, "p99_ms"), (95.0, "p95_ms"), (50.0, "p50_ms")):
        value = row.get(key)
        if value is not None and value < bound_ms:
            return q * (1 - row.get("failures", 0) / row["count"]) if q == 100.0 else q
    return 0.0


def _fmt_s(seconds: float) -> str:
    return f"{seconds:g} s"


def evaluate_qos(summary: dict[str, Any], qos: Any, *, out_dir: Path | None = None,
                 latencies: Mapping[str, StepLatency] | None = None) -> dict[str, Any]:
    """`{pass, checks: [{name, threshold, measured, pass, ...}]}` for the steps in
    `summary["requests"]`. Give `latencies` (`step_latencies` of the run's requests, as the end
    of a run does from its one pass over the stream) or `out_dir` (the run folder, read here)
    for shares from the real distribution."""
    settings = qos_settings(qos)
    if latencies is None and out_dir is not None:
        latencies = read_step_latencies(out_dir)
    checks: list[dict[str, Any]] = []
    rows = summary.get("requests") or []
    for row in rows:
        rtype, name, count = row["type"], row["name"], row["count"]
        if not count or _excluded(settings, rtype, name):
            continue
        key = step_key(rtype, name)
        bound = _bound_s(settings, rtype, name)
        dist = (latencies or {}).get(key)
        if dist is not None and dist.count:
            share, basis = dist.share_ok_under(bound * 1000), "distribution"
        else:
            share, basis = _share_from_percentiles(row, bound * 1000), "percentiles"
        checks.append({
            "name": f"{key}: share under {_fmt_s(bound)}", "kind": "latency", "step": key,
            "threshold": settings["percent"], "measured": round(share, 3),
            "pass": share > settings["percent"], "under_s": bound, "count": count,
            # failures count against the share, however fast: say "succeeded"
            "basis": basis, "text": f"> {settings['percent']:g}% of operations succeeded "
                                    f"in under {_fmt_s(bound)}"})
        errors = 100.0 * row.get("failures", 0) / count
        checks.append({
            "name": f"{key}: error rate", "kind": "errors", "step": key,
            "threshold": settings["max_error_percent"], "measured": round(errors, 3),
            "pass": errors < settings["max_error_percent"] or errors == 0, "count": count,
            "text": f"< {settings['max_error_percent']:g}% failed"})
    checks.extend(delivery_checks(summary))
    if not rows:
        checks.append({"name": "operations recorded", "kind": "requests", "threshold": 1,
                       "measured": 0, "pass": False, "text": "at least one operation"})
    return {"pass": all(c["pass"] for c in checks), "checks": checks,
            "settings": {"percent": settings["percent"], "under_s": settings["under"],
                         "max_error_percent": settings["max_error_percent"]}}
