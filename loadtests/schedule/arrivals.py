"""When sessions start: pure arrival-time generators for the open model.

`arrival_offsets` yields each session's intended start, in seconds from the start of the
schedule: evenly spaced for `fixed`, exponential gaps for `poisson`. No I/O, no clock: the pacer
(`loadtests.schedule.pacing`) turns these into greenlet wake-ups and counts what could not start
on time.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["arrival_offsets"]


def arrival_offsets(rate: float, process: str, rng: random.Random, *, burst_share: float = 0.0,
                    burst_every: float = 60.0, burst_spread: float = 1.0) -> Iterator[float]:
    """Intended start offsets (s) for `rate` sessions/s on average; infinite, increasing.

    With `burst_share` > 0, that share of the sessions starts in bursts: at the top of every
    `burst_every` seconds, spread evenly over `burst_spread` seconds (mail clients set to check
    on the minute); the rest arrive as `process` at the remaining rate.
    """
    if rate <= 0:
        raise ValueError("rate must be positive")
    if not 0 <= burst_share <= 1:
        raise ValueError("burst_share must be between 0 and 1")
    if burst_share > 0:
        yield from _merge(_bursts(rate * burst_share, burst_every, burst_spread),
                          _base(rate * (1 - burst_share), process, rng))
        return
    yield from _base(rate, process, rng)


def _bursts(rate: float, every: float, spread: float) -> Iterator[float]:
    """`rate * every` sessions at the start of each period, evenly over `spread` seconds."""
    per_burst, carry, start = rate * every, 0.0, 0.0
    while True:
        carry += per_burst
        count = int(carry)
        carry -= count
        for i in range(count):
            yield start + spread * i / count
        start += every


def _merge(a: Iterator[float], b: Iterator[float]) -> Iterator[float]:
    x, y = next(a), next(b)
    while True:
        if x <= y:
            yield x
            x = next(a)
        else:
            yield y
            y = next(b)


def _base(rate: float, process: str, rng: random.Random) -> Iterator[float]:
    if rate <= 0:
        while True:  # everything comes in bursts
            yield float("inf")
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
