"""What a person sees in the terminal: a live progress line during a run, a summary table after.

Both lead with the headline of loadtests.report.headline (the report's header band): live, its
figures computed from the run's counters so far (`live_summary`); at the end, the verdict line
first, then the failed checks per protocol, the figures of the run's kind, a ceiling's evidence
and the warnings, then the detail tables. Control characters in the text (a server's reply can
carry ESC sequences) are shown escaped, never sent to the terminal."""

from __future__ import annotations

import math
import sys
from collections import deque
from typing import Any, TextIO

from loadtests.analysis.saturation import format_saturation
from loadtests.analysis.workers import format_workers
from loadtests.printable import printable
from loadtests.profiles import ArrivalSchedule, Profile, RampSchedule
from loadtests.report.headline import headline, headline_lines
from loadtests.run.progress import Progress
from loadtests.units import format_duration

__all__ = ["ProgressPrinter", "describe_plan", "format_summary", "live_headline", "live_summary",
           "progress_bar"]


def describe_plan(profile: Profile, duration: float) -> str:
    """What the run is about to do, scenario by scenario, with the population derivation."""
    lines = []
    for sc in profile.scenarios:
        s = sc.schedule
        if isinstance(s, ArrivalSchedule):
            head = (f"{sc.name}: {sc.user} sessions arriving at {s.sessions_per_s:.3f}/s "
                    f"({s.process}{', bursts' if s.bursts else ''}), at most {s.max_in_flight} "
                    f"at once, for {format_duration(duration)}")
            lines.append(head)
            if s.population is not None:
                derived = s.population.derived()
                lines += [f"    {line}" for line in derived.lines]
            if s.bursts is not None:
                lines.append(f"    {s.bursts.share:.0%} of them in bursts at the top of every "
                             f"{format_duration(s.bursts.every)}")
        elif isinstance(s, RampSchedule):
            lines.append(f"{sc.name}: ceiling search, {s.start} {sc.user} users then +{s.step} "
                         f"every {format_duration(s.hold)} up to {s.max}; a step fails when over "
                         f"{s.stop_when.failure_percent:g}% of its requests fail or its "
                         f"p{s.stop_when.latency_percentile:g} passes "
                         f"{format_duration(s.stop_when.latency_over)} (at most "
                         f"{format_duration(duration)})")
        else:
            lines.append(f"{sc.name}: {s.users} {sc.user} users (closed model, think time "
                         f"{format_duration(s.think_time)}) for {format_duration(duration)}")
    return "\n".join(lines)


def progress_bar(elapsed: float, duration: float, width: int = 30) -> str:
    """`[#########.........]  42%` for the run time."""
    share = min(1.0, max(0.0, elapsed / duration)) if duration > 0 else 0.0
    done = round(share * width)
    return f"[{'#' * done}{'.' * (width - done)}] {share:4.0%}"


class _Window:
    """Latencies and failures per scenario over the last `seconds` seconds (for the live table)."""

    def __init__(self, seconds: int = 5) -> None:
        self.seconds = seconds
        self.buckets: deque[dict[str, tuple[list[float], int]]] = deque([{}], maxlen=seconds)

    def add(self, scenario: str, ms: float, ok: bool) -> None:
        values, failures = self.buckets[-1].setdefault(scenario, ([], 0))
        values.append(ms)
        self.buckets[-1][scenario] = (values, failures + (not ok))

    def rotate(self) -> None:
        self.buckets.append({})

    def p95_and_failures(self, scenario: str) -> tuple[float | None, int]:
        values = sorted(v for b in self.buckets for v in b.get(scenario, ([], 0))[0])
        failures = sum(b.get(scenario, ([], 0))[1] for b in self.buckets)
        return (values[max(0, math.ceil(0.95 * len(values)) - 1)] if values else None), failures


def live_summary(p: Progress, p95_ms: float | None = None) -> dict[str, Any]:
    """The parts of a summary the counters of a running run give (what `headline` reads):
    per open-model scenario the rates since the start and late / dropped; the operations and
    failures so far (`p95_ms`: of the last seconds, when observed)."""
    elapsed = max(p.elapsed, 1e-9)
    arrival = {name: {"intended_per_s": round(sc.get("intended", 0) / elapsed, 1),
                      "achieved_per_s": round(sc.get("completed", 0) / elapsed, 1),
                      "window_s": round(p.elapsed, 1), "intended": sc.get("intended", 0),
                      "late": sc.get("late", 0), "dropped": sc.get("dropped", 0),
                      "in_flight_max": sc.get("in_flight_max", sc.get("in_flight", 0)),
                      "max_in_flight": sc.get("max_in_flight")}
               for name, sc in p.scenarios.items()}
    return {"arrival": arrival, "duration_s": p.elapsed, "end": "completed",
            "requests": [{"type": "all", "name": "operations", "count": p.requests,
                          "failures": p.failures, "p95_ms": p95_ms}]}


