"""The answer a person came for, from a run's summary alone (pure): the verdict, the headline
figures of the run's kind, and warnings.

`headline(summary)` is shared by the report's header band, the console's final summary and its
live view, and the web UI's Target tab, so every view states the same figures. Kinds:

- `ceiling`: a ceiling search — the ceiling, its cause and the evidence;
- `open`: open-model arrival — intended vs achieved rate, late / dropped, session p95 / p99;
- `webuser`: HTTP sessions vs the connections they held;
- `idle`: sessions held (IMAP idle, a proxy) and what each costs the target in memory;
- `closed`: anything else — operations and their latency.

Warnings: the generator saturated (its event loop behind, loadtests.analysis.saturation; CPU
percent only for a stream without lag readings) or near its open-files limit, a ceiling cause on
the generator side, a ceiling not reached, a stream without its end record, exceptions escaped
from users, an open model whose achieved rate fell short of the intended one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Figure", "Headline", "headline", "headline_lines", "tls_verify_off"]

_GENERATOR_CPU_WARN = 85.0  # % of one core: above it the generator may set the pace
_GENERATOR_FD_WARN = 0.8  # share of its open-files limit


@dataclass(frozen=True)
class Figure:
    """One headline figure: `label` and its `value` as shown, an optional `note`; `bad` marks a
    figure that explains a failure (drawn in red)."""

    label: str
    value: str
    note: str = ""
    bad: bool = False


@dataclass(frozen=True)
class Headline:
    kind: str  # ceiling, open, webuser, idle, closed
    verdict: str  # pass, fail, none (no QoS verdict)
    verdict_text: str  # "QoS PASS (16 checks)", "QoS FAIL: 2 of 16 checks"
    failed: dict[str, list[str]] = field(default_factory=dict)  # protocol -> failed checks
    figures: list[Figure] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)  # of a ceiling's cause
    warnings: list[str] = field(default_factory=list)


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e6:
            return f"{int(value):,}"
        return f"{value:,.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _ms(value: Any) -> str:
    if not isinstance(value, int | float):
        return "-"
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


def _check_text(check: dict[str, Any]) -> str:
    """`DATA: error rate 2.4% (needs < 1% failed)` (the protocol is the group's)."""
    name = str(check.get("name", ""))
    step = str(check.get("step") or "")
    if step and name.startswith(step.split(" ", 1)[0] + " "):
        name = name.split(" ", 1)[1]
    measured = check.get("measured")
    unit = "%" if check.get("kind") in ("latency", "errors") else ""
    rule = check.get("text") or f"threshold {check.get('threshold')}"
    return f"{name} {_num(measured, 2)}{unit} (needs {rule})"


def _verdict(summary: dict[str, Any]) -> tuple[str, str, dict[str, list[str]]]:
    qos = summary.get("qos")
    if not qos:
        return "none", "no QoS verdict", {}
    checks = qos.get("checks") or []
    failed = [c for c in checks if not c.get("pass")]
    groups: dict[str, list[str]] = defaultdict(list)
    for c in failed:
        proto = str(c.get("step") or c.get("name") or "run").split(" ", 1)[0].rstrip(":")
        groups[proto].append(_check_text(c))
    if qos.get("pass"):
        return "pass", f"QoS PASS ({len(checks)} checks)", {}
    return "fail", f"QoS FAIL: {len(failed)} of {len(checks)} checks", dict(groups)


def _kind(summary: dict[str, Any]) -> str:
    if summary.get("ceiling"):
        return "ceiling"
    if summary.get("arrival"):
        return "open"
    if (summary.get("http") or {}).get("peak_sessions"):
        return "webuser"
    if any(r.get("connections_max") for r in (summary.get("target_resources") or {}).values()):
        return "idle"
    return "closed"


def _sessions_row(summary: dict[str, Any], proto: str | None = None) -> dict[str, Any] | None:
    rows = [r for r in summary.get("requests") or [] if r.get("name") == "session"
            and (proto is None or r.get("type") == proto)]
    return max(rows, key=lambda r: r.get("count", 0)) if rows else None


def _open_figures(summary: dict[str, Any]) -> list[Figure]:
    figures = []
    for name, a in (summary.get("arrival") or {}).items():
        intended, achieved = a.get("intended_per_s"), a.get("achieved_per_s")
        short = bool(intended) and (achieved or 0) < 0.95 * float(intended)
        figures.append(Figure(f"{name}: achieved / intended", f"{_num(achieved)} / "
                              f"{_num(intended)} per s", f"over {_num(a.get('window_s'))} s",
                              bad=short))
        late, dropped = a.get("late", 0), a.get("dropped", 0)
        figures.append(Figure(f"{name}: late / dropped", f"{_num(late)} / {_num(dropped)}",
                              f"of {_num(a.get('intended'))} intended; in flight max "
                              f"{_num(a.get('in_flight_max'))}/{_num(a.get('max_in_flight'))}",
                              bad=bool(dropped)))
    row = _sessions_row(summary)
    if row:
        figures.append(Figure(f"{row['type']} session p95 / p99",
                              f"{_ms(row.get('p95_ms'))} / {_ms(row.get('p99_ms'))}",
                              f"{_num(row.get('count'))} sessions, {_num(row.get('failures'))} "
                              "failed (from the intended start)"))
    return figures


def _ceiling_figures(summary: dict[str, Any]) -> list[Figure]:
    c = summary["ceiling"]
    reached = c.get("cause") != "not reached"
    held = f"{_num(c.get('sessions'))} {c.get('protocol') or ''} sessions".replace("  ", " ")
    figures = [Figure("ceiling", held if reached else f"not reached (>= {held})",
                      f"last good step {_num(c.get('step'))} users"
                      + (f"; step {_num(c['failed_step'])} failed" if "failed_step" in c
                         else ""), bad=not reached),
               Figure("cause", str(c.get("cause")), bad=reached)]
    steps = summary.get("steps") or []
    if steps:
        figures.append(Figure("steps", f"{sum(1 for s in steps if s.get('good'))} good of "
                              f"{len(steps)}"))
    return figures


def _memory_per_connection(summary: dict[str, Any]) -> list[Figure]:
    figures = []
    for group, r in (summary.get("target_resources") or {}).items():
        if not r.get("connections_max"):
            continue
        per = r.get("per_connection") or {}
        mem = per.get("pss_bytes", per.get("rss_bytes"))
        which = "PSS" if "pss_bytes" in per else "RSS"
        figures.append(Figure(f"{group}: connections held", _num(r["connections_max"]),
                              f"processes {_num(r.get('processes_max'))}, "
                              f"threads {_num(r.get('threads_max'))} at the peak"))
        if mem is not None:
            figures.append(Figure(f"{group}: memory per connection",
                                  f"{mem / 1024:,.1f} KiB {which}",
                                  f"fds {_num(per.get('open_fds'))}, processes "
                                  f"{_num(per.get('processes'))} per connection"))
    return figures


def _idle_figures(summary: dict[str, Any]) -> list[Figure]:
    figures = [Figure(f"{proto} sessions held", _num(s.get("peak")),
                      f"mean {_num(s.get('mean'))}, dropped {_num(s.get('dropped'))}",
                      bad=bool(s.get("dropped")))
               for proto, s in (summary.get("sessions") or {}).items() if s.get("peak")]
    return figures + _memory_per_connection(summary)


def _webuser_figures(summary: dict[str, Any]) -> list[Figure]:
    http = summary.get("http") or {}
    held = (f"{_num(http['held_connections_mean'])} on average while all were open (max "
            f"{_num(http['held_connections_max'])})" if "held_connections_max" in http
            else "")
    return [Figure("HTTP sessions / connections",
                   f"{_num(http.get('peak_sessions'))} / {_num(http.get('peak_connections'))}",
                   held or "peaks"),
            Figure("TIME_WAIT peak", _num(http.get("time_wait_peak")),
                   f"client {_num(http.get('time_wait_peak_client'))}, target "
                   f"{_num(http.get('time_wait_peak_target'))}")]


def _closed_figures(summary: dict[str, Any]) -> list[Figure]:
    rows = [r for r in summary.get("requests") or [] if r.get("name") != "session"]
    count = sum(r.get("count", 0) for r in rows)
    failures = sum(r.get("failures", 0) for r in rows)
    duration = summary.get("duration_s") or 0
    figures = [Figure("operations", _num(count),
                      f"{count / duration:,.1f}/s" if duration else "",
                      )]
    if count:
        figures.append(Figure("failed", f"{100 * failures / count:.2f}%", _num(failures),
                              bad=bool(failures)))
    slowest = max((r for r in rows if r.get("p95_ms") is not None),
                  key=lambda r: r["p95_ms"], default=None)
    if slowest:
        figures.append(Figure(f"slowest p95: {slowest['type']} {slowest['name']}",
                              _ms(slowest.get("p95_ms")), f"p99 {_ms(slowest.get('p99_ms'))}"))
    return figures


def tls_verify_off(summary: dict[str, Any]) -> list[str]:
    """Endpoints of the run's target that spoke TLS without verifying certificates."""
    endpoints = (summary.get("target") or {}).get("endpoints") or {}
    return [name for name, e in endpoints.items()
            if isinstance(e, dict) and e.get("tls") and e.get("verify") is False]


def _warnings(summary: dict[str, Any], kind: str) -> list[str]:
    out = []
    end = str(summary.get("end") or "")
    if end.startswith("killed") or "no end record" in end:
        out.append("the results stream is incomplete (no end record): the run was killed; "
                   "what was written is shown")
    elif end and end != "completed":
        out.append(f"the run ended {end}")
    gen = summary.get("generator") or {}
    saturated = gen.get("saturated_from_s")
    if saturated is not None:
        why = ((gen.get("saturation") or {}).get("evidence") or ["its event loop fell behind"])[0]
        out.append(f"the generator was saturated from t = {saturated:g} s ({why}): from then on "
                   "the figures are the generator's limit, not the target's (spread the load: "
                   "--workers N, more hosts)")
    cpu = gen.get("cpu_percent_max")
    if "saturated_from_s" not in gen and isinstance(cpu, int | float) \
            and cpu >= _GENERATOR_CPU_WARN:  # a stream without lag readings: CPU is all there is
        out.append(f"generator CPU peaked at {cpu:.0f}% of a core: the generator may have set "
                   "the pace (try --workers N)")
    fds, limit = gen.get("open_fds_max"), gen.get("fd_limit")
    if isinstance(fds, int | float) and limit and fds >= _GENERATOR_FD_WARN * limit:
        out.append(f"generator open files {fds:,.0f} of its limit {limit:,.0f}: near its own "
                   "limit")
    ceiling = summary.get("ceiling") or {}
    cause = str(ceiling.get("cause") or "")
    if cause.startswith("generator"):
        out.append(f"the generator was the bottleneck ({cause}): this ceiling is the "
                   "generator's, not the target's")
    if cause == "not reached":
        out.append(f"ceiling not reached: every step up to {ceiling.get('step')} users was "
                   "good; raise the ramp's max or the duration")
    if kind == "open":
        for name, a in (summary.get("arrival") or {}).items():
            intended, achieved = a.get("intended_per_s"), a.get("achieved_per_s") or 0
            if intended and achieved < 0.95 * float(intended):
                out.append(f"{name}: achieved {achieved:g}/s of the intended {intended:g}/s"
                           + (" (the generator was saturated)" if saturated is not None else ""))
    for lost in (summary.get("workers") or {}).get("lost") or []:
        out.append(f"worker {lost.get('index')} of {lost.get('of')} was lost at "
                   f"{lost.get('at_s')} s ({lost.get('cause')}): its part of the load after "
                   "that was not sent")
    off = tls_verify_off(summary)
    if off:
        out.append(f"TLS verification off for {', '.join(off)}: the servers' certificates "
                   "were not checked (verify: false or --insecure)")
    escaped = sum(e.get("count", 0) for e in summary.get("user_errors") or [])
    if escaped:
        out.append(f"{escaped} exceptions escaped the users (bugs, see the table)")
    return out + _delivery_tracking_warnings(summary)


def _delivery_tracking_warnings(summary: dict[str, Any]) -> list[str]:
    """The delivery tracker failed to look: the copies reported lost may not be lost (a tracker
    that never looked; or one that failed at times, when copies were reported lost)."""
    d = summary.get("delivery") or {}
    lost = d.get("lost") or 0
    out = []
    for via, t in (d.get("tracking") or {}).items():
        cause = f"{t.get('errors')} errors, first: {t.get('first_error') or '?'}"
        if not t.get("looked"):
            out.append(f"delivery tracking failed: {via} never looked ({cause})"
                       + (f" — {lost:,} copies reported lost may not be lost" if lost else ""))
        elif lost:
            out.append(f"delivery tracking failed at times: {via} ({cause}) — some of the "
                       f"{lost:,} copies reported lost may not be lost")
    return out


def _delivery_figures(summary: dict[str, Any]) -> list[Figure]:
    """Delivery tracking: copies delivered intact, delivery latency, what went wrong."""
    d = summary.get("delivery")
    if not d:
        return []
    lat = d.get("latency_s") or {}
    wrong = d["lost"] + d["corrupt"] + d["duplicate"]
    return [Figure("delivered", f"{_num(d['delivered'])} of {_num(d['tracked'])}",
                   f"p50 / p95 / max {_num(lat.get('p50'), 2)} / {_num(lat.get('p95'), 2)} / "
                   f"{_num(lat.get('max'), 2)} s; lost {d['lost']}, corrupt {d['corrupt']}, "
                   f"duplicate {d['duplicate']}", bad=wrong > 0)]


def _tls_figures(summary: dict[str, Any]) -> list[Figure]:
    """The TLS versions and ciphers negotiated (once per run, from the `tls` records)."""
    pairs = sorted({f"{t.get('version')} {t.get('cipher')}" for t in summary.get("tls") or []})
    if not pairs:
        return []
    scenarios = sorted({str(t.get("scenario")) for t in summary.get("tls") or []})
    return [Figure("TLS", ", ".join(pairs), "scenarios " + ", ".join(scenarios))]


_FIGURES = {"open": _open_figures, "ceiling": _ceiling_figures, "webuser": _webuser_figures,
            "idle": _idle_figures, "closed": _closed_figures}


def headline(summary: dict[str, Any]) -> Headline:
    """Verdict, figures and warnings of a summary (summary.json, with its `qos`)."""
    kind = _kind(summary)
    verdict, text, failed = _verdict(summary)
    figures = _FIGURES[kind](summary) + _delivery_figures(summary) + _tls_figures(summary)
    if kind == "ceiling":
        figures += _memory_per_connection(summary)
    evidence = [str(e) for e in (summary.get("ceiling") or {}).get("evidence") or []]
    return Headline(kind, verdict, text, failed, figures, evidence, _warnings(summary, kind))


def headline_lines(h: Headline, *, width: int = 100) -> list[str]:
    """The headline as terminal lines: the verdict first, failed checks per protocol, figures,
    evidence, warnings."""
    lines = [h.verdict_text]
    for proto, checks in h.failed.items():
        shown = "; ".join(checks[:4]) + (f"; +{len(checks) - 4} more" if len(checks) > 4 else "")
        lines.append(f"  {proto}: {shown}"[:width * 2])
    for f in h.figures:
        lines.append(f"{f.label}: {f.value}" + (f"  ({f.note})" if f.note else ""))
    lines += [f"  - {e}" for e in h.evidence]
    lines += [f"WARNING: {w}" for w in h.warnings]
    return lines
