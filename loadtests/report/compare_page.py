"""The HTML page of `mailswarm compare`: the verdict and the significant differences first,
each run's own headline verdict beside them, then both runs overlaid on the same interactive
charts (A solid, B dashed, same colour per series; x aligned on the start of each load), then
the full table of differences, collapsed."""

from __future__ import annotations

from html import escape
from typing import Any

from loadtests.analysis.stream import RunRecords
from loadtests.report.charts import PALETTE, Chart, Series
from loadtests.report.headline import headline
from loadtests.report.page import badge, chart_grid, collapsed, html_table, page, section
from loadtests.report.series import latency_series, rate_series, resource_series, sessions_series

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


def _rows(metrics: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"metric": r["metric"], "A": r.get("a"), "B": r.get("b"),
             "change %": r.get("diff_percent"), "95% interval": _interval(r),
             "significant": _sig(r.get("significant")),
             "counts": r.get("detail") or ("" if not r.get("only_in")
                                           else f"present only in {r['only_in']}")}
            for r in metrics]


def _band(result: dict[str, Any], a: Run, b: Run) -> str:
    significant = [r for r in result["metrics"] if r.get("significant")]
    comparable = result.get("significant") is not None
    state = "fail" if significant or not comparable else "pass"
    title = (result["verdict"] if not comparable
             else "B differs from A" if significant else "no significant change")
    runs = "".join(
        f'<div class="fig" data-label="{side}"><div class="l">{side}: '
        f'{escape(str(result[side.lower()].get("dir", "")))}</div>'
        f'<div class="v">{escape(h.verdict_text)}</div>'
        f'<div class="n">{escape("; ".join(f"{f.label} {f.value}" for f in h.figures[:2]))}'
        "</div></div>"
        for side, h in (("A", headline(a[1])), ("B", headline(b[1]))))
    diffs = "".join(
        f"<li><b>{escape(r['metric'])}</b>: {_num(r.get('a'))} → {_num(r.get('b'))} "
        f"({_change(r)}, 95% {_interval(r)})</li>" for r in significant)
    return (f'<header class="band {state}" data-kind="compare"><div>'
            f'<div class="verdict {state}" id="verdict">'
            f'{escape(title)}</div>'
            f'<p class="meta">{len(significant)} significant of {len(result["metrics"])} '
            f'metrics · {result["resamples"]} resamples, seed {result["seed"]}, minimum effect '
            f'{result["min_effect_percent"]:g}%</p></div>'
            f'<div><div class="figures" id="figures">{runs}</div>'
            + (f'<ul class="evidence" id="differences"><b>Significant differences (B - A)</b>'
               f"{diffs}</ul>" if diffs else "")
            + f'<p class="meta">Verdict: '
              f'{badge(comparable and not significant, result["verdict"])}</p>'
            "</div></header>")


def render_compare(result: dict[str, Any], a: Run, b: Run) -> str:
    metrics = sorted(result["metrics"], key=lambda r: not r.get("significant"))
    charts = overlay_charts(a, b)
    sections = [section("Both runs overlaid (A solid, B dashed)", chart_grid(charts)),
                section("Differences (B - A), significant first", collapsed(
                    "All metrics", html_table(_rows(metrics), ("metric", "95% interval")),
                    open_=len(metrics) <= 25, rows=len(metrics)))]
    return page(f"mailswarm compare: {result['a'].get('profile')} vs "
                f"{result['b'].get('profile')}", _band(result, a, b), sections, charts)


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"
    return "-" if value is None else str(value)


def _change(row: dict[str, Any]) -> str:
    pct = row.get("diff_percent")
    return f"{pct:+.1f}%" if pct is not None else f"{_num(row.get('diff'))}"


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
