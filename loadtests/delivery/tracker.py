"""The delivery tracker (asyncio, no Locust): learns the messages the server accepted, polls
the mailboxes where copies are due, and hands a `delivery` record per finding to its sink;
`expire` turns what is still missing into `lost` records."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from loadtests.clients.errors import describe
from loadtests.clients.message import Verdict
from loadtests.delivery.ledger import Ledger
from loadtests.stream.records import Delivery, Sent

__all__ = ["Finder", "Tracker"]


class Finder(Protocol):
    async def poll(self, mailbox: str) -> list[tuple[Verdict, float]]:
        """The copies in `mailbox` not reported before: (verdict, when found)."""


class Tracker:
    def __init__(self, finder: Finder, sink: Callable[[Delivery], None], *, via: str = "pop3",
                 poll_interval: float = 0.5, concurrency: int = 20) -> None:
        self.finder = finder
        self.sink = sink
        self.ledger = Ledger(via=via)
        self.poll_interval = poll_interval
        self.concurrency = concurrency
        self.polls = self.poll_errors = 0
        self.last_error: str | None = None
        self.stopping = False

    def learn(self, sent: Sent) -> None:
        for record in self.ledger.learn(sent):
            self.sink(record)

    async def _poll(self, box: str, gate: asyncio.Semaphore) -> None:
        async with gate:
            self.polls += 1
            try:
                found = await self.finder.poll(box)
            except Exception as exc:  # counted; the mailbox is polled again next round
                self.poll_errors += 1
                self.last_error = str(describe(exc))
                return
        for verdict, ts in found:
            record = self.ledger.found(box, verdict, ts)
            if record is not None:
                self.sink(record)

    async def poll_once(self) -> None:
        """One round: every mailbox with copies due, `concurrency` at a time."""
        gate = asyncio.Semaphore(self.concurrency)
        await asyncio.gather(*(self._poll(box, gate) for box in self.ledger.mailboxes_due()))

    async def run(self) -> None:
        """Poll rounds until `stopping` is set."""
        while not self.stopping:
            started = time.monotonic()
            await self.poll_once()
            await asyncio.sleep(max(0.05, self.poll_interval - (time.monotonic() - started)))

    def expire(self) -> int:
        """Every copy still missing is lost; returns how many."""
        lost = self.ledger.expire(time.time())
        for record in lost:
            self.sink(record)
        return len(lost)
