"""Test messages: a given size, a unique Message-ID and the send time in a header.

Pure functions; the send time header (`X-Mailswarm-Sent`, seconds since the epoch) lets a later
pass measure delivery latency from the delivered file.
"""

from __future__ import annotations

import itertools
import os
import time
from functools import lru_cache

__all__ = ["SENT_HEADER", "build_message", "new_message_id"]

SENT_HEADER = "X-Mailswarm-Sent"
_FILLER = b"mailswarm load-test filler text, seventy-six characters per line...........\r\n"
_counter = itertools.count(1)
_prefix = f"{os.getpid():x}.{os.urandom(4).hex()}"


def new_message_id(domain: str = "mailswarm.test") -> str:
    """A Message-ID unique across processes and runs: `<pid.random.counter@domain>`."""
    return f"<{_prefix}.{next(_counter)}@{domain}>"


def build_message(*, sender: str, recipients: list[str], size: int, message_id: str,
                  sent_at: float | None = None, subject: str = "mailswarm test message") -> bytes:
    """An RFC 5322 message of exactly `size` bytes (or its headers, if they alone are larger)."""
    sent = time.time() if sent_at is None else sent_at
    head = (
        f"From: <{sender}>\r\n"
        f"To: {', '.join(f'<{r}>' for r in recipients)}\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: {message_id}\r\n"
        f"Date: {_date(int(sent))}\r\n"
        f"{SENT_HEADER}: {sent:.6f}\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
    ).encode("ascii")
    return head + _body(size - len(head))


@lru_cache(maxsize=4)
def _date(second: int) -> str:
    """The Date header's value for a second since the epoch (formatted once per second)."""
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(second))


@lru_cache(maxsize=256)
def _body(room: int) -> bytes:
    """Filler lines of exactly `room` bytes (nothing when there is no room for a line)."""
    if room < 2:
        return b""  # no room, or no room for a line of fewer than two bytes
    lines, rest = divmod(room, len(_FILLER))
    if rest == 1:  # no room for a line of its own: make the last full line one byte longer
        lines, rest = lines - 1, rest + len(_FILLER)
    body = _FILLER * lines
    if rest:
        body += (_FILLER[:-2] * 2)[: rest - 2] + b"\r\n"
    return body
