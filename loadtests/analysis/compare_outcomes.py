"""What went wrong in two runs, side by side: failures, lost sessions, QoS verdicts.

These rows of `mailswarm compare` are always there, whatever the other metrics show:
- per step and over all requests, the error rate (failed / all, in %), with the failure counts
  ("0 → 1,500 failures");
- per open-model scenario (from the summaries' `arrival`): sessions completed, dropped,
  interrupted and late, each in % of the sessions due, and the achieved rate (a single value);
- the QoS verdicts (PASS / FAIL), naming B's failed checks.
Rates are proportions, so their intervals are the difference of two proportions in percentage
points (loadtests.analysis.bootstrap.proportion_diff_interval); a change is significant when
its interval excludes 0 and it reaches `MIN_POINTS` percentage points (the QoS's default error
budget is 1 %). A QoS verdict that differs is significant. A metric found in one run only is a
row that says so ("present only in B"), never dropped.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from loadtests.analysis.bootstrap import proportion_diff_interval
from loadtests.analysis.qos import evaluate_qos
from loadtests.analysis.stream import RunRecords, step_key, step_latencies

__all__ = ["MIN_POINTS", "arrival_rows", "failure_rows", "fmt_number", "one_sided_row",
           "qos_row"]

MIN_POINTS = 1.0
"""Smallest change of a rate, in percentage points, called significant."""

Run = tuple[RunRecords, dict[str, Any]]


def fmt_number(value: Any) -> str:
    """A number for a row's text: counts with thousands separators, others to 3 digits."""
    if value is None:
        return "-"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()
                                  and abs(value) >= 1000):
        return f"{int(value):,}"
    return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"


def one_sided_row(group: str, name: str, a: Any, b: Any, method: str) -> dict[str, Any]:
    """A metric that only one run has: shown, with its value, never judged."""
    side, value = ("B", b) if a is None else ("A", a)
    return {"group": group, "metric": name, "a": a, "b": b, "diff": None,
            "diff_percent": None, "interval": None, "interval_percent": None,
            "method": method, "significant": None, "only_in": side,
            "text": f"{name}: present only in {side} ({fmt_number(value)})"}


def _rate_row(group: str, name: str, ka: int, na: int, kb: int, nb: int,
              what: str) -> dict[str, Any]:
    """A proportion (in %) of two runs: `ka` of `na` in A against `kb` of `nb` in B."""
    a, b = 100 * ka / na, 100 * kb / nb
    iv = proportion_diff_interval(ka, na, kb, nb)
    assert iv is not None  # na, nb > 0
    significant = iv.excludes_zero and abs(iv.diff) >= MIN_POINTS
    detail = f"{ka:,} → {kb:,} {what} of {na:,} / {nb:,}"
    return {"group": group, "metric": name, "a": round(a, 3), "b": round(b, 3),
            "diff": round(b - a, 3), "diff_percent": None,
            "interval": [round(iv.low, 3), round(iv.high, 3)], "interval_percent": None,
            "unit": "points", "counts": [ka, kb], "of": [na, nb], "detail": detail,
            "method": "difference of proportions (Newcombe), percentage points",
            "significant": significant,
            "text": f"{name} {a:.1f}% → {b:.1f}% ({detail}), {b - a:+.1f} points "
                    f"[{iv.low:+.1f}, {iv.high:+.1f}]"}


