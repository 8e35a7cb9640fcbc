"""The asyncio <-> gevent bridge: results, errors, cancellation when a user is stopped, shutdown."""

import asyncio
import gc
import subprocess
import sys
import textwrap
import time

import gevent
import gevent.monkey
import pytest
from locust import User, constant, task
from locust.env import Environment
from locust.event import Events

from loadtests import bridge


@pytest.fixture(autouse=True)
def _loop():
    bridge.start()
    yield


def test_start_is_idempotent():
    assert bridge.start() is bridge.start() is bridge.loop()


def test_start_makes_the_youngest_gc_generation_larger_unless_collection_is_off():
    saved = gc.get_threshold()
    try:
        for young, expected in ((700, bridge._GC_YOUNG), (50_000, 50_000), (0, 0)):
            bridge.stop()
            gc.set_threshold(young, 10, 10)
            bridge.start()
            assert gc.get_threshold() == (expected, 10, 10)
    finally:
        gc.set_threshold(*saved)


def test_returns_results_and_raises_the_coroutines_errors():
    async def double(x):
        await asyncio.sleep(0.01)
        return 2 * x

    async def fail():
        raise ConnectionResetError("peer went away")

    assert bridge.run(double(21)) == 42
    with pytest.raises(ConnectionResetError, match="peer went away"):
        bridge.run(fail())


def test_many_greenlets_share_the_loop():
    async def work(i):
        await asyncio.sleep(0.05)
        return i

    t0 = time.monotonic()
    jobs = [gevent.spawn(bridge.run, work(i)) for i in range(500)]
    gevent.joinall(jobs, timeout=10)
    assert sorted(j.value for j in jobs) == list(range(500))
    assert time.monotonic() - t0 < 2  # concurrent, not one after another


def test_killing_the_greenlet_cancels_the_task_and_runs_its_cleanup():
    seen = []

    async def session():
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            seen.append("cancelled")
            await asyncio.sleep(0.05)  # a clean-up that talks to the server (DONE, QUIT)
            seen.append("cleaned up")
            raise

    glet = gevent.spawn(bridge.run, session())
    gevent.sleep(0.1)
    t0 = time.monotonic()
    glet.kill(block=True, timeout=5)
    assert glet.dead
    assert seen == ["cancelled", "cleaned up"]
    assert time.monotonic() - t0 < 1


def test_timeout_cancels_the_task():
    seen = []

    async def slow():
        try:
            await asyncio.sleep(60)
        finally:
            seen.append("finally")

    with pytest.raises(TimeoutError):
        bridge.run(slow(), timeout=0.1)
    gevent.sleep(0.05)
    assert seen == ["finally"]


def test_stopping_a_locust_user_cancels_its_session():
    seen = []

    class Sleeper(User):
        wait_time = constant(0)

        @task
        def session(self):
            async def idle():
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    seen.append("cancelled")
                    raise
            bridge.run(idle())

    env = Environment(user_classes=[Sleeper], events=Events())
    runner = env.create_local_runner()
    runner.start(20, spawn_rate=1000, wait=False)
    gevent.sleep(0.5)
    assert runner.user_count == 20
    t0 = time.monotonic()
    runner.stop()
    runner.quit()
    assert time.monotonic() - t0 < 3
    assert seen.count("cancelled") == 20


def test_process_exits_promptly_with_sessions_still_open():
    script = textwrap.dedent("""
        from gevent import monkey; monkey.patch_all()
        import asyncio, gevent
        from loadtests import bridge
        bridge.start()
        for _ in range(50):
            gevent.spawn(bridge.run, asyncio.sleep(3600))
        gevent.sleep(0.2)
        bridge.stop()
        print("stopped")
    """)
    t0 = time.monotonic()
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stderr
    assert "stopped" in result.stdout
    assert time.monotonic() - t0 < 10


def test_a_waiting_greenlet_keeps_a_small_stack():
    # thousands of Locust users wait here for hours: the C stack greenlet saves for each one
    # is per-session memory (2,824 B waiting in AsyncResult.wait, 2,024 B on a bare Waiter)
    glet = gevent.spawn(bridge.run, asyncio.sleep(60))
    gevent.sleep(0.05)
    try:
        assert not glet.dead and 0 < glet._stack_saved < 2400
    finally:
        glet.kill(block=True, timeout=5)


def test_callers_on_another_os_thread_get_results_and_timeouts():
    out: list[object] = []

    async def work():
        await asyncio.sleep(0.05)
        return 42

    def in_thread():
        out.append(bridge.run(work(), timeout=5))
        try:
            bridge.run(asyncio.sleep(60), timeout=0.1)
        except TimeoutError:
            out.append("timeout")

    start_new_thread = gevent.monkey.get_original("_thread", "start_new_thread")
    start_new_thread(in_thread, ())
    deadline = time.monotonic() + 10
    while len(out) < 2 and time.monotonic() < deadline:
        gevent.sleep(0.05)
    assert out == [42, "timeout"]


def test_socket_readiness_wakes_the_loop_and_watchers_stay_started():
    # the selector keeps one started io watcher per registered file (no restart per pass)
    left, right = gevent.monkey.get_original("socket", "socketpair")()
    left.setblocking(False)
    try:
        async def read_twice():
            ev_loop = asyncio.get_running_loop()
            first = await ev_loop.sock_recv(left, 16)
            return first + await ev_loop.sock_recv(left, 16)

        glet = gevent.spawn(bridge.run, read_twice(), timeout=5)
        gevent.sleep(0.05)
        selector = bridge._selector
        assert selector is not None
        watchers = dict(selector._watchers)
        assert left.fileno() in watchers and watchers[left.fileno()].active
        right.send(b"ping")  # a plain socket: the hub sees it only through the loop's watcher
        gevent.sleep(0.05)
        right.send(b"pong")
        assert glet.get(timeout=5) == b"pingpong"
        assert left.fileno() not in selector._watchers  # unregistered: watcher stopped
    finally:
        left.close()
        right.close()


def test_a_busy_loop_does_not_starve_the_greenlets():
    spins = []

    async def busy():
        t_end = time.monotonic() + 0.3
        while time.monotonic() < t_end:
            await asyncio.sleep(0)  # always work ready: select(0) on every pass

    def count():
        while True:
            gevent.sleep(0)
            spins.append(1)

    counter = gevent.spawn(count)
    try:
        bridge.run(busy(), timeout=5)
    finally:
        counter.kill()
    assert len(spins) > 20


def test_loop_timers_fire_on_time():
    async def timed():
        t0 = time.monotonic()
        await asyncio.sleep(0.05)
        return time.monotonic() - t0

    took = bridge.run(timed(), timeout=5)
    assert 0.045 <= took < 0.5
