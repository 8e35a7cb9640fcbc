"""The report's tables as rows (lists of dicts): the same rows go to the HTML page and to CSV."""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from typing import Any

from loadtests.monitor.resources import resources_with
from loadtests.printable import printable
from loadtests.report.series import failure_cause
from loadtests.stream import Req

__all__ = ["arrival_rows", "failure_rows", "qos_groups", "qos_rows", "request_rows",
           "resource_rows", "to_csv"]


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
    """Peaks per monitored target group, and the generator's (the resources marked `table`,
    each with its limit when it has one)."""
    rows = []
    groups = dict(summary.get("target_resources") or {})
    if summary.get("generator"):
        groups["(generator)"] = summary["generator"]
    for group, p in groups.items():
        row: dict[str, Any] = {"group": group}
        for res in resources_with("table"):
            peak = p.get(f"{res.key}_max")
            if res.scale != 1.0:
                peak = round(peak * res.scale, 1) if peak else None
            row[f"{res.table_column}_max"] = peak
            if res.limit:
                row[res.limit] = p.get(res.limit)
        rows.append(row)
    return rows


def failure_rows(requests: Sequence[Req], top: int = 50) -> list[dict[str, Any]]:
    """Failures grouped by cause, most frequent first: the count, the steps it hit (with their
    counts) and one example text."""
    counts: Counter[str] = Counter()
    steps: dict[str, Counter[str]] = {}
    example: dict[str, str] = {}
    for r in requests:
        if not r.ok:
            cause = failure_cause(r.err, r.code)
            counts[cause] += 1
            steps.setdefault(cause, Counter())[f"{r.type} {r.name}"] += 1
            example.setdefault(cause, (r.err or "")[:200])
    return [{"cause": c, "count": k,
             "steps": ", ".join(f"{s} x{n}" for s, n in steps[c].most_common(6)),
             "example": example[c]}
            for c, k in counts.most_common(top)]


def qos_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    qos = summary.get("qos") or {}
    return [{"check": c.get("name"), "threshold": c.get("threshold"),
             "measured": c.get("measured"), "pass": c.get("pass"), "rule": c.get("text", "")}
            for c in qos.get("checks") or []]


def qos_groups(summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """`qos_rows` per protocol (the first word of each check's step), in their order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in qos_rows(summary):
        proto = str(row["check"] or "run").split(" ", 1)[0].rstrip(":")
        groups.setdefault(proto, []).append(row)
    return groups


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    return printable(value) if isinstance(value, str) else value


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Rows as CSV text (columns: the keys of the first row, then any others in order); control
    characters in text cells (servers' words) are escaped, so each row is one line."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in columns})
    return buf.getvalue()
