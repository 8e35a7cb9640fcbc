"""`OUT/report.html` and the CSV tables of a run, from its typed records and its summary.

`write_report` renders records already read (the end of a run reads the stream once, see
loadtests.report.finish); `build_report` rebuilds the page at any time from a run folder (its
stream, and `summary.json` when present): a pass over saved results, never the live run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from loadtests.analysis.stream import RunRecords, load_records
from loadtests.analysis.summary import SUMMARY_FILE, summarize_records
from loadtests.monitor.resources import http_ports
from loadtests.report.page import badge, html_table, page, section
from loadtests.report.series import (
    arrival_series,
    failure_series,
    http_series,
    latency_series,
    rate_series,
    resource_series,
    sessions_series,
    step_spans,
)
from loadtests.report.svg import Chart, Limit, Marker, Series, render_chart
from loadtests.report.tables import (
    arrival_rows,
    failure_rows,
    qos_rows,
    request_rows,
    resource_rows,
    to_csv,
)

__all__ = ["REPORT_FILE", "build_report", "ceiling_markers", "report_charts", "report_tables",
           "write_report"]

REPORT_FILE = "report.html"


def ceiling_markers(run: RunRecords, summary: dict[str, Any]) -> list[Marker]:
    """Faint lines at the start of each ramp step, a strong one where the ceiling was reached
    (the end of the last good step), labelled with its sessions and cause."""
    spans = step_spans(run)
    markers = [Marker(row["start_s"], f"{row['users']} users") for row in spans]
    ceiling = summary.get("ceiling")
    if ceiling and spans:
        label = f"ceiling {ceiling.get('sessions')} {ceiling.get('protocol') or ''} " \
                f"({ceiling.get('cause') or 'cause unknown'})".replace("  ", " ")
        at = next((row["end_s"] for row in spans if row["users"] == ceiling.get("step")
                   and row["good"] is not False), None)
        if at is None:  # no good step: the first one failed
            at = spans[0]["start_s"]
        markers.append(Marker(at, label, color="#b3261e", strong=True))
    return markers


def _chart(title: str, y_label: str, lines: dict[str, Any], markers: Sequence[Marker],
           limits: Sequence[Limit] = ()) -> Chart:
    return Chart(title, y_label, [Series(label, pts) for label, pts in lines.items()],
                 list(limits), list(markers))


def report_charts(run: RunRecords, summary: dict[str, Any]) -> list[tuple[str, Chart]]:
    """(section, chart) pairs in page order, from the records alone (plus the summary's ceiling
    and QoS settings)."""
    t0, t1 = run.t0, run.t_end
    markers = ceiling_markers(run, summary)
    charts: list[tuple[str, Chart]] = []
    for name, s in arrival_series(run.ticks, t0).items():
        charts.append(("Load", _chart(
            f"{name}: intended vs achieved sessions/s (open model)", "sessions/s",
            {k: s[k] for k in ("intended/s", "started/s", "completed/s")}, markers)))
        charts.append(("Load", _chart(
            f"{name}: late and dropped per second, sessions in flight", "sessions",
            {k: s[k] for k in ("late/s", "dropped/s", "in flight")}, markers)))
    charts.append(("Load", _chart("Achieved operations per second", "per second",
                                  rate_series(run.requests, t0, t1), markers)))
    charts.append(("Load", _chart("Users and concurrent sessions", "count",
                                  sessions_series(run.ticks, t0), markers)))
    web = http_series(run.ticks, run.samples, t0, http_ports(run.header.target))
    if web:
        charts.append(("WebUser: sessions vs connections", _chart(
            "HTTP sessions vs connections (and TIME_WAIT sockets)", "count", web, markers)))
    for proto, lines in latency_series(run.requests, t0).items():
        charts.append(("Latency", _chart(f"{proto} latency per second (all steps but sessions)",
                                         "ms", lines, markers)))
    failures = failure_series(run.requests, t0, t1)
    if failures:
        charts.append(("Failures", _chart("Failures per second by cause", "per second",
                                          failures, markers)))
    series, limits = resource_series(run.samples, t0)
    for label, groups in series.items():
        lims = [Limit(f"{group} fd limit {value:g}", value)
                for group, value in limits.get(label, {}).items()]
        charts.append(("Target resources", _chart(f"Target {label}", label, groups, markers,
                                                   lims)))
    return charts


def report_tables(run: RunRecords, summary: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Table name (also the CSV file's stem) -> rows."""
    tables = {"requests": request_rows(summary), "steps": step_spans(run),
              "arrival": arrival_rows(summary), "resources": resource_rows(summary),
              "failures": failure_rows(run.requests), "qos": qos_rows(summary)}
    return {name: rows for name, rows in tables.items() if rows or name == "requests"}


