"""The embedded target's local delivery: accepted mail into the mailboxes POP3/IMAP serve,
after a delay, with injected faults, and its own counters of what it did (the reference a
delivery-tracking test checks the generator's findings against).

Faults are counted per delivered copy (one per recipient) and deterministic: `drop_one_in: N`
drops the Nth, 2Nth... copy; `corrupt_one_in` and `duplicate_one_in` count among the copies
not dropped (so "drop 1 in 100, corrupt 1 in 200" never picks one copy for both). A corrupted
copy has one body byte changed (or the last header byte, for a message without a body): its
Message-ID stays readable, so a tracker can say which message arrived corrupt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from loadtests.embedded.mailstore import MailStore

__all__ = ["DeliveryCounters", "LocalDelivery", "corrupt_copy"]


@dataclass
class DeliveryCounters:
    """What local delivery did, per copy (one per recipient)."""

    accepted: int = 0  # copies handed to delivery
    delivered: int = 0  # copies put in a mailbox (duplicates included)
    dropped: int = 0
    corrupted: int = 0
    duplicated: int = 0  # extra copies delivered
    unknown: int = 0  # recipient without a mailbox
    queue: int = 0  # copies waiting for their delivery delay now
    queue_peak: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def corrupt_copy(data: bytes) -> bytes:
    """`data` with one byte changed: in the middle of the body, else at the end of the head."""
    head_end = data.find(b"\r\n\r\n")
    body_start = head_end + 4 if head_end >= 0 else len(data)
    if body_start < len(data) - 2:
        at = body_start + (len(data) - 2 - body_start) // 2
    else:
        at = max(0, (head_end if head_end > 0 else len(data)) - 1)
    if not data:
        return b"\x00"
    return data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1:]


def _every(n: int, count: int) -> bool:
    return n > 0 and count % n == 0


class LocalDelivery:
    """Delivers accepted messages into `store` after `delay` seconds (on the running loop)."""

    def __init__(self, store: MailStore, *, delay: float = 0.0, drop_one_in: int = 0,
                 corrupt_one_in: int = 0, duplicate_one_in: int = 0) -> None:
        self.store = store
        self.delay = delay
        self.drop_one_in, self.corrupt_one_in = drop_one_in, corrupt_one_in
        self.duplicate_one_in = duplicate_one_in
        self.counters = DeliveryCounters()
        self._handled = 0  # copies whose delay is over: the count drops pick from
        self._kept = 0  # copies not dropped: the count corrupt/duplicate faults pick from

    def accept(self, recipients: Iterable[str], data: bytes) -> None:
        """An accepted message: one copy per recipient, now or after the delay."""
        for rcpt in recipients:
            c = self.counters
            c.accepted += 1
            if self.delay > 0:
                c.queue += 1
                c.queue_peak = max(c.queue_peak, c.queue)
                asyncio.get_running_loop().call_later(self.delay, self._delayed, rcpt, data)
            else:
                self._deliver(rcpt, data)

    def _delayed(self, rcpt: str, data: bytes) -> None:
        self.counters.queue -= 1
        self._deliver(rcpt, data)

    def _deliver(self, rcpt: str, data: bytes) -> None:
        c = self.counters
        self._handled += 1
        if _every(self.drop_one_in, self._handled):
            c.dropped += 1
            return
        self._kept += 1
        box = self.store.get(rcpt)
        if box is None:
            c.unknown += 1
            return
        if _every(self.corrupt_one_in, self._kept):
            c.corrupted += 1
            data = corrupt_copy(data)
        box.append(data)
        c.delivered += 1
        if _every(self.duplicate_one_in, self._kept):
            c.duplicated += 1
            box.append(data)
            c.delivered += 1
