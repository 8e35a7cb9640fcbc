"""Test messages: a given size, a unique Message-ID, the send time and a checksum in headers.

Pure functions. `X-Mailswarm-Sent` (seconds since the epoch) lets a later pass measure delivery
latency from the delivered copy; `X-Mailswarm-Checksum` holds two truncated SHA-256 digests, one
of the headers that matter (From, To, Subject, Message-ID, Date, X-Mailswarm-Sent: the ones a
delivering server leaves alone) and one of the body, so `verify` tells an intact copy from a
corrupt one and which part changed. Both digests are over canonical forms (header values
unfolded and stripped; body lines ending in LF), so a copy read from a maildir file (LF) or
over POP3/IMAP (CRLF), with Received:/Return-Path: headers added, still verifies.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from hashlib import sha256

__all__ = ["CHECKSUM_HEADER", "SENT_HEADER", "Verdict", "build_message", "new_message_id",
           "verify"]

SENT_HEADER = "X-Mailswarm-Sent"
CHECKSUM_HEADER = "X-Mailswarm-Checksum"
_DIGEST_HEX = 16  # 64 bits of each SHA-256: plenty to tell a changed copy from the original
_NAMES = ("From", "To", "Subject", "Message-ID", "Date", SENT_HEADER)  # the ones that matter
_FILLER = b"mailswarm load-test filler text, seventy-six characters per line...........\r\n"
_counter = itertools.count(1)
_prefix = f"{os.getpid():x}.{os.urandom(4).hex()}"
_CHECKSUM_START = f"{CHECKSUM_HEADER}: ".encode("ascii")
_TAIL = b"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
_CHECKSUM_LINE = len(_CHECKSUM_START) + 2 * _DIGEST_HEX + 1 + len(_TAIL)  # up to the body
_CHECKSUM = re.compile(rf"([0-9a-f]{{{_DIGEST_HEX}}})-([0-9a-f]{{{_DIGEST_HEX}}})")


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
    ).encode("utf-8", "surrogateescape")
    # the checksum header, MIME headers and the blank line, then the body
    body, body_digest = _body(size - len(head) - _CHECKSUM_LINE)
    head_digest = sha256(head).hexdigest()[:_DIGEST_HEX].encode("ascii")
    return b"".join((head, _CHECKSUM_START, head_digest, b"-", body_digest, _TAIL, body))


def _head_digest(values: dict[str, str]) -> str:
    """The digest of the headers that matter, as `build_message` writes them: `Name: value`
    lines (CRLF) in `_NAMES` order."""
    text = "".join(f"{name}: {values.get(name.lower(), '')}\r\n" for name in _NAMES)
    return sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:_DIGEST_HEX]


def _body_digest(body: bytes) -> str:
    return sha256(body.replace(b"\r\n", b"\n")).hexdigest()[:_DIGEST_HEX]


@lru_cache(maxsize=4)
def _date(second: int) -> str:
    """The Date header's value for a second since the epoch (formatted once per second)."""
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(second))


@lru_cache(maxsize=256)
def _body(room: int) -> tuple[bytes, bytes]:
    """Filler lines of exactly `room` bytes (nothing when there is no room for a line), and
    their digest (ASCII): the same for every message of a size, so computed once."""
    if room < 2:
        return b"", _body_digest(b"").encode("ascii")  # no room for a line of two bytes
    lines, rest = divmod(room, len(_FILLER))
    if rest == 1:  # no room for a line of its own: make the last full line one byte longer
        lines, rest = lines - 1, rest + len(_FILLER)
    body = _FILLER * lines
    if rest:
        body += (_FILLER[:-2] * 2)[: rest - 2] + b"\r\n"
    return body, _body_digest(body).encode("ascii")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What `verify` found: the copy's Message-ID and send time (None when absent), and
    `corrupt`: None for an intact copy, else which part does not match its checksum —
    "headers", "body", "headers+body", or "checksum" (the header is missing or malformed)."""

    message_id: str | None
    sent_at: float | None
    corrupt: str | None = None

    @property
    def ok(self) -> bool:
        return self.corrupt is None


def _split(message: bytes) -> tuple[bytes, bytes]:
    """(header block, body) at the first empty line, CRLF or LF."""
    crlf, lf = message.find(b"\r\n\r\n"), message.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return message[:crlf], message[crlf + 4:]
    if lf >= 0:
        return message[:lf], message[lf + 2:]
    return message, b""


def _headers(block: bytes) -> dict[str, str]:
    """The first value of each header (name lower-cased), folded lines joined, stripped."""
    out: dict[str, str] = {}
    name = ""
    for line in block.decode("utf-8", "surrogateescape").splitlines():
        if line[:1] in (" ", "\t"):
            if name and name in out and out.get("\0" + name) is None:
                out[name] += " " + line.strip()
            continue
        key, colon, value = line.partition(":")
        if not colon:
            name = ""
            continue
        name = key.strip().lower()
        if name in out:
            out["\0" + name] = ""  # a later copy of the header: its folds are not ours
        else:
            out[name] = value.strip()
    return out


def verify(message: bytes) -> Verdict:
    """Check a delivered copy against its own checksum header (pure; no state)."""
    head, body = _split(message)
    headers = _headers(head)
    message_id = headers.get("message-id")
    try:
        sent_at: float | None = float(headers[SENT_HEADER.lower()])
    except (KeyError, ValueError):
        sent_at = None
    match = _CHECKSUM.fullmatch(headers.get(CHECKSUM_HEADER.lower(), ""))
    if match is None:
        return Verdict(message_id, sent_at, "checksum")
    head_ok = _head_digest(headers) == match[1]
    body_ok = _body_digest(body) == match[2]
    corrupt = None if head_ok and body_ok else "body" if head_ok else \
        "headers" if body_ok else "headers+body"
    return Verdict(message_id, sent_at, corrupt)
