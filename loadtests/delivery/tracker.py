"""The delivery tracker (asyncio, no Locust): learns the messages the server accepted, finds
their copies — polling the mailboxes where copies are due (a `Finder`: POP3, maildir), or
letting a `Watcher` report what its standing sessions see (IMAP IDLE) — and hands a `delivery`
record per finding to its sink; `expire` turns what is still missing into `lost` records."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection
from typing import Protocol, runtime_checkable

from loadtests.clients.errors import describe
from loadtests.clients.message import Verdict
from loadtests.delivery.ledger import Ledger, mailbox_of
from loadtests.stream.records import Delivery, Sent, Tracking

__all__ = ["Finder", "Tracker", "Watcher"]


class Finder(Protocol):
    async def poll(self, mailbox: str) -> list[tuple[Verdict, float]]:
        """The copies in `mailbox` not reported before: (verdict, when found)."""


@runtime_checkable
class Watcher(Protocol):
    """Finds copies by itself (standing sessions) in a fixed set of mailboxes."""

    @property
    def mailboxes(self) -> Collection[str]:
        """The mailboxes watched (lower-case addresses)."""

    async def watch(self, found: Callable[[str, list[tuple[Verdict, float]]], None],
                    stopping: Callable[[], bool]) -> None:
        """Hand each mailbox's new copies to `found` until `stopping()`."""


class Tracker:
    """Copies of mail to a `Watcher`'s mailboxes only are expected (the others are counted in
    `ledger.unwatched`); a `Finder` is polled for every mailbox with copies due."""

    def __init__(self, finder: Finder | Watcher, sink: Callable[[Delivery], None], *,
                 via: str = "pop3", poll_interval: float = 0.5, concurrency: int = 20) -> None:
        self.finder = finder
        self.sink = sink
        watched = finder.mailboxes if isinstance(finder, Watcher) else None
        self.ledger = Ledger(via=via, watched=None if watched is None else
                             frozenset(mailbox_of(box) for box in watched))
        self.poll_interval = poll_interval
        self.concurrency = concurrency
        self.polls = self.poll_errors = 0
        self.first_error: str | None = None
        self.last_error: str | None = None
        self.stopping = False

    def learn(self, sent: Sent) -> None:
        for record in self.ledger.learn(sent):
            self.sink(record)

    def found(self, box: str, copies: list[tuple[Verdict, float]]) -> None:
        """Copies found in mailbox `box`: their records to the sink."""
        box = mailbox_of(box)
        for verdict, ts in copies:
            record = self.ledger.found(box, verdict, ts)
            if record is not None:
                self.sink(record)

    async def _poll(self, box: str, gate: asyncio.Semaphore) -> None:
        assert not isinstance(self.finder, Watcher)
        async with gate:
            self.polls += 1
            try:
                found = await self.finder.poll(box)
            except Exception as exc:  # counted; the mailbox is polled again next round
                self.poll_errors += 1
                self.last_error = str(describe(exc))
                self.first_error = self.first_error or self.last_error
                return
        self.found(box, found)

    async def poll_once(self) -> None:
        """One round: every mailbox with copies due, `concurrency` at a time."""
        gate = asyncio.Semaphore(self.concurrency)
        await asyncio.gather(*(self._poll(box, gate) for box in self.ledger.mailboxes_due()))

    async def run(self) -> None:
        """Poll rounds (or the watcher's sessions) until `stopping` is set."""
        if isinstance(self.finder, Watcher):
            await self.finder.watch(self.found, lambda: self.stopping)
            return
        while not self.stopping:
            started = time.monotonic()
            await self.poll_once()
            await asyncio.sleep(max(0.05, self.poll_interval - (time.monotonic() - started)))

    def health(self, now: float) -> Tracking:
        """Its failures to look so far (a watcher's sessions, or the polls) as a record."""
        f = self.finder
        if isinstance(f, Watcher):
            errors = int(getattr(f, "errors", 0))
            looked = len(getattr(f, "ready", ()))
            first, last = getattr(f, "first_error", None), getattr(f, "last_error", None)
        else:
            errors, looked = self.poll_errors, self.polls - self.poll_errors
            first, last = self.first_error, self.last_error
        return Tracking(now, self.ledger.via, errors, looked, first, last)

    def expire(self) -> int:
        """Every copy still missing is lost; returns how many."""
        lost = self.ledger.expire(time.time())
        for record in lost:
            self.sink(record)
        return len(lost)
