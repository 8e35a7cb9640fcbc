"""Two runs side by side: is B different from A, and by how much?

What is compared (B - A, in % of A):
- what went wrong, always (loadtests.analysis.compare_outcomes): the error rate of every step
  and of all requests with the failure counts ("0 → 1,500 failures"), per open-model scenario
  the sessions completed / dropped / interrupted / late in % of those due and the achieved
  rate, and the QoS verdicts (the summary's, else evaluated from the stream);
- ceiling (ramp runs, from `summary.json`): a single number per run, so no bootstrap. Its
  uncertainty is the ramp's resolution: the true ceiling lies between the last step held and
  the users of the step that failed (`failed_step`), so the difference lies in
  [low_B - high_A, high_B - low_A]. The change is significant when that interval excludes 0;
  without the next step it is reported as "no interval: single value".
- throughput: per second of the load window, successful sessions and operations per protocol
  (and failed ones when any failed); the mean with a circular block bootstrap over the
  per-second samples; a rate seen in one run only is 0 per second in the other;
- concurrent sessions per protocol (ticks) and the target's open fds, threads, processes and RSS
  per monitored group (samples; the resources of loadtests.monitor.resources marked
  `compared`): means over the load window, block bootstrap likewise; their
  peaks are shown as single values, without an interval;
- latency p50/p95/p99 per step, of the successful requests (a failure's time says nothing of
  the server's speed: a run whose sessions all fail fast is not "faster"): bootstrap over
  requests, resampled by blocks of seconds (see loadtests.analysis.bootstrap; steps with more
  than 3,000 requests are subsampled). With fewer than `MIN_REQUESTS` (20) successful requests
  in a run the row says "too few requests" and has no interval.
- delivery, when tracked (loadtests.analysis.compare_delivery): delivery latency p50/p95/p99,
  the sampled delivery queues' mean and peak size, copies lost or corrupt.
A metric found in one run only is a row that says "present only in A/B", never dropped. A run
without any request (a header-only stream) makes the comparison "not comparable" (`comparable`
false, `significant` null; `mailswarm compare` exits 2), never "no significant change".
Each resampling uses `resamples` draws (2,000 by default) from a generator seeded with `seed`,
so the same inputs give the same output. A difference is *significant* when its 95 % interval
excludes 0 and its size reaches `min_effect` % of A (25 % by default; 1 unit when A is 0). The
intervals come from within each run and cannot see run-to-run variation: two runs of the same
settings on a shared 2-core machine differed by up to ~23 % in a median session latency whose
within-run interval excluded 0, so smaller changes are reported but not called significant; a
latency change must also reach `min_latency_ms` (1 ms: below that, scheduling jitter of the
generator itself decides). A tail percentile is judged only when each run has at least
`MIN_TAIL` (10) requests beyond it: p99 of 400 requests rests on its 4 slowest, which one
scheduling hiccup moves by a third (+31 % [+3 %, +127 %] was seen between two runs of the same
settings), so such rows show their interval but are not called significant.
The verdict lists the significant differences, or says "no significant change".
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadtests.analysis.bootstrap import (
    Interval,
    block_mean_draws,
    block_quantile_draws,
    diff_interval,
)
from loadtests.analysis.compare_delivery import delivery_rows
from loadtests.analysis.compare_outcomes import (
    arrival_rows,
    failure_rows,
    fmt_number,
    one_sided_row,
    qos_row,
)
from loadtests.analysis.stream import RunRecords, load_records, step_key
from loadtests.analysis.summary import SUMMARY_FILE, percentile, summarize_records
from loadtests.monitor.resources import resources_with

__all__ = ["compare_records", "compare_runs", "format_compare", "load_run", "per_second"]

MIN_TAIL = 10
"""Requests a run needs beyond a latency percentile for a change in it to be judged."""

MIN_REQUESTS = 20
"""Successful requests of a step each run needs for latency intervals at all."""


def load_run(path: Path) -> tuple[RunRecords, dict[str, Any]]:
    """Records and summary of a run folder (the summary computed from the same records when
    summary.json is absent)."""
    path = Path(path)
    run = load_records(path)
    file = path / SUMMARY_FILE
    try:
        summary = json.loads(file.read_text(encoding="utf-8")) if file.is_file() else None
    except (OSError, ValueError):
        summary = None  # unreadable: computed from the stream instead
    if not isinstance(summary, dict):
        summary = summarize_records(run)
    return run, summary


def per_second(run: RunRecords) -> dict[str, list[float]]:
    """Per-second samples over the load window, by metric name."""
    t0, t1 = run.t0, run.t_end
    n = max(1, math.floor(t1 - t0))
    counts: dict[str, list[float]] = defaultdict(lambda: [0.0] * n)
    for r in run.requests:
        s = math.floor(r.ts - t0)
        if 0 <= s < n:
            what = "sessions" if r.name == "session" else "operations"
            counts[f"{r.type} {what}{'' if r.ok else ' failed'}/s"][s] += 1
    out = dict(counts)
    for t in run.ticks:
        if t.phase == "running":
            for proto, c in t.sessions.items():
                out.setdefault(f"{proto} concurrent sessions", []).append(float(c.get("open", 0)))
    compared = resources_with("compared")
    for smp in run.samples:
        if not t0 <= float(smp.ts) <= t1:
            continue
        for group, g in (smp.targets or {}).items():
            for res in compared:
                if g.get(res.key) is not None:
                    out.setdefault(f"{group} {res.label}", []).append(g[res.key] * res.scale)
    return out


def _verdict(name: str, iv: Interval | None, min_effect: float,
             min_abs: float = 0.0) -> tuple[bool | None, str]:
    if iv is None:
        return None, f"{name}: no interval: single value"
    if iv.percent is not None:
        text = f"{name} {iv.percent:+.0f}% [{iv.percent_low:+.0f}%, {iv.percent_high:+.0f}%]"
        big = abs(iv.percent) >= min_effect
    else:
        text = f"{name} {iv.diff:+.3g} [{iv.low:+.3g}, {iv.high:+.3g}]"
        big = abs(iv.diff) >= 1
    return iv.excludes_zero and big and abs(iv.diff) >= min_abs, text


def _row(group: str, name: str, a: float | None, b: float | None, iv: Interval | None,
         min_effect: float, method: str, min_abs: float = 0.0) -> dict[str, Any]:
    significant, text = _verdict(name, iv, min_effect, min_abs)
    return {"group": group, "metric": name, "a": a, "b": b,
            "diff": None if a is None or b is None else b - a,
            "diff_percent": iv.percent if iv else (100 * (b - a) / a if a and b is not None
                                                   else None),
            "interval": [iv.low, iv.high] if iv else None,
            "interval_percent": [iv.percent_low, iv.percent_high]
            if iv and iv.percent is not None else None,
            "method": method, "significant": significant, "text": text}


def _ceiling_bracket(ceiling: dict[str, Any]) -> tuple[float, float | None]:
    """[sessions held at the last good step, users of the step that failed)."""
    failed = ceiling.get("failed_step")
    return float(ceiling["sessions"]), float(failed) if failed else None


def _compare_ceiling(a: tuple[RunRecords, dict[str, Any]], b: tuple[RunRecords, dict[str, Any]],
                     min_effect: float) -> list[dict[str, Any]]:
    ca, cb = a[1].get("ceiling"), b[1].get("ceiling")
    if not ca and not cb:
        return []
    if not (ca and cb and ca.get("sessions") is not None and cb.get("sessions") is not None):
        return [{"group": "ceiling", "metric": "ceiling", "a": (ca or {}).get("sessions"),
                 "b": (cb or {}).get("sessions"), "significant": None, "method": "single value",
                 "text": "ceiling: found in only one run"}]
    lo_a, hi_a = _ceiling_bracket(ca)
    lo_b, hi_b = _ceiling_bracket(cb)
    va, vb = float(ca["sessions"]), float(cb["sessions"])
    iv = None
    if va > 0 and (hi_a is not None or hi_b is not None):
        low = lo_b - hi_a if hi_a is not None else -math.inf
        high = hi_b - lo_a if hi_b is not None else math.inf
        iv = Interval(vb - va, low, high, 100 * (vb - va) / va, 100 * low / va,
                      100 * high / va)
    row = _row("ceiling", "ceiling", va, vb, iv, min_effect,
               "ramp resolution: [held step, next step)" if iv else "single value")
    row["cause"] = [ca.get("cause"), cb.get("cause")]
    return [row]


def _zeros(run: RunRecords) -> list[float]:
    """A per-second count that never happened in `run`: a zero for each second of its load."""
    return [0.0] * max(1, math.floor(run.t_end - run.t0))


def _per_second_rows(a: RunRecords, b: RunRecords, resamples: int, rng: random.Random,
                     min_effect: float) -> list[dict[str, Any]]:
    """Rates, concurrent sessions and resources: means with block-bootstrap intervals. A rate
    seen in one run only is 0 per second in the other; a sampled metric (sessions, resources)
    missing in a run is shown as present in the other only."""
    rows = []
    sa, sb = per_second(a), per_second(b)
    for name in sorted(set(sa) | set(sb)):
        group = "throughput" if name.endswith("/s") else (
            "sessions" if name.endswith("sessions") else "resources")
        xa, xb = sa.get(name, []), sb.get(name, [])
        if group == "throughput":
            xa, xb = xa or _zeros(a), xb or _zeros(b)
        if name.endswith("failed/s") and not any(xa) and not any(xb):
            continue
        if not xa or not xb:
            present = xa or xb
            mean = sum(present) / len(present)
            rows.append(one_sided_row(group, f"{name} (mean)", mean if xa else None,
                                      mean if xb else None, "present in one run only"))
            continue
        ma, mb = sum(xa) / len(xa), sum(xb) / len(xb)
        iv = diff_interval(ma, mb, block_mean_draws(xa, resamples, rng),
                           block_mean_draws(xb, resamples, rng))
        rows.append(_row(group, f"{name} (mean)", ma, mb, iv, min_effect,
                         "block bootstrap over per-second samples"))
        if group == "resources":
            rows.append(_row(group, f"{name} (peak)", max(xa), max(xb), None, min_effect,
                             "single value"))
    return rows


def _latency_rows(a: RunRecords, b: RunRecords, resamples: int, rng: random.Random,
                  min_effect: float, min_latency_ms: float) -> list[dict[str, Any]]:
    """p50/p95/p99 per step of the successful requests (a failure's time says nothing of the
    server's speed; failures have their own rows)."""
    rows = []
    lat_a, lat_b = _latencies(a), _latencies(b)
    qs = (50, 95, 99)
    for key in sorted(set(lat_a) | set(lat_b)):
        all_a = sorted(v for s in lat_a.get(key, []) for v in s)
        all_b = sorted(v for s in lat_b.get(key, []) for v in s)
        if not all_a or not all_b:
            for q in qs:
                rows.append(one_sided_row(
                    "latency", f"{key} p{q} ms", percentile(all_a, q), percentile(all_b, q),
                    "present in one run only (successful requests)"))
            continue
        few = min(len(all_a), len(all_b)) < MIN_REQUESTS
        if not few:
            draws_a = block_quantile_draws(lat_a[key], qs, resamples, rng)
            draws_b = block_quantile_draws(lat_b[key], qs, resamples, rng)
        for q in qs:
            va, vb = percentile(all_a, q), percentile(all_b, q)
            name = f"{key} p{q} ms"
            if few:
                row = _row("latency", name, va, vb, None, min_effect, "too few requests")
                row["significant"] = False
                row["text"] = (f"{name}: too few requests ({len(all_a)} in A, {len(all_b)} in "
                               f"B; needs {MIN_REQUESTS} in each): no interval")
                rows.append(row)
                continue
            iv = diff_interval(va or 0.0, vb or 0.0, draws_a[q], draws_b[q])
            row = _row("latency", name, va, vb, iv, min_effect,
                       "bootstrap over requests by blocks of seconds", min_latency_ms)
            tail = math.floor(min(len(all_a), len(all_b)) * (100 - q) / 100)
            if tail < MIN_TAIL:
                row["significant"] = False
                row["text"] += f" (not judged: {tail} requests beyond p{q}, needs {MIN_TAIL})"
            rows.append(row)
    return rows


def _empty(run: tuple[RunRecords, dict[str, Any]]) -> bool:
    """A run with nothing to compare: no request recorded and no ceiling (a header-only
    stream)."""
    return not run[0].requests and not run[1].get("ceiling")


def compare_records(a: tuple[RunRecords, dict[str, Any]], b: tuple[RunRecords, dict[str, Any]],
                    *, resamples: int = 2000, seed: int = 1, min_effect: float = 25.0,
                    min_latency_ms: float = 1.0) -> dict[str, Any]:
    """The comparison of two loaded runs (see the module docstring); pure."""
    rng = random.Random(seed)
    rows = _compare_ceiling(a, b, min_effect)
    rows += failure_rows(a[0], b[0])
    rows += arrival_rows(a[1], b[1])
    if a[0].requests or b[0].requests:
        rows.append(qos_row(a, b))
    rows += _per_second_rows(a[0], b[0], resamples, rng, min_effect)
    rows += _latency_rows(a[0], b[0], resamples, rng, min_effect, min_latency_ms)
    rows += delivery_rows(a[0], b[0], _row, resamples, rng, min_effect)
    significant = [r["text"] for r in rows if r.get("significant")]
    empty = [side for side, run in (("A", a), ("B", b)) if _empty(run)]
    if empty:
        verdict = (f"not comparable: {' and '.join(empty)} recorded no requests (a "
                   "header-only stream)")
    else:
        verdict = "; ".join(significant) if significant else "no significant change"
    return {"a": _describe(a), "b": _describe(b), "resamples": resamples, "seed": seed,
            "min_effect_percent": min_effect, "min_latency_ms": min_latency_ms,
            "metrics": rows, "comparable": not empty,
            "significant": bool(significant) if not empty else None,
            "verdict": verdict}


def _latencies(run: RunRecords) -> dict[str, list[list[float]]]:
    """Per step, per second of the run (from its first request), the latencies of the
    successful requests started then."""
    if not run.requests:
        return {}
    first = min(r.ts for r in run.requests)
    n = math.floor(max(r.ts for r in run.requests) - first) + 1
    out: dict[str, list[list[float]]] = {}
    for r in run.requests:
        if not r.ok:
            continue
        key = step_key(r.type, r.name)
        if key not in out:
            out[key] = [[] for _ in range(n)]
        out[key][math.floor(r.ts - first)].append(r.ms)
    return out


def _describe(run: tuple[RunRecords, dict[str, Any]]) -> dict[str, Any]:
    records, summary = run
    return {"profile": summary.get("profile"), "started": summary.get("started"),
            "duration_s": summary.get("duration_s"),
            "target": (summary.get("target") or {}).get("name"),
            "requests": len(records.requests), "end": summary.get("end"),
            "skipped_lines": len(records.skipped)}


def compare_runs(a: Path, b: Path, *, resamples: int = 2000, seed: int = 1,
                 min_effect: float = 25.0) -> dict[str, Any]:
    """Compare two run folders (A is the baseline)."""
    result = compare_records(load_run(a), load_run(b), resamples=resamples, seed=seed,
                             min_effect=min_effect)
    result["a"]["dir"], result["b"]["dir"] = str(a), str(b)
    return result


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return fmt_number(value)


def _change(r: dict[str, Any]) -> tuple[str, str]:
    """The change and interval columns of a row."""
    pct, ivp, iv = r.get("diff_percent"), r.get("interval_percent"), r.get("interval")
    if r.get("only_in"):
        return f"only {r['only_in']}", "-"
    if r.get("unit") == "points":
        return (f"{r['diff']:+.1f}pt", f"[{iv[0]:+.1f}, {iv[1]:+.1f}]pt" if iv else "-")
    change = f"{pct:+.1f}%" if pct is not None else _num(r.get("diff"))
    if ivp:
        return change, f"[{ivp[0]:+.1f}%, {ivp[1]:+.1f}%]"
    if iv:
        return change, f"[{_num(iv[0])}, {_num(iv[1])}]"
    return change, "single value" if r.get("method") == "single value" else "-"


def format_compare(result: dict[str, Any], rows: Sequence[dict[str, Any]] | None = None) -> str:
    """The comparison as a terminal table (with the counts behind each rate), then the
    verdict."""
    rows = result["metrics"] if rows is None else rows
    lines = [f"A: {result['a'].get('dir', result['a'].get('profile'))}",
             f"B: {result['b'].get('dir', result['b'].get('profile'))}",
             f"{'metric':<44} {'A':>10} {'B':>10} {'change':>8} {'95% interval':>18}  "
             f"significant"]
    for r in rows:
        change, interval = _change(r)
        sig = {True: "YES", False: "no", None: "-"}[r.get("significant")]
        detail = r.get("detail") or ("" if r.get("group") != "qos" else r["text"])
        lines.append(f"{r['metric'][:44]:<44} {_num(r.get('a')):>10} {_num(r.get('b')):>10} "
                     f"{change:>8} {interval:>18}  {sig:<3}"
                     f"{'  ' + detail if detail else ''}".rstrip())
    for side in ("a", "b"):
        skipped = result[side].get("skipped_lines")
        if skipped:
            lines.append(f"{side.upper()}: {skipped} lines of its stream were not records "
                         "(skipped)")
    lines += ["", f"verdict: {result['verdict']}"]
    return "\n".join(lines)
