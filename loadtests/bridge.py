"""The one place that knows both worlds: greenlets (Locust) calling coroutines (asyncio clients).

One asyncio event loop per process runs as a greenlet on the gevent hub, on a selector of our
own (`_HubSelector`) whose io watchers live on the hub, so sockets of both worlds are served by
the same epoll. A greenlet calls `run(coro)`: the coroutine is scheduled on the loop with
`call_soon`, the loop is woken through the selector's `wakeup()` (a hub callback, no system
call), and the greenlet waits on a gevent Waiter. (Plain `call_soon` does not wake a loop
sleeping in its selector; `call_soon_threadsafe` does, through a byte on the loop's self-pipe —
a send, a recv and a selector round per call; it is still used when the caller is on another
OS thread.) When the waiting greenlet is killed (Locust stopping a user raises GreenletExit in
it) or times out, the task is cancelled, and `run` waits a bounded moment for the coroutine's
own clean-up (an IMAP DONE, an SMTP QUIT) before letting the exception go on.

Event-loop passes (measured by bench/smtp_throughput): gevent's own GeventSelector restarts
every watcher and takes a `gevent.Timeout` on each asyncio pass, and asyncio runs a task step
one pass after the I/O that made it ready; here watchers stay started, a pass with work queued
does not go round the hub, and a pass runs what it made ready (`_HubLoop`). A native-thread
loop on uvloop, woken across threads once per session, measured no better (cross-thread
wake-ups and GIL hand-offs ate uvloop's gain).

Call `start()` once per process before users run (at init / test_start), never lazily from users.
It also makes the cyclic garbage collector's youngest generation larger (`_GC_YOUNG`): sessions
allocate tens of thousands of container objects a second, nearly all short-lived, and at Python's
default (a young collection every 700 net allocations) the collections took ~8% of the
generator's CPU in bench/smtp_throughput, ~3% at 10,000.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import gevent
import gevent.monkey
from gevent.event import Event
from gevent.hub import Waiter

# gevent's selector internals (the stubs leave them out): the selector below reuses them
from gevent.selectors import (  # type: ignore[attr-defined]
    _EV_READ,
    _EV_WRITE,
    _BaseSelectorImpl,
)

__all__ = ["BridgeNotStarted", "loop", "probe_lag", "run", "start", "stop"]

T = TypeVar("T")

_loop: asyncio.AbstractEventLoop | None = None
_greenlet: gevent.Greenlet | None = None
_stopped: Event | None = None


class _HubSelector(_BaseSelectorImpl):
    """A selector on the gevent hub whose watchers stay started while their file is registered.

    gevent's own `GeventSelector` starts every watcher at each `select` and stops the ready
    ones after it, and waits on an Event under a `gevent.Timeout`: per asyncio pass, a watcher
    restart per file and a timeout object. Here an io watcher is started once at `register`
    and stopped at `unregister`; its callback (run by the hub) only records the events and,
    once per hub iteration, wakes the loop greenlet if it waits in `select`. `select(0)` —
    asyncio has ready callbacks — returns what the hub has collected so far without a hub
    pass, so a loop with work to do does not go round the hub between its own callbacks; every
    `_YIELD_EVERY` such passes in a row it does let the hub (and the greenlets) run. A blocking
    `select(t)` parks the loop greenlet with one libev timer for `t`, or none when t is None.
    """

    def __init__(self) -> None:
        super().__init__()
        self.hub = gevent.get_hub()
        self._hub_loop = self.hub.loop
        self._watchers: dict[int, Any] = {}
        self._events: dict[int, int] = {}  # fd -> EVENT_READ | EVENT_WRITE seen since select
        self._parked: Any = None  # the loop greenlet while it waits in select
        self._wake_queued = False
        self._busy_passes = 0

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = super().register(fileobj, events, data)
        flags = (_EV_READ if events & selectors.EVENT_READ else 0) | (
            _EV_WRITE if events & selectors.EVENT_WRITE else 0)
        try:
            watcher = self._hub_loop.io(key.fd, flags)
        except OSError as exc:
            super().unregister(fileobj)
            raise ValueError("Invalid file descriptor") from exc
        watcher.priority = self._hub_loop.MAXPRI  # type: ignore[attr-defined]  # libev API
        watcher.start(self._on_io, key.fd, pass_events=True)
        self._watchers[key.fd] = watcher
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        key = super().unregister(fileobj)
        watcher = self._watchers.pop(key.fd, None)
        if watcher is not None:
            watcher.stop()
            watcher.close()
        self._events.pop(key.fd, None)
        return key

    def _on_io(self, events: int, fd: int) -> None:
        mask = (selectors.EVENT_READ if events & _EV_READ else 0) | (
            selectors.EVENT_WRITE if events & _EV_WRITE else 0)
        self._events[fd] = self._events.get(fd, 0) | mask
        self.wakeup()

    _ready: Event  # set by GeventSelector.__init__; private, so not in its stubs

    def wakeup(self) -> None:
        """Have a loop waiting in select come back (after this hub iteration's callbacks)."""
        if self._parked is not None and not self._wake_queued:
            self._wake_queued = True
            self._hub_loop.run_callback(self._wake)

    def _wake(self) -> None:
        self._wake_queued = False
        parked, self._parked = self._parked, None
        if parked is not None:
            parked.switch()

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if self._events:  # collected by the hub since the last pass: no need to wait
            self._busy_passes = 0
        elif timeout is not None and timeout <= 0:
            self._busy_passes += 1
            if self._busy_passes >= _YIELD_EVERY:  # let the hub and the greenlets run too
                self._busy_passes = 0
                self._park(None, yield_only=True)
        else:
            self._busy_passes = 0
            self._park(timeout)
        events, self._events = self._events, {}
        ready = []
        fd_to_key = self._fd_to_key
        for fd, mask in events.items():
            key = fd_to_key.get(fd)
            if key is not None and mask & key.events:
                ready.append((key, mask & key.events))
        return ready

    def _park(self, timeout: float | None, *, yield_only: bool = False) -> None:
        """Switch to the hub until an io callback or `wakeup` (or the timer) switches back."""
        self._parked = current = gevent.getcurrent()
        timer = None
        if yield_only:
            self._wake_queued = True
            self._hub_loop.run_callback(self._wake)
        elif timeout is not None:
            timer = self._hub_loop.timer(max(timeout, 0.0))
            timer.start(self._wake_from_timer, current)
        try:
            self.hub.switch()
        finally:
            self._parked = None
            if timer is not None:
                timer.stop()
                timer.close()

    def _wake_from_timer(self, parked: Any) -> None:
        if self._parked is parked:
            self._parked = None
            parked.switch()

    def close(self) -> None:
        for watcher in self._watchers.values():
            watcher.stop()
            watcher.close()
        self._watchers.clear()
        self._events.clear()
        super().close()


_YIELD_EVERY = 64  # asyncio passes with work in a row before the hub gets a turn anyway


class _HubLoop(asyncio.SelectorEventLoop):
    """asyncio's selector loop, running in the same pass what that pass made ready.

    A reply read in one pass resolves a future whose task step asyncio queues for the *next*
    pass: two passes per reply (the second one's select asks for nothing). Here, after the
    ordinary pass, the callbacks it queued run at once, up to `_DRAIN_ROUNDS` rounds, before
    the next select — timers and I/O wait at most that long.
    """

    def _run_once(self) -> None:
        super()._run_once()  # type: ignore[misc]  # asyncio's private pass, not in its stubs
        ready = self._ready  # type: ignore[attr-defined]
        rounds = 0
        while ready and rounds < _DRAIN_ROUNDS and not self._stopping:  # type: ignore[attr-defined]
            rounds += 1
            for _ in range(len(ready)):
                handle = ready.popleft()
                if not handle._cancelled:
                    handle._run()


_DRAIN_ROUNDS = 2
_GC_YOUNG = 10_000  # allocations between two collections of the youngest generation (700)
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
    young, *older = gc.get_threshold()
    if 0 < young < _GC_YOUNG:  # 0: collection disabled, by the caller
        gc.set_threshold(_GC_YOUNG, *older)
    selector = _HubSelector()
    new_loop = _HubLoop(selector)
    _selector = selector
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


def probe_lag(interval: float, record: Callable[[float], None]) -> Callable[[], None]:
    """Every `interval` s, `record(seconds)` how late a timer of the process loop fired (a
    `call_at` that re-arms itself, on the loop); returns what stops it."""
    ev_loop = loop()
    handle: list[asyncio.TimerHandle] = []

    def _fire(due: float) -> None:
        now = ev_loop.time()
        record(max(0.0, now - due))
        handle[:] = [ev_loop.call_at(now + interval, _fire, now + interval)]

    def _cancel() -> None:
        for timer in handle:
            timer.cancel()
        handle.clear()

    _schedule(ev_loop, lambda: _fire(ev_loop.time()))
    return lambda: _schedule(ev_loop, _cancel) if not ev_loop.is_closed() else None


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
