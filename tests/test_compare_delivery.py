"""`mailswarm compare` of runs that tracked delivery: delivery latency percentiles, the delivery
queue's mean and peak, lost copies — and no delivery rows for runs that did not track it."""

from __future__ import annotations

import random

from loadtests.analysis.compare import compare_records
from loadtests.analysis.stream import RunRecords
from loadtests.stream.records import Delivery, Queue, Req

T0 = 1_700_000_000.0


def run(latency: float, queue: int, lost: int = 0, seed: int = 0) -> RunRecords:
    rng = random.Random(seed)
    r = RunRecords()
    r.requests = [Req(T0 + i * 0.05, "SMTP", "DATA", 5.0 + rng.random(), 0, True)
                  for i in range(600)]
    r.deliveries = [Delivery(T0 + i * 0.05 + latency, f"<{i}>", "u@x", "delivered",
                             latency * (0.5 + rng.random())) for i in range(600)]
    r.deliveries += [Delivery(T0 + 40, f"<l{i}>", "u@x", "lost") for i in range(lost)]
    r.queues = [Queue(T0 + s, "postfix", {"incoming": queue + rng.randrange(3), "active": 1})
                for s in range(30)]
    return r


def rows(a: RunRecords, b: RunRecords) -> dict[str, dict]:
    result = compare_records((a, {}), (b, {}), resamples=300)
    return {r["metric"]: r for r in result["metrics"] if r["group"] == "delivery"}


def test_slower_delivery_and_a_longer_queue_are_significant() -> None:
    got = rows(run(0.2, 5), run(2.0, 200, lost=3, seed=1))
    for q in (50, 95, 99):
        assert got[f"delivery latency p{q} s"]["significant"] is True
        assert got[f"delivery latency p{q} s"]["b"] > got[f"delivery latency p{q} s"]["a"]
    total = got["postfix queue total (mean)"]
    assert total["significant"] is True and total["a"] < 10 < 200 < total["b"]
    assert got["postfix queue total (peak)"]["b"] >= 200
    assert (got["delivery copies lost"]["a"], got["delivery copies lost"]["b"]) == (0, 3)


def test_same_delivery_is_no_change_and_untracked_runs_add_no_rows() -> None:
    same = rows(run(0.5, 20, seed=2), run(0.5, 20, seed=3))
    assert not any(r["significant"] for r in same.values())
    plain_a, plain_b = run(0.5, 20), run(0.5, 20)
    for r in (plain_a, plain_b):
        r.deliveries, r.queues = [], []
    assert rows(plain_a, plain_b) == {}
