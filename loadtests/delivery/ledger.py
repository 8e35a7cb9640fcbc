"""The delivery tracker's bookkeeping (pure, no I/O): copies expected (one per message and
recipient, learnt from `sent` records), copies found (with their `verify` verdict), and what
each finding means — delivered, corrupt, duplicate — or, at the deadline, lost.

A copy may be found before its `sent` record arrives (a worker ships records once a second):
such a finding waits in `early` and is settled when the record comes. Copies of messages this
run did not send (a mailbox's older mail) are ignored. With `watched` (IMAP IDLE watches a
fixed set of mailboxes), copies to other recipients are not expected: counted in `unwatched`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from loadtests.clients.message import Verdict
from loadtests.stream.records import Delivery, Sent

__all__ = ["Ledger", "mailbox_of"]


def mailbox_of(address: str) -> str:
    """The mailbox a recipient address is searched in (lower-cased)."""
    return address.strip().strip("<>").lower()


@dataclass
class _Expected:
    sent_ts: float
    found: int = 0  # copies seen so far


@dataclass
class Ledger:
    via: str = "pop3"
    watched: frozenset[str] | None = None  # None: every recipient's mailbox is searched
    unwatched: int = 0  # copies to recipients outside `watched`, not tracked
    expected: dict[tuple[str, str], _Expected] = field(default_factory=dict)
    early: dict[str, list[tuple[str, Verdict, float]]] = field(default_factory=dict)
    waiting: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """mailbox -> Message-IDs expected there and not found yet"""

    def learn(self, sent: Sent) -> list[Delivery]:
        """A message the server accepted; returns what findings made before it now mean."""
        out = []
        for rcpt in sent.rcpt:
            box = mailbox_of(rcpt)
            if self.watched is not None and box not in self.watched:
                self.unwatched += 1
                continue
            self.expected[(sent.id, box)] = _Expected(sent.ts)
            self.waiting[box].add(sent.id)
        for box, verdict, found_ts in self.early.pop(sent.id, []):
            record = self.found(box, verdict, found_ts)
            if record is not None:
                out.append(record)
        return out

    def pending(self) -> int:
        return sum(len(ids) for ids in self.waiting.values())

    def mailboxes_due(self) -> list[str]:
        return [box for box, ids in self.waiting.items() if ids]

    def found(self, box: str, verdict: Verdict, found_ts: float) -> Delivery | None:
        """A copy in mailbox `box`: its record, or None (not ours, or kept until learnt)."""
        mid = verdict.message_id
        if mid is None:
            return None
        exp = self.expected.get((mid, box))
        if exp is None:
            if verdict.sent_at is not None:
                self.early.setdefault(mid, []).append((box, verdict, found_ts))
            return None
        exp.found += 1
        sent = verdict.sent_at if verdict.ok and verdict.sent_at is not None else exp.sent_ts
        latency = round(max(0.0, found_ts - sent), 6)
        if exp.found > 1:
            return Delivery(found_ts, mid, box, "duplicate", latency, via=self.via)
        self.waiting[box].discard(mid)
        if not verdict.ok:
            return Delivery(found_ts, mid, box, "corrupt", latency, verdict.corrupt, self.via)
        return Delivery(found_ts, mid, box, "delivered", latency, via=self.via)

    def expire(self, now: float) -> list[Delivery]:
        """Every copy still waiting is lost."""
        out = [Delivery(now, mid, box, "lost", via=self.via)
               for box, ids in self.waiting.items() for mid in sorted(ids)]
        self.waiting.clear()
        return out
