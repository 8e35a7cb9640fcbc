"""Running a coroutine from a test. The test process is gevent-patched (conftest.py) and the
bridge's asyncio loop, once a test has started it, counts as running in this thread, so
`asyncio.run` fails after it: every test runs its coroutines on the bridge instead."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from loadtests import bridge

T = TypeVar("T")


def run_coro(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    bridge.start()
    return bridge.run(coro, timeout=timeout)