def live_headline(p: Progress, p95_ms: float | None = None) -> str:
    """The headline's figures for the counters so far, on one line."""
    return "  |  ".join(f"{f.label} {f.value}"
                        for f in headline(live_summary(p, p95_ms)).figures)


class ProgressPrinter:
    """Called once a second with a Progress. On a terminal: a progress bar for the run time and a
    small live table per scenario (sessions/s, in flight, late, dropped, and with `observe`
    wired to Locust's `events.request`: failures and p95 of the last 5 s), redrawn in place.
    Elsewhere (logs, CI): one line every `every` seconds."""

    def __init__(self, stream: TextIO = sys.stderr, every: int = 5) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.every = every
        self._last: Progress | None = None
        self._count = 0
        self._drawn = 0
        self._window = _Window()
        self._observed = False

    def observe(self, request_type: str, name: str, response_time: float,
                exception: BaseException | None = None, context: dict[str, Any] | None = None,
                **_: Any) -> None:
        """Listener for `events.request` (optional): feeds the table's failures and p95."""
        self._observed = True
        scenario = (context or {}).get("scenario") or request_type
        if name != "session":
            self._window.add(scenario, response_time, exception is None)
        elif exception is not None:
            self._window.add(scenario, response_time, False)

    def _line(self, p: Progress, rate: float) -> str:
        parts = [f"{format_duration(p.elapsed):>6} / {format_duration(p.duration)}",
                 f"{p.phase:<8}", f"users {p.users}", f"sessions {rate:6.1f}/s",
                 f"requests {p.requests}", f"failures {p.failures}"]
        for name, sc in p.scenarios.items():
            parts.append(f"[{name}: in flight {sc['in_flight']}, late {sc['late']}, "
                         f"dropped {sc['dropped']}]")
        return "  ".join(parts)

    def _table(self, p: Progress, prev: Progress | None, dt: float, rate: float) -> list[str]:
        lines = [f"{progress_bar(p.elapsed, p.duration)}  {format_duration(p.elapsed)} / "
                 f"{format_duration(p.duration)}  {p.phase}  users {p.users}  requests "
                 f"{p.requests}  failures {p.failures}",
                 f"  {'scenario':<16} {'rate/s':>8} {'in flight':>9} {'late':>6} "
                 f"{'dropped':>7} {'fail 5s':>7} {'p95 5s':>8}"]
        lines.insert(0, f"now: {live_headline(p, self._p95())}")
        names = list(p.scenarios) or ["(all)"]
        for name in names:
            sc = p.scenarios.get(name)
            if sc is not None:
                before = (prev.scenarios.get(name) or {}) if prev else {}
                done = sc.get("completed", 0) - before.get("completed", 0) if prev else 0
                row_rate = done / dt
                flight, late, dropped = (str(sc[k]) for k in ("in_flight", "late", "dropped"))
            else:
                row_rate, flight, late, dropped = rate, "-", "-", "-"
            p95, failures = self._window.p95_and_failures(name)
            lines.append(f"  {name[:16]:<16} {row_rate:>8.1f} {flight!s:>9} {late!s:>6} "
                         f"{dropped!s:>7} {failures if self._observed else '-'!s:>7} "
                         f"{_ms(p95):>8}")
        return lines

    def _p95(self) -> float | None:
        """p95 of the last seconds over all scenarios (when `observe` is wired)."""
        values = sorted(v for b in self._window.buckets for vals, _ in b.values() for v in vals)
        return values[max(0, math.ceil(0.95 * len(values)) - 1)] if values else None

    def __call__(self, p: Progress) -> None:
        prev, self._last = self._last, p
        self._count += 1
        dt = (p.elapsed - prev.elapsed) if prev and p.elapsed > prev.elapsed else 1.0
        rate = (p.sessions - prev.sessions) / dt if prev else 0.0
        if self.tty:
            lines = self._table(p, prev, dt, rate)
            up = f"\033[{self._drawn}F" if self._drawn else ""
            self.stream.write(up + "".join(f"\033[K{line}\n" for line in lines))
            self._drawn = len(lines)
            self.stream.flush()
        elif self._count % self.every == 0 or p.phase != "running":
            self.stream.write(f"{live_headline(p, self._p95())}  ||  {self._line(p, rate)}\n")
            self.stream.flush()
        self._window.rotate()

    def close(self) -> None:
        self._drawn = 0  # the table stays on screen; output continues below it



def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def _per(value: float | None, unit: float = 1.0) -> str:
    return "-" if value is None else f"{value / unit:.1f}"


