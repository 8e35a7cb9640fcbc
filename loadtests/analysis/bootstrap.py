"""Bootstrap intervals for the difference between two runs (pure Python, seeded).

- Means of per-second samples (rates, sessions, resources): a circular block bootstrap. Seconds
  next to each other are correlated (a slow second is followed by a slow second), so blocks of
  L = max(1, round(n^(1/3))) consecutive seconds are resampled instead of single seconds; each
  run is resampled independently and the statistic is the difference of the two means.
- Percentiles of request latencies: a bootstrap over requests that keeps them in the second
  they started: blocks of consecutive seconds are resampled as above and the percentile is taken
  over all requests of the drawn seconds. Requests of the same second share the machine's state
  (a stall delays all of them); resampling them one by one would make intervals far too narrow
  (two runs of the same settings came out "different"). Steps with more than `cap` requests are
  subsampled uniformly first.
- `quantile_draws` is the plain bootstrap over independent values, done exactly: the k-th
  smallest of n values drawn with replacement from the sorted sample x(1..n) is x(floor(U*n)+1)
  with U ~ Beta(k, n-k+1), so one Beta draw per resample gives the resampled percentile.
The interval is the percentile interval (2.5 %, 97.5 % by default) of the resampled
differences, absolute and relative to run A. Resamples that hold no value at all (only empty
seconds drawn) are drawn again, never counted as NaN; draws that are not finite are left out,
and with too few left there is no interval (`diff_interval` gives None). A percentile interval
of a skewed statistic can miss its own estimate (the median of ~40 requests jumps between a
few values): it is then widened to reach the estimate, so an interval is always ordered and
contains its estimate.
- `proportion_diff_interval`: the difference of two proportions (error rates, lost sessions)
  in percentage points, by Newcombe's method (the Wilson score intervals of each combined): no
  resampling, sound at 0 % and 100 %, ordered and containing its estimate.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MIN_DRAWS", "Interval", "block_mean_draws", "block_quantile_draws",
           "diff_interval", "proportion_diff_interval", "quantile_draws"]

MIN_DRAWS = 20
"""Finite resampled differences needed for an interval."""


@dataclass(frozen=True)
class Interval:
    """A difference B - A: point estimate and interval, absolute and in % of A (None when A
    is 0)."""

    diff: float
    low: float
    high: float
    percent: float | None
    percent_low: float | None
    percent_high: float | None

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def block_mean_draws(values: Sequence[float], resamples: int, rng: random.Random) -> list[float]:
    """Means of `resamples` circular-block resamples of a per-second series."""
    n = len(values)
    if n == 0:
        return [math.nan] * resamples
    length = max(1, round(n ** (1 / 3)))
    blocks = math.ceil(n / length)
    doubled = list(values) + list(values[:length])
    sums = [sum(doubled[i:i + length]) for i in range(n)]
    scale = 1 / (blocks * length)
    return [sum(sums[rng.randrange(n)] for _ in range(blocks)) * scale
            for _ in range(resamples)]


def quantile_draws(sorted_values: Sequence[float], q: float, resamples: int,
                   rng: random.Random) -> list[float]:
    """Nearest-rank q-percentiles (q in 0..100) of `resamples` bootstrap resamples of a sorted
    sample, drawn exactly through the Beta distribution of the order statistic."""
    n = len(sorted_values)
    if n == 0:
        return [math.nan] * resamples
    k = max(1, math.ceil(q / 100 * n))
    return [sorted_values[min(n - 1, int(rng.betavariate(k, n - k + 1) * n))]
            for _ in range(resamples)]


def block_quantile_draws(per_second: Sequence[Sequence[float]], qs: Sequence[float],
                         resamples: int, rng: random.Random,
                         cap: int = 3000) -> dict[float, list[float]]:
    """Nearest-rank percentiles `qs` of `resamples` circular-block resamples of seconds, each
    second holding the latencies of the requests that started in it."""
    total = sum(len(s) for s in per_second)
    if total > cap:
        keep = cap / total
        per_second = [[v for v in s if rng.random() < keep] for s in per_second]
    seconds = [sorted(s) for s in per_second]
    n = len(seconds)
    out: dict[float, list[float]] = {q: [] for q in qs}
    if n == 0 or not any(seconds):
        return {q: [math.nan] * resamples for q in qs}
    length = max(1, round(n ** (1 / 3)))
    blocks = math.ceil(n / length)
    attempts = 0
    while len(out[qs[0]]) < resamples and attempts < 50 * resamples:
        attempts += 1
        pooled: list[float] = []
        for _ in range(blocks):
            start = rng.randrange(n)
            for i in range(start, start + length):
                pooled += seconds[i % n]
        if not pooled:
            continue  # only empty seconds drawn: no percentile; draw again
        pooled.sort()
        m = len(pooled)
        for q in qs:
            out[q].append(pooled[max(1, math.ceil(q / 100 * m)) - 1])
    return out


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    pos = q * (len(values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def diff_interval(a: float, b: float, draws_a: Sequence[float], draws_b: Sequence[float],
                  level: float = 0.95) -> Interval | None:
    """Interval of B - A from lists of independent resampled statistics (paired in order,
    the shorter list deciding); None with fewer than MIN_DRAWS finite pairs."""
    tail = (1 - level) / 2
    pairs = [(x, y) for x, y in zip(draws_a, draws_b, strict=False)
             if math.isfinite(x) and math.isfinite(y)]
    if len(pairs) < MIN_DRAWS or not (math.isfinite(a) and math.isfinite(b)):
        return None
    diff = b - a
    diffs = [y - x for x, y in pairs]
    low, high = min(_pct(diffs, tail), diff), max(_pct(diffs, 1 - tail), diff)
    if a == 0 or any(x == 0 for x, _ in pairs):
        return Interval(diff, low, high, None, None, None)
    rel = [100 * (y - x) / x for x, y in pairs]
    percent = 100 * diff / a
    return Interval(diff, low, high, percent, min(_pct(rel, tail), percent),
                    max(_pct(rel, 1 - tail), percent))


def _wilson(k: int, n: int, z: float) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion_diff_interval(ka: int, na: int, kb: int, nb: int,
                             level: float = 0.95) -> Interval | None:
    """B's proportion kb/nb minus A's ka/na, in percentage points (Newcombe's hybrid score
    interval); None when a run has no trials. `percent` is the change relative to A's
    proportion when that is not 0."""
    if na <= 0 or nb <= 0:
        return None
    z = statistics.NormalDist().inv_cdf(1 - (1 - level) / 2)
    pa, pb = ka / na, kb / nb
    la, ua = _wilson(ka, na, z)
    lb, ub = _wilson(kb, nb, z)
    diff = pb - pa
    low = diff - math.sqrt((pb - lb) ** 2 + (ua - pa) ** 2)
    high = diff + math.sqrt((ub - pb) ** 2 + (pa - la) ** 2)
    low, high = min(low, diff), max(high, diff)
    return Interval(100 * diff, 100 * low, 100 * high, None, None, None)
