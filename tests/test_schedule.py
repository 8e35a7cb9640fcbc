"""Arrival times of the open model (pure) and the pacer's counting of late and dropped sessions."""

import itertools
import random
import time

import gevent
import pytest

from loadtests.profiles import ArrivalSchedule
from loadtests.schedule.arrivals import arrival_offsets
from loadtests.schedule.pacing import ArrivalPacer


def first(n, gen):
    return [next(gen) for _ in range(n)]


def test_fixed_rate_is_evenly_spaced():
    assert first(5, arrival_offsets(50, "fixed", random.Random(1))) == [0, 0.02, 0.04, 0.06, 0.08]


def test_poisson_has_the_mean_rate_and_random_gaps():
    times = first(20001, arrival_offsets(50, "poisson", random.Random(7)))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert 20000 / times[-1] == pytest.approx(50, rel=0.03)
    assert max(gaps) > 5 * min(gaps)  # not evenly spaced
    again = first(100, arrival_offsets(50, "poisson", random.Random(7)))
    assert again == times[:100]  # seeded: reproducible


def test_rejects_bad_rate_and_process():
    with pytest.raises(ValueError):
        next(arrival_offsets(0, "fixed", random.Random()))
    with pytest.raises(ValueError):
        next(arrival_offsets(5, "bursty", random.Random()))


def _channel(pacer, hold):
    while True:
        pacer.take()
        gevent.sleep(hold)
        pacer.finish(True)


def test_pacer_counts_dropped_and_late_when_channels_are_busy():
    # 100/s for 1 s, 2 channels each busy 0.3 s: at most ~8 sessions can start
    schedule = ArrivalSchedule(kind="arrival", rate=100, max_in_flight=2, max_wait=0.1,
                               late_after=0.01)
    pacer = ArrivalPacer(schedule, random.Random(1))
    channels = [gevent.spawn(_channel, pacer, 0.3) for _ in range(2)]
    gevent.sleep(0.01)
    pacer.start(1.0)
    gevent.sleep(1.05)
    gevent.killall(channels)
    pacer.close()
    s = pacer.snapshot()
    assert s["intended"] == 100
    assert 4 <= s["started"] <= 10
    assert s["late"] >= 2  # the ones that waited for a channel to come free
    assert s["dropped"] == 100 - s["started"]
    assert s["in_flight_max"] == 2


def test_pacer_keeps_the_rate_with_free_channels():
    schedule = ArrivalSchedule(kind="arrival", rate=200, max_in_flight=5)
    pacer = ArrivalPacer(schedule, random.Random(1))
    channels = [gevent.spawn(_channel, pacer, 0.001) for _ in range(5)]
    gevent.sleep(0.01)
    t0 = time.monotonic()
    pacer.start(1.0)
    pacer._greenlet.join()
    elapsed = time.monotonic() - t0
    gevent.killall(channels)
    s = pacer.snapshot()
    assert s["intended"] == 200 and s["dropped"] == 0 and s["late"] == 0
    assert s["completed"] >= 195
    assert elapsed == pytest.approx(1.0, abs=0.1)


def test_a_token_handed_to_a_channel_stopped_before_taking_it_is_dropped():
    schedule = ArrivalSchedule(kind="arrival", rate=1, max_in_flight=1)
    pacer = ArrivalPacer(schedule, random.Random(1))
    pacer._run_callback = gevent.get_hub().loop.run_callback  # as start() sets it
    channel = gevent.spawn(pacer.take)
    gevent.sleep(0)  # the channel waits for a token
    channel.kill(block=False)  # its GreenletExit is queued on the hub first,
    pacer._offer((time.time(), time.monotonic()))  # then the hand-over of a token
    channel.join()
    gevent.sleep(0)  # the hand-over ran too
    s = pacer.snapshot()
    assert (s["dropped"], s["started"], s["idle"]) == (1, 0, 0)
