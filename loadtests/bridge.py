"""The one place that knows both worlds: greenlets (Locust) calling coroutines (asyncio clients).

One asyncio event loop per process runs as a greenlet on the gevent hub, its selector being
gevent's, so sockets of both worlds are served by the same hub. A greenlet calls `run(coro)`:
the coroutine is scheduled on the loop with `call_soon` and the loop is woken by setting the
gevent selector's ready event, and the greenlet waits on a gevent Waiter. (Plain `call_soon` does
not wake a loop sleeping in its selector; `call_soon_threadsafe` does, through a byte on the
loop's self-pipe — a send, a recv and a selector round per call, which ends in setting that same
event; it is still used when the caller is on another OS thread.) When the waiting greenlet
is killed (Locust stopping a user raises GreenletExit in it) or times out, the task is
cancelled, and `run` waits a bounded moment for the coroutine's own clean-up (an IMAP DONE, an
SMTP QUIT) before letting the exception go on.

Call `start()` once per process before users run (at init / test_start), never lazily from users.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

import gevent
import gevent.monkey
import gevent.selectors
from gevent.event import Event
from gevent.hub import Waiter

__all__ = ["BridgeNotStarted", "loop", "run", "start", "stop"]

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_greenlet: gevent.Greenlet | None = None
_stopped: Event | None = None


class _HubSelector(gevent.selectors.GeventSelector):
    """gevent's selector, plus a cheap wake-up for callers in other greenlets of this thread."""

    _ready: Event  # set by GeventSelector.__init__; private, so not in its stubs

    def wakeup(self) -> None:
        self._ready.set()  # what select() waits on; the fd watchers set it too


_selector: _HubSelector | None = None
_native_thread_id = gevent.monkey.get_original("_thread", "get_ident")  # not the greenlet's
_loop_thread: int | None = None


_PENDING: Any = object()  # what _wait returns when the time ran out


class BridgeNotStarted(RuntimeError):
    """`run` was called before `start()` in this process."""


def start() -> asyncio.AbstractEventLoop:
    """Create this process's loop and run it as a greenlet; a second call returns the same loop."""
    global _loop, _greenlet, _stopped, _selector, _loop_thread
    if _loop is not None and not _loop.is_closed():
        return _loop
    _loop_thread = _native_thread_id()
    selector = _HubSelector()
    new_loop = asyncio.SelectorEventLoop(selector)
    _selector = selector if hasattr(selector, "_ready") else None  # else: the self-pipe
    done = Event()

    def _run() -> None:
        try:
            new_loop.run_forever()
        finally:
            done.set()

    _loop, _stopped = new_loop, done
    _greenlet = gevent.spawn(_run)
    gevent.sleep(0)  # let the loop enter run_forever before anyone schedules on it
    return new_loop


def loop() -> asyncio.AbstractEventLoop:
    if _loop is None or _loop.is_closed():
        raise BridgeNotStarted("loadtests.bridge.start() was not called in this process")
    return _loop


def run(coro: Coroutine[Any, Any, T], *, timeout: float | None = None,
        cleanup_grace: float = 2.0) -> T:
    """Run `coro` on the process loop and return its result (or raise its exception).

    `timeout` (seconds) cancels the task and raises TimeoutError in the caller. On any
    BaseException in the waiting greenlet the task is cancelled and given `cleanup_grace`
    seconds to finish its `finally` blocks.

    The caller waits on a bare gevent Waiter (the hub switches it back when the task is done):
    a greenlet parked there keeps ~0.8 KiB less of its C stack than in AsyncResult.wait, which
    counts with thousands of idle sessions.
    """
    ev_loop = loop()
    waiter: Waiter[asyncio.Task[T] | None] = Waiter()  # the finished task, or None: never started
    tasks: list[asyncio.Task[T]] = []
    notify = (waiter.hub.loop.run_callback if _native_thread_id() == _loop_thread
              else waiter.hub.loop.run_callback_threadsafe)

    def _done(task: asyncio.Task[T]) -> None:
        notify(waiter.switch, task)

    def _start() -> None:
        task = ev_loop.create_task(coro)
        tasks.append(task)
        task.add_done_callback(_done)

    _schedule(ev_loop, _start)
    try:
        task = _wait(waiter, timeout)
    except BaseException:  # GreenletExit from Locust stopping the user, gevent.Timeout, ...
        _cancel(ev_loop, tasks, waiter, notify, cleanup_grace)
        raise
    if task is _PENDING:
        _cancel(ev_loop, tasks, waiter, notify, cleanup_grace)
        raise TimeoutError(f"coroutine did not finish within {timeout} s")
    if task is None or task.cancelled():
        raise asyncio.CancelledError()
    return task.result()


def _wait(waiter: Waiter, timeout: float | None) -> Any:
    """What the waiter gets, or _PENDING after `timeout` seconds."""
    if timeout is None:
        return waiter.get()
    # False: leaves the block silently (documented by gevent; types-gevent's stub omits it)
    with gevent.Timeout(timeout, False):  # type: ignore[arg-type]
        return waiter.get()
    return _PENDING


def _schedule(ev_loop: asyncio.AbstractEventLoop, callback: Any) -> None:
    """Queue `callback` on the loop and wake it; callers are greenlets of the loop's thread."""
    selector = _selector
    if selector is not None and ev_loop is _loop and _native_thread_id() == _loop_thread:
        ev_loop.call_soon(callback)
        selector.wakeup()
    else:
        ev_loop.call_soon_threadsafe(callback)


def _cancel(ev_loop: asyncio.AbstractEventLoop, tasks: list[asyncio.Task[Any]],
            waiter: Waiter, notify: Any, grace: float) -> None:
    def _cancel_task() -> None:
        if tasks:
            tasks[0].cancel()
        else:  # not started yet: _start is queued before us, so this cannot happen; be safe
            notify(waiter.switch, None)

    if ev_loop.is_closed():
        return
    _schedule(ev_loop, _cancel_task)
    if grace > 0:
        # wait for the coroutine's clean-up; a second kill of this greenlet cuts it short
        with contextlib.suppress(BaseException):
            _wait(waiter, grace)


def stop(timeout: float = 5.0) -> None:
    """Cancel what is still running on the loop, stop it and close it (end of the process)."""
    global _loop, _greenlet, _selector
    if _loop is None or _loop.is_closed():
        return
    ev_loop = _loop

    def _shutdown() -> None:
        for task in asyncio.all_tasks(ev_loop):
            task.cancel()
        ev_loop.call_soon(ev_loop.stop)

    ev_loop.call_soon_threadsafe(_shutdown)
    if _stopped is not None:
        _stopped.wait(timeout=timeout)
    if _greenlet is not None and not _greenlet.dead:
        _greenlet.kill(block=True, timeout=1)
    if not ev_loop.is_running():
        ev_loop.close()
    _loop, _greenlet, _selector = None, None, None