def _delivery_lines(summary: dict[str, Any]) -> list[str]:
    """Delivery tracking: the copies' outcomes, and the tracker's failures to look."""
    d = summary.get("delivery")
    if not d:
        return []
    lines = ["", f"delivery: {d['tracked']} copies tracked: delivered {d['delivered']}, "
                 f"corrupt {d['corrupt']}, duplicate {d['duplicate']}, lost {d['lost']}"]
    for via, t in (d.get("tracking") or {}).items():
        lines.append(f"  tracker {via}: {t['errors']} errors, {t['looked']} looks ok; first: "
                     f"{t.get('first_error')}"[:240])
    return lines


def format_summary(summary: dict[str, Any]) -> str:
    """The end-of-run text: the headline (verdict first), then the detail."""
    lines = [*headline_lines(headline(summary)), "",
        f"profile {summary.get('profile')}  target {(summary.get('target') or {}).get('name')}  "
        f"duration {summary.get('duration_s')} s  end: {summary.get('end')}",
        "",
        f"{'type':<6} {'name':<10} {'count':>8} {'fail':>6} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8}",
    ]
    for r in summary.get("requests", []):
        lines.append(f"{r['type']:<6} {r['name']:<10} {r['count']:>8} {r['failures']:>6} "
                     f"{_ms(r['p50_ms']):>8} {_ms(r['p95_ms']):>8} {_ms(r['p99_ms']):>8}")
    if not summary.get("requests"):
        lines.append("(no requests recorded)")
    for name, a in (summary.get("arrival") or {}).items():
        lines += ["", f"arrival {name}: intended {a['intended_per_s']}/s, achieved "
                  f"{a['achieved_per_s']}/s over {a['window_s']} s; late {a['late']}, "
                  f"dropped {a['dropped']}, interrupted {a.get('interrupted', 0)}, in flight "
                  f"max {a['in_flight_max']}/{a['max_in_flight']}"]
        if a.get("achieved_percent") is not None:
            lines.append(f"  completed {a['achieved_percent']}% of the {a['intended']} sessions "
                         f"due in the window ({a.get('due_per_s')}/s due)")
    lines += _delivery_lines(summary)
    errors = summary.get("errors") or []
    if errors:
        lines += ["", "most frequent failures:"]
        lines += [f"  {e['count']:>6} x {e['type']} {e['name']}: "
                  f"{(e.get('cause') or e['error'])[:120]}"
                  for e in sorted(errors, key=lambda e: -e["count"])[:8]]
    held = {name: r for name, r in (summary.get("target_resources") or {}).items()
            if r.get("connections_max")}
    if held:
        lines += ["", f"{'target (monitored)':<28} {'conns':>7} {'procs':>6} {'fds':>7} "
                      f"{'PSS MiB':>8}   per connection: {'PSS KiB':>8} {'fds':>5} {'procs':>5}"]
        for name, r in held.items():
            per = r.get("per_connection") or {}
            pss = r.get("pss_bytes_max")
            lines.append(
                f"{name[:28]:<28} {r['connections_max']:>7} {r.get('processes_max', '-'):>6} "
                f"{r.get('open_fds_max', '-'):>7} "
                f"{'-' if pss is None else f'{pss / 2**20:.0f}':>8}   "
                f"{'':>16}{_per(per.get('pss_bytes'), 1024):>8} {_per(per.get('open_fds')):>5} "
                f"{_per(per.get('processes')):>5}")
        lines += [f"  {name}: {key} per connection suspect: {why}"
                  for name, r in held.items()
                  for key, why in (r.get("per_connection_suspect") or {}).items()]
    http = summary.get("http") or {}
    if http.get("peak_sessions"):
        while_open = (f", {http['held_connections_mean']} on average while all sessions were "
                      f"open (max {http['held_connections_max']})"
                      if "held_connections_max" in http else "")
        lines += ["", f"HTTP: {http['peak_sessions']} sessions at the peak on "
                      f"{http['peak_connections']} connections at the peak{while_open}; "
                      f"TIME_WAIT peak {http['time_wait_peak']}"]
    lines += format_saturation(summary) + format_workers(summary)
    for e in summary.get("user_errors") or []:
        lines.append(f"  user error x{e['count']}: {e['error'][:160]}")
    if summary.get("skipped_lines"):
        first = (summary.get("skipped") or [{}])[0]
        lines += ["", f"skipped {summary['skipped_lines']} lines of the stream that are not "
                      f"records (first: line {first.get('line')}, {first.get('why')})"]
    # failure texts and causes are servers' words: no control character reaches the terminal
    return printable("\n".join(lines), keep_newlines=True)
