"""The report's tables as rows (lists of dicts): the same rows go to the HTML page and to CSV."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from typing import Any

from loadtests.analysis.stream import Request
from loadtests.report.series import failure_cause

__all__ = ["arrival_rows", "failure_rows", "qos_rows", "request_rows", "resource_rows",
           "to_csv"]


def request_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per protocol and step: count, failures, error %, rate, p50/p95/p99/max ms."""
    duration = summary.get("duration_s") or 0
    rows = []
    for r in summary.get("requests") or []:
        count = r["count"]
        rows.append({"type": r["type"], "name": r["name"], "count": count,
                     "failures": r["failures"],
                     "error_percent": round(100 * r["failures"] / count, 3) if count else 0.0,
                     "rate_per_s": round(count / duration, 3) if duration else None,
                     "p50_ms": r.get("p50_ms"), "p95_ms": r.get("p95_ms"),
                     "p99_ms": r.get("p99_ms"), "max_ms": r.get("max_ms")})
    return rows


def arrival_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"scenario": name, **a} for name, a in (summary.get("arrival") or {}).items()]


def resource_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Peaks per monitored target group, and the generator's."""
    mb = 2**20
    rows = []
    groups = dict(summary.get("target_resources") or {})
    if summary.get("generator"):
        groups["(generator)"] = summary["generator"]
    for group, p in groups.items():
        rows.append({
            "group": group, "open_fds_max": p.get("open_fds_max"),
            "fd_limit": p.get("fd_limit"), "threads_max": p.get("threads_max"),
            "processes_max": p.get("processes_max"),
            "rss_mb_max": round(p["rss_bytes_max"] / mb, 1) if p.get("rss_bytes_max") else None,
            "pss_mb_max": round(p["pss_bytes_max"] / mb, 1) if p.get("pss_bytes_max") else None,
            "cpu_percent_max": p.get("cpu_percent_max")})
    return rows


def failure_rows(requests: Sequence[Request], top: int = 50) -> list[dict[str, Any]]:
    """Failures by cause and step, most frequent first, with one example text each."""
    counts: Counter[tuple[str, str, str]] = Counter()
    example: dict[tuple[str, str, str], str] = {}
    for r in requests:
        if not r.ok:
            key = (failure_cause(r.err), r.type, r.name)
            counts[key] += 1
            example.setdefault(key, (r.err or "")[:200])
    return [{"cause": c, "type": t, "name": n, "count": k, "example": example[(c, t, n)]}
            for (c, t, n), k in counts.most_common(top)]


def qos_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    qos = summary.get("qos") or {}
    return [{"check": c.get("name"), "threshold": c.get("threshold"),
             "measured": c.get("measured"), "pass": c.get("pass"), "rule": c.get("text", "")}
            for c in qos.get("checks") or []]


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as CSV text (columns: the keys of the first row, then any others in order)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buf.getvalue()
