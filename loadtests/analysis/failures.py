"""Failures grouped by a cause a person can read, one example text kept per group.

A failure's cause is its error kind (the `Kind` of `Kind: text`), its reply code, status or
errno name (the record's `code`; for schema 1 streams, a reply code at the start of the text),
and its message with what differs from one occurrence to the next masked: e-mail addresses
(`<email>`), IP addresses with or without a port (`<addr>`), long hex strings (`<hex>`) and
numbers (`<n>`). Kept, because they say what went wrong: SMTP enhanced status codes (`5.1.1`),
errno numbers (`[Errno 104]`, `errno 111`: reset is not refused) and names of protocols and
standards that contain digits (`POP3`, `IMAP4rev1`, `RFC822`, `UTF-8`, `HTTP/1.1`, `TLSv1.3`).
So "TimeoutError: timed out after 5.402 s" and "… 5.403 s" are one cause, and
"SMTPRecipientsRefused: 550 5.1.1 <u17@example.test> unknown" with code 550 reads
`SMTPRecipientsRefused 550: 5.1.1 <email> unknown`.
Used by the summary's `errors`, the console and the report's failure table and chart (this is
loadtests.report.series's `failure_cause`). Not to be confused with loadtests.analysis.cause,
which names why a ceiling search stopped.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from loadtests.stream import Req

__all__ = ["FailureGroup", "failure_groups", "mask_message", "normalise_cause"]

MAX_MESSAGE = 120
"""Characters of the masked message kept in a cause."""

_KIND = re.compile(r"[A-Za-z_][\w.]*")
_LEADING_CODE = re.compile(r"^\s*(\d{3})\b(?!\.\d)")  # a reply code, not an address's start
_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b(?!\.\d)")
_ERRNO = re.compile(r"\[Errno -?\d+\]|\berrno\s*[=:]?\s*-?\d+\b", re.IGNORECASE)
_NAMES = re.compile(
    r"(?<![\w.])(?:POP3S?|IMAP4(?:rev[12])?|IMAPS|RFC\s?\d{3,4}|UTF-?(?:7|8|16|32)|"
    r"HTTP/\d(?:\.\d)?|TLSv1(?:\.[0-3])?|SSLv[23]|SHA-?(?:1|224|256|384|512)|MD5|"
    r"X\.?509|IPv[46]|[Bb]ase64|ASN\.1)(?![\w])")
_KEEP = (_ENHANCED, _ERRNO, _NAMES)
_MASKS = (
    (re.compile(r"<?[\w.+-]+@[\w-]+(?:\.[\w-]+)*>?"), "<email>"),
    (re.compile(r"\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\](?::\d+)?"), "<addr>"),  # [::1]:25
    (re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?(?![\w.])"), "<addr>"),
    (re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"), "<addr>"),
    (re.compile(r"\(\s*'<addr>'\s*,\s*\d+(?:\s*,\s*\d+)*\s*\)"), "<addr>"),  # ('::1', 25, 0, 0)
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"\d+(?:\.\d+)*"), "<n>"),
)


_KEPT = 0xE000  # private-use characters stand in for kept parts while masking


def mask_message(text: str) -> str:
    """`text` with addresses, long hex strings and numbers masked (enhanced status codes, errno
    numbers and protocol names kept)."""
    kept: list[str] = []

    def keep(match: re.Match[str]) -> str:
        kept.append(match.group(0))
        return chr(_KEPT + len(kept) - 1)

    text = text[:4096]  # a cause needs no more; so fewer than 4096 parts are kept
    for pattern in _KEEP:
        text = pattern.sub(keep, text)
    for pattern, replacement in _MASKS:
        text = pattern.sub(replacement, text)
    return re.sub(f"[{chr(_KEPT)}-{chr(_KEPT + 4095)}]",
                  lambda m: kept[ord(m.group(0)) - _KEPT], text) if kept else text


def normalise_cause(err: str | None, code: int | str | None = None) -> str:
    """The cause of a failure: `Kind code: masked message` (see the module docstring)."""
    if not err:
        return "unknown" if code is None else f"unknown {code}"
    kind, sep, rest = err.partition(":")
    kind = kind.strip()
    if not sep or not _KIND.fullmatch(kind):
        kind, rest = "", err
    message = rest.strip()
    if code is None:
        match = _LEADING_CODE.match(message)
        code = match.group(1) if match else None
    if code is not None and message.split(" ", 1)[0] == str(code):
        message = message[len(str(code)):].strip()
    message = " ".join(mask_message(message).split())
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE - 1] + "…"
    head = " ".join(str(p) for p in (kind, code) if p not in ("", None))
    if head and message:
        return f"{head}: {message}"
    return head or message or "unknown"


@dataclass
class FailureGroup:
    """Failures of one step with one cause: how many, and the first text seen."""

    type: str
    name: str
    cause: str
    count: int
    example: str


def failure_groups(requests: Iterable[Req]) -> list[FailureGroup]:
    """The failed requests grouped by (step, cause), most frequent first (ties: by step)."""
    counts: Counter[tuple[str, str, str]] = Counter()
    example: dict[tuple[str, str, str], str] = {}
    for r in requests:
        if not r.ok:
            key = (r.type, r.name, normalise_cause(r.err, r.code))
            counts[key] += 1
            example.setdefault(key, r.err or "unknown")
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [FailureGroup(t, n, c, count, example[(t, n, c)]) for (t, n, c), count in ordered]
