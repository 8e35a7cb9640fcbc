"""Timed protocol steps: what a client session hands back for each command it sent."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = ["Step", "StepRecorder"]

T = TypeVar("T")


@dataclass(slots=True)
class Step:
    """One command or exchange: `protocol` (SMTP, DNS...), `name` (CONNECT, MX...), when it
    started (wall clock, seconds), how long it took (ms), bytes involved, and the error if any."""

    protocol: str
    name: str
    started: float
    ms: float
    length: int = 0
    error: BaseException | None = None


@dataclass(slots=True)
class StepRecorder:
    """Collects the steps of one session; `await rec.step("EHLO", smtp.ehlo())` times one."""

    protocol: str
    steps: list[Step] = field(default_factory=list)

    async def step(self, name: str, action: Awaitable[T], length: int = 0) -> T:
        started = time.time()
        t0 = time.perf_counter()
        try:
            result = await action
        except Exception as exc:
            self.steps.append(
                Step(self.protocol, name, started, (time.perf_counter() - t0) * 1000, length, exc)
            )
            raise
        self.steps.append(
            Step(self.protocol, name, started, (time.perf_counter() - t0) * 1000, length)
        )
        return result

    @property
    def failed(self) -> bool:
        return any(s.error is not None for s in self.steps)