def _timeseries_rows(charts: Sequence[tuple[str, Chart]]) -> list[dict[str, Any]]:
    return [{"chart": c.title, "series": s.label, "x_s": x, "value": y}
            for _, c in charts for s in c.series for x, y in s.points]


def _header(summary: dict[str, Any]) -> str:
    target = summary.get("target") or {}
    parts = [f'<p class="meta">profile <b>{escape(str(summary.get("profile")))}</b> · target '
             f'{escape(str(target.get("name")))} · duration {summary.get("duration_s")} s · '
             f'end: {escape(str(summary.get("end")))}</p>']
    qos = summary.get("qos")
    if qos:
        failed = [c["name"] for c in qos.get("checks", []) if not c.get("pass")]
        parts.append(f'<p>QoS {badge(qos.get("pass"), "pass" if qos.get("pass") else "FAIL")}'
                     + (f' {escape("; ".join(failed[:6]))}' if failed else "") + "</p>")
    ceiling = summary.get("ceiling")
    if ceiling:
        parts.append(f'<p class="note">Ceiling: <b>{escape(str(ceiling.get("sessions")))}</b> '
                     f'{escape(str(ceiling.get("protocol") or ""))} sessions (step of '
                     f'{escape(str(ceiling.get("step")))} users; failed at '
                     f'{escape(str(ceiling.get("failed_step", "-")))}); cause: '
                     f'<b>{escape(str(ceiling.get("cause")))}</b>. Evidence: '
                     f'{escape(json.dumps(ceiling.get("evidence"), default=str)[:600])}</p>')
    http = summary.get("http")
    if http and http.get("peak_sessions"):
        held = (f', while all were open {http["held_connections_mean"]} on average '
                f'(max {http["held_connections_max"]})' if "held_connections_max" in http else "")
        parts.append(f'<p class="note">HTTP: peak sessions {http.get("peak_sessions")}; '
                     f'connections: peak {http.get("peak_connections")}{held}; TIME_WAIT peak '
                     f'{http.get("time_wait_peak")}</p>')
    return "\n".join(parts)


def render_report(run: RunRecords, summary: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The page and the tables (pure: records and summary in, text and rows out)."""
    charts = report_charts(run, summary)
    tables = report_tables(run, summary)
    titles = {"requests": "Per protocol and step", "steps": "Ramp steps",
              "arrival": "Open-model arrival", "resources": "Resource peaks",
              "failures": "Failures by cause", "qos": "QoS checks"}
    left = ("type", "name", "scenario", "group", "cause", "example", "check", "rule")
    sections = [section(titles[name], html_table(rows, left)) for name, rows in tables.items()]
    order: list[str] = []
    for name, _ in charts:
        if name not in order:
            order.append(name)
    sections += [section(name, *(render_chart(c) for n, c in charts if n == name))
                 for name in order]
    title = f"mailswarm report: {summary.get('profile') or 'run'}"
    tables["timeseries"] = _timeseries_rows(charts)
    return page(title, _header(summary), sections), tables


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
