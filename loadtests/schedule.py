"""When sessions start: pure arrival-time generators for the open model.

`arrival_offsets` yields each session's intended start, in seconds from the start of the
schedule: evenly spaced for `fixed`, exponential gaps for `poisson`. No I/O, no clock: the pacer
(loadtests.pacing) turns these into greenlet wake-ups and counts what could not start on time.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["arrival_offsets"]


def arrival_offsets(rate: float, process: str, rng: random.Random) -> Iterator[float]:
    """Intended start offsets (s) for `rate` sessions/s; infinite, increasing."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    if process == "fixed":
        n = 0
        while True:
            yield n / rate
            n += 1
    elif process == "poisson":
        t = 0.0
        while True:
            yield t
            t += rng.expovariate(rate)
    else:
        raise ValueError(f"unknown arrival process {process!r}")
