"""compare's intervals as properties (hypothesis): for any runs, every interval is ordered,
contains its estimate and holds no NaN."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from loadtests.analysis.bootstrap import block_quantile_draws, diff_interval
from loadtests.analysis.compare import compare_records
from loadtests.analysis.stream import RunRecords
from loadtests.stream import Req

_latency = st.floats(min_value=0.01, max_value=1e5, allow_nan=False)
_requests = st.lists(st.tuples(st.floats(min_value=0, max_value=300), _latency,
                               st.booleans()), min_size=0, max_size=80)


def _run(values: list[tuple[float, float, bool]]) -> tuple[RunRecords, dict]:
    reqs = sorted((Req(ts, "IMAP", "FETCH", ms, 0, ok, None if ok else "E: x")
                   for ts, ms, ok in values), key=lambda r: r.ts)
    return RunRecords(requests=reqs), {}


def _ordered(low: float | None, mid: float | None, high: float | None) -> bool:
    if low is None or high is None or mid is None:
        return low is None and high is None
    return not any(math.isnan(v) for v in (low, mid, high)) and low <= mid <= high


@settings(max_examples=60, deadline=None)
@given(_requests, _requests)
def test_every_interval_is_ordered_and_contains_its_estimate(a, b) -> None:
    result = compare_records(_run(a), _run(b), resamples=60, seed=3)
    for row in result["metrics"]:
        interval = row.get("interval")
        if interval:
            assert _ordered(interval[0], row["diff"], interval[1]), row
        percent = row.get("interval_percent")
        if percent:
            assert _ordered(percent[0], row["diff_percent"], percent[1]), row


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(_latency, max_size=3), min_size=1, max_size=200),
       st.integers(0, 2 ** 16))
def test_block_quantile_draws_never_nan_when_any_request(per_second, seed) -> None:
    draws = block_quantile_draws(per_second, (50, 95), 40, random.Random(seed))
    values = [v for s in per_second for v in s]
    for q in draws:
        if values:
            assert all(min(values) <= v <= max(values) for v in draws[q])


@settings(max_examples=100, deadline=None)
@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6),
       st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(math.nan)), min_size=1, max_size=50),
       st.data())
def test_diff_interval_ordered_and_contains_estimate(a, b, draws_a, data) -> None:
    draws_b = data.draw(st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(math.nan)),
                                 min_size=len(draws_a), max_size=len(draws_a)))
    iv = diff_interval(a, b, draws_a, draws_b)
    finite = sum(1 for x, y in zip(draws_a, draws_b, strict=True) if x == x and y == y)
    if iv is None:
        assert finite < 20
        return
    assert _ordered(iv.low, iv.diff, iv.high)
    if iv.percent is not None:
        assert _ordered(iv.percent_low, iv.percent, iv.percent_high)
