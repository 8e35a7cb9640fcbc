"""What a person sees in the terminal: a live progress line during a run, a summary table after."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from loadtests.profiles import ArrivalSchedule, Profile, RampSchedule
from loadtests.runner import Progress
from loadtests.units import format_duration

__all__ = ["ProgressPrinter", "describe_plan", "format_summary"]


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


class ProgressPrinter:
    """Called once a second with a Progress; rewrites one line on a terminal, else prints a line
    every `every` seconds (for logs and CI)."""

    def __init__(self, stream: TextIO = sys.stderr, every: int = 5) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.every = every
        self._last: Progress | None = None
        self._count = 0

    def __call__(self, p: Progress) -> None:
        prev, self._last = self._last, p
        self._count += 1
        dt = (p.elapsed - prev.elapsed) if prev and p.elapsed > prev.elapsed else 1.0
        rate = (p.sessions - prev.sessions) / dt if prev else 0.0
        parts = [f"{format_duration(p.elapsed):>6} / {format_duration(p.duration)}",
                 f"{p.phase:<8}", f"users {p.users}", f"sessions {rate:6.1f}/s",
                 f"requests {p.requests}", f"failures {p.failures}"]
        for name, sc in p.scenarios.items():
            parts.append(f"[{name}: in flight {sc['in_flight']}, late {sc['late']}, "
                         f"dropped {sc['dropped']}]")
        line = "  ".join(parts)
        if self.tty:
            self.stream.write("\r\033[K" + line)
            self.stream.flush()
        elif self._count % self.every == 0 or p.phase != "running":
            self.stream.write(line + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty and self._last is not None:
            self.stream.write("\n")
            self.stream.flush()


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
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
                  f"dropped {a['dropped']}, in flight max {a['in_flight_max']}"
                  f"/{a['max_in_flight']}"]
    errors = summary.get("errors") or []
    if errors:
        lines += ["", "most frequent failures:"]
        lines += [f"  {e['count']:>6} x {e['type']} {e['name']}: {e['error'][:120]}"
                  for e in sorted(errors, key=lambda e: -e["count"])[:8]]
    ceiling = summary.get("ceiling")
    if ceiling:
        lines += ["", f"ceiling: {ceiling['sessions']} {ceiling['protocol']} sessions (step "
                  f"{ceiling['step']} users; step {ceiling.get('failed_step', '-')} failed)",
                  f"cause: {ceiling['cause']}"]
        lines += [f"  - {e}" for e in ceiling["evidence"]]
    for e in summary.get("user_errors") or []:
        lines.append(f"  user error x{e['count']}: {e['error'][:160]}")
    return "\n".join(lines)