def failure_rows(a: RunRecords, b: RunRecords) -> list[dict[str, Any]]:
    """Error rate of every step either run has, and over all requests."""
    def counts(run: RunRecords) -> tuple[Counter[str], Counter[str]]:
        total, failed = Counter[str](), Counter[str]()
        for r in run.requests:
            key = step_key(r.type, r.name)
            total[key] += 1
            failed[key] += not r.ok
        return total, failed

    (ta, fa), (tb, fb) = counts(a), counts(b)
    rows = []
    for key in sorted(set(ta) | set(tb)):
        name = f"{key} error %"
        if not ta[key] or not tb[key]:
            rows.append(one_sided_row("failures", name, 100 * fa[key] / ta[key] if ta[key]
                                      else None, 100 * fb[key] / tb[key] if tb[key] else None,
                                      "present in one run only"))
            rows[-1]["text"] += f", {fa[key] + fb[key]:,} failures"
            continue
        rows.append(_rate_row("failures", name, fa[key], ta[key], fb[key], tb[key],
                              "failures"))
    if ta and tb:
        rows.append(_rate_row("failures", "all requests error %", sum(fa.values()),
                              sum(ta.values()), sum(fb.values()), sum(tb.values()),
                              "failures"))
    return rows


_LOST = (("completed", "achieved %"), ("dropped", "dropped %"),
         ("interrupted", "interrupted %"), ("late", "late %"))


def arrival_rows(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Per open-model scenario of either summary: completed, dropped, interrupted and late
    sessions in % of those due, and the achieved rate."""
    arr_a, arr_b = a.get("arrival") or {}, b.get("arrival") or {}
    rows = []
    for scenario in sorted(set(arr_a) | set(arr_b)):
        sa, sb = arr_a.get(scenario), arr_b.get(scenario)
        prefix = f"arrival {scenario}"
        if sa is None or sb is None:
            rows.append(one_sided_row("arrival", f"{prefix} achieved/s",
                                      (sa or {}).get("achieved_per_s"),
                                      (sb or {}).get("achieved_per_s"),
                                      "present in one run only"))
            continue
        na, nb = int(sa.get("intended") or 0), int(sb.get("intended") or 0)
        rate_a, rate_b = sa.get("achieved_per_s"), sb.get("achieved_per_s")
        rows.append({"group": "arrival", "metric": f"{prefix} achieved/s", "a": rate_a,
                     "b": rate_b, "diff": None if rate_a is None or rate_b is None
                     else rate_b - rate_a, "diff_percent": None, "interval": None,
                     "interval_percent": None, "method": "single value",
                     "significant": None,
                     "text": f"{prefix} achieved/s: {fmt_number(rate_a)} → "
                             f"{fmt_number(rate_b)} (intended {sa.get('intended_per_s')} → "
                             f"{sb.get('intended_per_s')})"})
        if na <= 0 or nb <= 0:
            continue
        for key, label in _LOST:
            rows.append(_rate_row("arrival", f"{prefix} {label}", int(sa.get(key) or 0), na,
                                  int(sb.get(key) or 0), nb, key))
    return rows


def _qos(run: Run) -> dict[str, Any]:
    """The summary's QoS verdict, or the one its stream gives under its header's settings."""
    records, summary = run
    if isinstance(summary.get("qos"), dict) and "pass" in summary["qos"]:
        return summary["qos"]
    return evaluate_qos(summary, (records.header.profile or {}).get("qos") or {},
                        latencies=step_latencies(records.requests))


def qos_row(a: Run, b: Run) -> dict[str, Any]:
    """PASS / FAIL of each run; significant when they differ."""
    qa, qb = _qos(a), _qos(b)
    va, vb = ("PASS" if q.get("pass") else "FAIL" for q in (qa, qb))
    failed = [c.get("name") or "" for c in qb.get("checks") or [] if not c.get("pass")]
    was = {c.get("name") for c in qa.get("checks") or [] if not c.get("pass")}
    new = [name for name in failed if name not in was]
    text = f"QoS verdict: {va} → {vb}" if va != vb else f"QoS verdict: {va} in both"
    if new:
        text += f" (B fails {'; '.join(new[:5])}{'; ...' if len(new) > 5 else ''})"
    return {"group": "qos", "metric": "QoS verdict", "a": va, "b": vb, "diff": None,
            "diff_percent": None, "interval": None, "interval_percent": None,
            "method": "verdicts", "significant": va != vb, "text": text,
            "failed_checks": [sorted(was), failed]}
