"""The one place that knows both worlds: greenlets (Locust) calling coroutines (asyncio clients).

One asyncio event loop per process runs as a greenlet on the gevent hub, its selector being
gevent's, so sockets of both worlds are served by the same hub. A greenlet calls `run(coro)`:
the coroutine is scheduled on the loop with `call_soon_threadsafe` (plain `call_soon` does not
wake a loop sleeping in its selector), and the greenlet waits on an AsyncResult. When the waiting
greenlet is killed (Locust stopping a user raises GreenletExit in it) or times out, the task is
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
import gevent.selectors
from gevent.event import AsyncResult, Event

__all__ = ["BridgeNotStarted", "loop", "run", "start", "stop"]

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_greenlet: gevent.Greenlet | None = None
_stopped: Event | None = None


class BridgeNotStarted(RuntimeError):
    """`run` was called before `start()` in this process."""


def start() -> asyncio.AbstractEventLoop:
    """Create this process's loop and run it as a greenlet; a second call returns the same loop."""
    global _loop, _greenlet, _stopped
    if _loop is not None and not _loop.is_closed():
        return _loop
    new_loop = asyncio.SelectorEventLoop(gevent.selectors.DefaultSelector())
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
    """
    ev_loop = loop()
    result: AsyncResult = AsyncResult()
    holder: dict[str, asyncio.Task[T]] = {}

    def _done(task: asyncio.Task[T]) -> None:
        if task.cancelled():
            result.set_exception(asyncio.CancelledError())
        elif task.exception() is not None:
            result.set_exception(task.exception())  # type: ignore[arg-type]
        else:
            result.set(task.result())

    def _start() -> None:
        task = ev_loop.create_task(coro)
        holder["task"] = task
        task.add_done_callback(_done)

    ev_loop.call_soon_threadsafe(_start)
    try:
        result.wait(timeout=timeout)
    except BaseException:  # GreenletExit from Locust stopping the user, gevent.Timeout, ...
        _cancel(ev_loop, holder, result, cleanup_grace)
        raise
    if not result.ready():
        _cancel(ev_loop, holder, result, cleanup_grace)
        raise TimeoutError(f"coroutine did not finish within {timeout} s")
    return result.get()


def _cancel(ev_loop: asyncio.AbstractEventLoop, holder: dict[str, asyncio.Task[Any]],
            result: AsyncResult, grace: float) -> None:
    def _cancel_task() -> None:
        task = holder.get("task")
        if task is not None:
            task.cancel()
        else:  # not started yet: _start is queued before us, so this cannot happen; be safe
            result.set_exception(asyncio.CancelledError())

    if ev_loop.is_closed():
        return
    ev_loop.call_soon_threadsafe(_cancel_task)
    if grace > 0:
        # wait for the coroutine's clean-up; a second kill of this greenlet cuts it short
        with contextlib.suppress(BaseException):
            result.wait(timeout=grace)


def stop(timeout: float = 5.0) -> None:
    """Cancel what is still running on the loop, stop it and close it (end of the process)."""
    global _loop, _greenlet
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
    _loop, _greenlet = None, None
