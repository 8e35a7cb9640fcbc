"""`OUT/report.html` and the CSV tables of a run, from its typed records and its summary: the
headline band first (verdict, figures, warnings), then the interactive charts (Apache ECharts,
inlined), then the tables, collapsed.

`write_report` renders records already read (the end of a run reads the stream once, see
loadtests.report.finish); `build_report` rebuilds the page at any time from a run folder (its
stream, and `summary.json` when present): a pass over saved results, never the live run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from html import escape
from pathlib import Path
from typing import Any

from loadtests.analysis.stream import RunRecords, load_records
from loadtests.analysis.summary import SUMMARY_FILE, summarize_records
from loadtests.monitor.resources import http_ports
from loadtests.report.charts import Band, Chart, Limit, Marker, Series
from loadtests.report.headline import headline
from loadtests.report.page import chart_grid, collapsed, headline_band, html_table, page, section
from loadtests.report.series import (
    PERCENTILES,
    arrival_series,
    delivery_queue_series,
    failing_resource,
    failure_series,
    http_series,
    latency_series,
    percentile_label,
    rate_series,
    resource_series,
    sessions_series,
    step_percentile_curves,
    step_spans,
)
from loadtests.report.tables import (
    arrival_rows,
    failure_rows,
    qos_groups,
    qos_rows,
    request_rows,
    resource_rows,
    to_csv,
)

__all__ = ["REPORT_FILE", "build_report", "ceiling_bands", "ceiling_markers", "report_charts",
           "report_tables", "write_report"]

REPORT_FILE = "report.html"
_TIMELINE = "Ceiling search: sessions held, latency and the failing resource per step"


def _ceiling_at(spans: list[dict[str, Any]], ceiling: dict[str, Any]) -> float:
    """Where the knee is: the end of the last good step (the first step's start if none)."""
    return next((row["end_s"] for row in spans if row["users"] == ceiling.get("step")
                 and row["good"] is not False), spans[0]["start_s"])


def ceiling_markers(run: RunRecords, summary: dict[str, Any]) -> list[Marker]:
    """Dotted lines at the start of each ramp step, a strong one where the ceiling was reached
    (the end of the last good step), labelled with its sessions (the cause is in the chart's
    subtitle and the header)."""
    spans = step_spans(run)
    markers = [Marker(row["start_s"], f"{row['users']} users") for row in spans]
    ceiling = summary.get("ceiling")
    if ceiling and spans:
        label = f"ceiling {ceiling.get('sessions')} {ceiling.get('protocol') or ''}".strip()
        markers.append(Marker(_ceiling_at(spans, ceiling), label, color="#b3261e",
                              strong=True))
    return markers


def ceiling_bands(run: RunRecords) -> list[Band]:
    """The failed steps, shaded."""
    return [Band(row["start_s"], row["end_s"], f"step {row['users']} users failed")
            for row in step_spans(run) if row["good"] is False]


def _chart(title: str, y_label: str, lines: dict[str, Any], markers: Sequence[Marker],
           limits: Sequence[Limit] = (), bands: Sequence[Band] = ()) -> Chart:
    return Chart(title, y_label, [Series(label, pts) for label, pts in lines.items()],
                 list(limits), list(markers), list(bands))


def _ceiling_charts(run: RunRecords, summary: dict[str, Any], markers: list[Marker],
                    bands: list[Band]) -> list[tuple[str, Chart]]:
    """The ceiling search on one time axis (sessions held, latency p95, the failing resource,
    the knee marked), and a latency percentile curve per step."""
    ceiling = summary.get("ceiling") or {}
    if not run.steps:
        return []
    t0 = run.t0
    proto = ceiling.get("protocol") or ""
    held = sessions_series(run.ticks, t0)
    series = [Series(label, pts, width=2.2 if label.startswith(proto) else 1.4)
              for label, pts in held.items()]
    p95 = latency_series(run.requests, t0).get(proto, {}).get("p95")
    if p95:
        series.append(Series(f"{proto} p95 ms", p95, color="#ff7f0e", axis=1))
    found = failing_resource(run.samples, str(ceiling.get("cause") or ""), t0)
    if found is None:  # a server reply (or no cause): what failed, per second
        rates = rate_series(run.requests, t0, run.t_end)
        found = (f"{proto} ops failed/s", "failed/s",
                 rates.get(f"{proto} ops failed/s", []))
    label, axis_label, points = found
    series.append(Series(label, points, color="#9467bd", axis=2, dashed=True, width=2))
    charts = [("Ceiling search", Chart(_TIMELINE, "sessions", series, [], markers, bands,
                                       y_labels=("p95 ms", axis_label),
                                       subtitle=f"cause: {ceiling.get('cause')}"))]
    curves = step_percentile_curves(run)
    if curves:
        charts.append(("Ceiling search", Chart(
            "Latency percentiles per step (operations, sessions apart)", "ms",
            [Series(k, v, dashed=k.endswith("(failed)")) for k, v in curves.items()],
            x_label="percentile", categories=[percentile_label(q) for q in PERCENTILES],
            log_y=True)))
    return charts


def _delivery_chart(run: RunRecords, markers: list[Marker]) -> Chart | None:
    """Delivery tracking: the delivery queue's size (left axis) next to the delivery latency of
    what was sent each second (first right axis) and the arrival rate (second right axis)."""
    lines = delivery_queue_series(run.sent, run.deliveries, run.queues, run.t0)
    if not lines:
        return None
    series = [Series(label, pts, width=2.2) for label, pts in lines["queue"].items()]
    series += [Series(f"latency {label}", pts, color=color, axis=1, dashed=label == "max s")
               for (label, pts), color in zip(lines["latency"].items(),
                                              ("#2ca02c", "#ff7f0e", "#d62728"), strict=True)]
    series += [Series(label, pts, color="#9467bd", axis=2, width=1.2)
               for label, pts in lines["arrival"].items()]
    return Chart("Delivery queue vs delivery latency and arrival rate", "messages queued",
                 series, [], markers, y_labels=("latency s (by send second)", "accepted/s"),
                 subtitle="" if lines["queue"] else (
                     "no queue sampled (delivery.postfix_queue, or an embedded delivery delay)"))


def report_charts(run: RunRecords, summary: dict[str, Any]) -> list[tuple[str, Chart]]:
    """(section, chart) pairs in page order, from the records alone (plus the summary's ceiling
    and QoS settings)."""
    t0, t1 = run.t0, run.t_end
    markers, bands = ceiling_markers(run, summary), ceiling_bands(run)
    charts = _ceiling_charts(run, summary, markers, bands)
    for name, s in arrival_series(run.ticks, t0).items():
        charts.append(("Load", _chart(
            f"{name}: intended vs achieved sessions/s (open model)", "sessions/s",
            {k: s[k] for k in ("intended/s", "started/s", "completed/s")}, markers)))
        charts.append(("Load", _chart(
            f"{name}: late and dropped per second, sessions in flight", "sessions",
            {k: s[k] for k in ("late/s", "dropped/s", "in flight")}, markers)))
    charts.append(("Load", _chart("Achieved operations per second", "per second",
                                  rate_series(run.requests, t0, t1), markers, bands=bands)))
    charts.append(("Load", _chart("Users and concurrent sessions", "count",
                                  sessions_series(run.ticks, t0), markers, bands=bands)))
    web = http_series(run.ticks, run.samples, t0, http_ports(run.header.target))
    if web:
        charts.append(("WebUser: sessions vs connections", _chart(
            "HTTP sessions vs connections (and TIME_WAIT sockets)", "count", web, markers)))
    for proto, lines in latency_series(run.requests, t0).items():
        charts.append(("Latency", replace(_chart(
            f"{proto} latency per second (all steps but sessions)", "ms (log)", lines, markers,
            bands=bands), log_y=True)))
    delivery = _delivery_chart(run, markers)
    if delivery is not None:
        charts.append(("Delivery", delivery))
    failures = failure_series(run.requests, t0, t1)
    if failures:
        charts.append(("Failures", _chart("Failures per second by cause", "per second",
                                          failures, markers, bands=bands)))
    series, limits = resource_series(run.samples, t0)
    for label, groups in series.items():
        lims = [Limit(f"{group} fd limit {value:g}", value, group)
                for group, value in limits.get(label, {}).items()]
        charts.append(("Target resources", _chart(f"Target {label}", label, groups, markers,
                                                   lims, bands)))
    return charts


def report_tables(run: RunRecords, summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Table name (also the CSV file's stem) -> rows."""
    tables = {"requests": request_rows(summary), "steps": step_spans(run),
              "arrival": arrival_rows(summary), "resources": resource_rows(summary),
              "failures": failure_rows(run.requests), "qos": qos_rows(summary)}
    return {name: rows for name, rows in tables.items() if rows or name == "requests"}


def _timeseries_rows(charts: Sequence[tuple[str, Chart]]) -> list[dict[str, Any]]:
    return [{"chart": c.title, "series": s.label, "x_s": x, "value": y}
            for _, c in charts if c.categories is None for s in c.series for x, y in s.points]


def _meta(summary: dict[str, Any]) -> str:
    target = summary.get("target") or {}
    return (f'profile <b>{escape(str(summary.get("profile")))}</b> · target '
            f'{escape(str(target.get("name")))} · duration {summary.get("duration_s")} s · '
            f'end: {escape(str(summary.get("end")))}')


_LEFT = ("type", "name", "scenario", "group", "cause", "steps", "example", "check", "rule")
_TITLES = {"requests": "Per protocol and step", "steps": "Ramp steps",
           "arrival": "Open-model arrival", "resources": "Resource peaks (target and generator)",
           "failures": "Failures by cause (one example each)"}


def _qos_section(summary: dict[str, Any]) -> str:
    blocks = []
    for proto, rows in qos_groups(summary).items():
        failed = sum(1 for r in rows if r["pass"] is False)
        title = (f"{proto}: {failed} of {len(rows)} checks failed" if failed
                 else f"{proto}: all {len(rows)} checks pass")
        blocks.append(collapsed(title, html_table(rows, _LEFT), open_=bool(failed)))
    return section("QoS checks, per protocol", *blocks) if blocks else ""


def _table_sections(tables: dict[str, list[dict[str, Any]]], summary: dict[str, Any]) -> list[str]:
    out = [_qos_section(summary)] if tables.get("qos") else []
    parts = []
    for name in ("failures", "requests", "steps", "arrival", "resources"):
        rows = tables.get(name)
        if rows is None:
            continue
        open_ = name in ("failures", "requests") and len(rows) <= 20
        parts.append(collapsed(_TITLES[name], html_table(rows, _LEFT), open_=open_,
                               rows=len(rows)))
    out.append(section("Tables", *parts))
    return out


def render_report(run: RunRecords, summary: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The page and the tables (pure: records and summary in, text and rows out)."""
    charts = report_charts(run, summary)
    tables = report_tables(run, summary)
    order: list[str] = []
    for name, _ in charts:
        if name not in order:
            order.append(name)
    sections: list[str] = []
    drawn: list[Chart] = []
    for name in order:
        group = [c for n, c in charts if n == name]
        sections.append(section(name, chart_grid(group, len(drawn), wide=(_TIMELINE,))))
        drawn += group
    sections += _table_sections(tables, summary)
    title = f"mailswarm report: {summary.get('profile') or 'run'}"
    tables["timeseries"] = _timeseries_rows(charts)
    return page(title, headline_band(headline(summary), _meta(summary)), sections,
                drawn), tables


def build_report(out_dir: Path) -> Path:
    """Write `OUT/report.html` and `OUT/<table>.csv` from `OUT/results.jsonl` (and
    `OUT/summary.json`, else the summary is computed from the same records); returns the page's
    path."""
    out_dir = Path(out_dir)
    run = load_records(out_dir)
    summary_file = out_dir / SUMMARY_FILE
    summary = (json.loads(summary_file.read_text()) if summary_file.is_file()
               else summarize_records(run))
    return write_report(out_dir, run, summary)


def write_report(out_dir: Path, run: RunRecords, summary: dict[str, Any]) -> Path:
    """Write `OUT/report.html` and `OUT/<table>.csv` of records already read."""
    html, tables = render_report(run, summary)
    for name, rows in tables.items():
        (out_dir / f"{name}.csv").write_text(to_csv(rows))
    path = out_dir / REPORT_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path
