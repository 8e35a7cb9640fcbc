"""The HTML page of `mailswarm compare`: the comparison table and the two runs overlaid (A solid,
B dashed, each chart's x axis aligned on the start of the load)."""

from __future__ import annotations

from html import escape
from typing import Any

from loadtests.analysis.stream import RunRecords
from loadtests.report.page import badge, html_table, page, section
from loadtests.report.series import latency_series, rate_series, resource_series, sessions_series
from loadtests.report.svg import PALETTE, Chart, Series, render_chart

__all__ = ["overlay_charts", "render_compare"]

Run = tuple[RunRecords, dict[str, Any]]


def _overlay(title: str, y_label: str, a: dict[str, Any], b: dict[str, Any]) -> Chart:
    series = []
    for i, label in enumerate(sorted(set(a) | set(b))):
        color = PALETTE[i % len(PALETTE)]
        if label in a:
            series.append(Series(f"A {label}", a[label], color))
        if label in b:
            series.append(Series(f"B {label}", b[label], color, dashed=True))
    return Chart(title, y_label, series)


def overlay_charts(a: Run, b: Run) -> list[Chart]:
    """Throughput, sessions, latency percentiles and target resources of both runs."""
    ra, rb = a[0], b[0]
    charts = [
        _overlay("Achieved operations per second", "per second",
                 rate_series(ra.requests, ra.t0, ra.t_end), rate_series(rb.requests, rb.t0,
                                                                        rb.t_end)),
        _overlay("Users and concurrent sessions", "count", sessions_series(ra.ticks, ra.t0),
                 sessions_series(rb.ticks, rb.t0)),
    ]
    la, lb = latency_series(ra.requests, ra.t0), latency_series(rb.requests, rb.t0)
    for proto in sorted(set(la) | set(lb)):
        charts.append(_overlay(f"{proto} latency per second", "ms", la.get(proto, {}),
                               lb.get(proto, {})))
    (sa, _), (sb, _) = resource_series(ra.samples, ra.t0), resource_series(rb.samples, rb.t0)
    for label in sorted(set(sa) | set(sb)):
        charts.append(_overlay(f"Target {label}", label, sa.get(label, {}), sb.get(label, {})))
    return charts


def render_compare(result: dict[str, Any], a: Run, b: Run) -> str:
    rows = [{"metric": r["metric"], "A": r.get("a"), "B": r.get("b"),
             "change %": r.get("diff_percent"),
             "95% interval": _interval(r), "significant": _sig(r.get("significant")),
             "counts": r.get("detail") or ("" if not r.get("only_in")
                                           else f"present only in {r['only_in']}")}
            for r in result["metrics"]]
    header = (f'<p class="meta">A: {escape(str(result["a"].get("dir", "")))} · B: '
              f'{escape(str(result["b"].get("dir", "")))} · {result["resamples"]} resamples, '
              f'seed {result["seed"]}, minimum effect {result["min_effect_percent"]:g}%</p>'
              f'<p>Verdict: {badge(result["significant"] is False, result["verdict"])}</p>')
    sections = [section("Differences (B - A)", html_table(rows, ("metric", "95% interval"))),
                section("Both runs overlaid (A solid, B dashed)",
                        *(render_chart(c) for c in overlay_charts(a, b)))]
    return page(f"mailswarm compare: {result['a'].get('profile')} vs "
                f"{result['b'].get('profile')}", header, sections)


def _interval(row: dict[str, Any]) -> str:
    if row.get("interval_percent"):
        lo, hi = row["interval_percent"]
        return f"[{lo:+.1f}%, {hi:+.1f}%]"
    if row.get("interval"):
        lo, hi = row["interval"]
        return f"[{lo:+.3g}, {hi:+.3g}]"
    return "single value"


def _sig(value: bool | None) -> str:
    return {True: "YES", False: "no", None: "-"}[value]
