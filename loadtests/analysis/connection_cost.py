"""What each held connection costs the target: a least-squares line through the samples.

For one monitored group, every sample gives the connections held to its endpoints (x) and its
resources (y: memory, open fds, processes, threads). The cost per connection is the slope of
the line fitted through all samples, with its standard error and r². Subtracting the first
sample instead (the older estimate) reads ~0 for a server that kept its memory from an
earlier run (nginx reuses it), and misreads a run whose first sample already held connections.

The baseline is called suspect (`per_connection_suspect`, one reason per resource) when
- the fit is poor (r² < `MIN_R2`): the resource did not follow the connections — memory kept
  from before the run (a warm server), or another load on the target;
- the first sample lies well above the line (by more than 3 residual standard deviations and
  10 % of the growth the line predicts over the run): the run started on memory already grown.
A resource that did not change at all has slope 0 and no r² (nothing to fit, nothing suspect).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MIN_CONNECTIONS", "MIN_R2", "Fit", "connection_cost", "line_fit"]

MIN_CONNECTIONS = 50
"""Connections the samples must span for a cost per connection (fewer: the process's own
growth is the larger part)."""

MIN_R2 = 0.5
"""Below this r², the resource did not follow the connections."""


@dataclass(frozen=True)
class Fit:
    """y = intercept + slope * x over `samples` points; `r2` None when y never changed."""

    slope: float
    intercept: float
    stderr: float
    r2: float | None
    samples: int
    residual_sd: float

    def as_dict(self, digits: int = 3) -> dict[str, Any]:
        return {"slope": round(self.slope, digits), "intercept": round(self.intercept, digits),
                "stderr": round(self.stderr, digits),
                "r2": None if self.r2 is None else round(self.r2, 4), "samples": self.samples}


def line_fit(xs: Sequence[float], ys: Sequence[float]) -> Fit | None:
    """The least-squares line through (xs, ys); None with fewer than 3 points or x constant."""
    n = len(xs)
    if n < 3:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    syy = sum((y - my) ** 2 for y in ys)
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_res = max(0.0, syy - slope * sxy)
    residual_sd = math.sqrt(ss_res / (n - 2)) if n > 2 else 0.0
    return Fit(slope, intercept, residual_sd / math.sqrt(sxx),
               None if syy == 0 else 1 - ss_res / syy, n, residual_sd)


def _suspect(fit: Fit, xs: Sequence[float], ys: Sequence[float]) -> str | None:
    if fit.r2 is not None and fit.r2 < MIN_R2:
        return (f"did not follow the connections held (r² {fit.r2:.2f}): a warm baseline "
                "(kept from an earlier run) or another load; restart the target for a clean "
                "cost per connection")
    above = ys[0] - (fit.intercept + fit.slope * xs[0])
    growth = abs(fit.slope) * (max(xs) - min(xs))
    if above > 3 * fit.residual_sd and above > 0.1 * growth and above > 0:
        return (f"the first sample was {above:,.0f} above the fitted line: the run started on "
                "a baseline already grown (warm server?)")
    return None


def connection_cost(points: Sequence[tuple[float, dict[str, Any]]], keys: Sequence[str]
                    ) -> dict[str, Any]:
    """From (connections held, resources) per sample: `per_connection` (slope per resource),
    `per_connection_fit` (the fits) and, when any, `per_connection_suspect` (reasons). Empty
    when the samples span fewer than MIN_CONNECTIONS connections."""
    held = [x for x, _ in points]
    if not held or max(held) - min(held) < MIN_CONNECTIONS:
        return {}
    per: dict[str, float] = {}
    fits: dict[str, dict[str, Any]] = {}
    suspect: dict[str, str] = {}
    for key in keys:
        pairs = [(x, v[key]) for x, v in points if isinstance(v.get(key), int | float)]
        xs, ys = [float(x) for x, _ in pairs], [float(y) for _, y in pairs]
        fit = line_fit(xs, ys)
        if fit is None:
            continue
        per[key] = round(fit.slope, 1)
        fits[key] = fit.as_dict()
        reason = _suspect(fit, xs, ys)
        if reason:
            suspect[key] = reason
    out: dict[str, Any] = {"per_connection": per, "per_connection_fit": fits}
    if suspect:
        out["per_connection_suspect"] = suspect
    return out
