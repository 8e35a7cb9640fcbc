"""Timed protocol steps: what a client session hands back for each command it sent."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from loadtests.clients.errors import redact

__all__ = ["Step", "StepRecorder"]

T = TypeVar("T")


@dataclass(slots=True)
class Step:
    """One command or exchange: `protocol` (SMTP, DNS...), `name` (CONNECT, MX...), when it
    started (wall clock, seconds), how long it took (ms), bytes involved, the error if any, and
    what the step learnt (`info`: a TLS step's protocol version, cipher and resumption)."""

    protocol: str
    name: str
    started: float
    ms: float
    length: int = 0
    error: BaseException | None = None
    info: dict[str, Any] | None = None  # e.g. a TLS step's version and cipher


@dataclass(slots=True)
class StepRecorder:
    """Collects the steps of one session; `await rec.step("EHLO", smtp.ehlo())` times one.

    `on_step`, when given, also receives each step as soon as it ends — long sessions (an IMAP
    IDLE held for hours) report their steps while they last, not only when they end.
    `length` may be a function of the step's result (e.g. `len` of a retrieved message);
    `info=True` keeps the result (a dict, e.g. a TLS handshake's version and cipher) as the
    step's `info`.
    `failures_only` keeps only failed steps in `steps` (every step still reaches `on_step`):
    a session of hours needs only its first error, not a list that grows with every step.
    `secrets` (a password, a base64 AUTH string) are blanked out of every failed step's error
    before it is kept or handed on, so no record, console line or report can show them.
    """

    protocol: str
    steps: list[Step] = field(default_factory=list)
    on_step: Callable[[Step], None] | None = None
    failures_only: bool = False
    secrets: tuple[str, ...] = ()

    async def step(self, name: str, action: Awaitable[T],
                   length: int | Callable[[T], int] = 0,
                   info: bool = False) -> T:
        started = time.time()
        t0 = time.perf_counter()
        try:
            result = await action
        except Exception as exc:
            size = 0 if callable(length) else length
            if self.secrets:
                redact(exc, self.secrets)
            self._add(Step(self.protocol, name, started, (time.perf_counter() - t0) * 1000,
                           size, exc))
            raise
        size = length(result) if callable(length) else length
        self._add(Step(self.protocol, name, started, (time.perf_counter() - t0) * 1000, size,
                       info=result if info and isinstance(result, dict) else None))
        return result

    def record(self, name: str, started: float, ms: float,
               info: dict[str, Any] | None = None) -> None:
        """A successful step timed by the caller (e.g. a handshake inside CONNECT)."""
        self._add(Step(self.protocol, name, started, ms, info=info))

    def _add(self, step: Step) -> None:
        if step.error is not None or not self.failures_only:
            self.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)

    @property
    def failed(self) -> bool:
        return any(s.error is not None for s in self.steps)
