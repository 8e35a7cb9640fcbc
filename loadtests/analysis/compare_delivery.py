"""Delivery in a comparison of two runs (loadtests.analysis.compare): the delivery latency
percentiles of the copies delivered (bootstrap over copies, resampled by blocks of the second
they were found in), the delivery queue's size per sampled queue (mean of the per-second
samples with a block bootstrap; the peak as a single value), and the copies lost or corrupt
(single values). Runs that did not track delivery add no rows.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

from loadtests.analysis.bootstrap import (
    Interval,
    block_mean_draws,
    block_quantile_draws,
    diff_interval,
)
from loadtests.analysis.compare_outcomes import one_sided_row
from loadtests.analysis.stream import RunRecords
from loadtests.analysis.summary import percentile

__all__ = ["delivery_rows"]

Row = Callable[..., dict[str, Any]]
"""compare.py's `_row(group, name, a, b, interval, min_effect, method, min_abs=0)`."""

_QS = (50, 95, 99)
MIN_COPIES = 20
"""Delivered copies each run needs for latency intervals."""


def _latency_seconds(run: RunRecords) -> list[list[float]]:
    """Delivery latencies (s) of the delivered copies, by the second they were found in."""
    done = [d for d in run.deliveries if d.outcome == "delivered" and d.latency_s is not None]
    if not done:
        return []
    first = min(d.ts for d in done)
    out: list[list[float]] = [[] for _ in range(math.floor(max(d.ts for d in done) - first) + 1)]
    for d in done:
        out[math.floor(d.ts - first)].append(float(d.latency_s or 0.0))
    return out


def _queue_series(run: RunRecords) -> dict[str, list[float]]:
    """Per queue (source and name, and their total), its size at each sample."""
    out: dict[str, list[float]] = {}
    for q in run.queues:
        for name, n in {**q.counts, "total": sum(q.counts.values())}.items():
            out.setdefault(f"{q.source} queue {name}", []).append(float(n))
    return out


def _latency_rows(a: RunRecords, b: RunRecords, row: Row, resamples: int, rng: random.Random,
                  min_effect: float) -> list[dict[str, Any]]:
    sa, sb = _latency_seconds(a), _latency_seconds(b)
    all_a = sorted(v for s in sa for v in s)
    all_b = sorted(v for s in sb for v in s)
    if not all_a and not all_b:
        return []
    if not all_a or not all_b:
        return [one_sided_row("delivery", f"delivery latency p{q} s", percentile(all_a, q),
                              percentile(all_b, q), "present in one run only") for q in _QS]
    few = min(len(all_a), len(all_b)) < MIN_COPIES
    draws_a = {} if few else block_quantile_draws(sa, _QS, resamples, rng)
    draws_b = {} if few else block_quantile_draws(sb, _QS, resamples, rng)
    rows = []
    for q in _QS:
        va, vb = percentile(all_a, q) or 0.0, percentile(all_b, q) or 0.0
        iv: Interval | None = None if few else diff_interval(va, vb, draws_a[q], draws_b[q])
        rows.append(row("delivery", f"delivery latency p{q} s", va, vb, iv, min_effect,
                        "too few copies" if few else
                        "bootstrap over copies by blocks of seconds", 0.001))
    return rows


def _queue_rows(a: RunRecords, b: RunRecords, row: Row, resamples: int, rng: random.Random,
                min_effect: float) -> list[dict[str, Any]]:
    rows = []
    qa, qb = _queue_series(a), _queue_series(b)
    for name in sorted(set(qa) | set(qb)):
        xa, xb = qa.get(name, []), qb.get(name, [])
        if not xa or not xb:
            present = xa or xb
            rows.append(one_sided_row("delivery", f"{name} (mean)",
                                      sum(present) / len(present) if xa else None,
                                      sum(present) / len(present) if xb else None,
                                      "present in one run only"))
            continue
        ma, mb = sum(xa) / len(xa), sum(xb) / len(xb)
        iv = diff_interval(ma, mb, block_mean_draws(xa, resamples, rng),
                           block_mean_draws(xb, resamples, rng))
        rows.append(row("delivery", f"{name} (mean)", ma, mb, iv, min_effect,
                        "block bootstrap over per-second samples"))
        rows.append(row("delivery", f"{name} (peak)", max(xa), max(xb), None, min_effect,
                        "single value"))
    return rows


def delivery_rows(a: RunRecords, b: RunRecords, row: Row, resamples: int, rng: random.Random,
                  min_effect: float) -> list[dict[str, Any]]:
    """The delivery rows of a comparison (none when neither run tracked delivery)."""
    if not (a.deliveries or b.deliveries or a.queues or b.queues):
        return []
    rows = _latency_rows(a, b, row, resamples, rng, min_effect)
    rows += _queue_rows(a, b, row, resamples, rng, min_effect)
    for outcome in ("lost", "corrupt"):
        na = sum(d.outcome == outcome for d in a.deliveries)
        nb = sum(d.outcome == outcome for d in b.deliveries)
        if na or nb:
            rows.append(row("delivery", f"delivery copies {outcome}", float(na), float(nb),
                            None, min_effect, "single value"))
    return rows
