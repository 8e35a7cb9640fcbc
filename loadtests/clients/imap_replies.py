"""Pure parsing of the replies aioimaplib hands back (`Response.lines`: untagged lines without
their `* `, literals as bytearray, the tagged text last). No I/O, tested directly.

Whatever a server sends, these return a value (what they could make of it) and never raise:
text that is not UTF-8 is decoded with replacement characters, a number too long for a
sequence number or counter is skipped."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = [
    "FetchedMessage",
    "MailboxInfo",
    "is_keepalive",
    "parse_expunge",
    "parse_fetch",
    "parse_mailbox",
    "parse_search",
    "parse_status",
    "pushes_in",
]

Line = bytes | bytearray

_PUSH = re.compile(rb"^(?:\* )?(\d+) (EXISTS|EXPUNGE|FETCH)\b", re.IGNORECASE)
_FETCH_START = re.compile(rb"^(?:\* )?(\d+) FETCH \(", re.IGNORECASE)
_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
_CODE_NUM = re.compile(rb"\[(UIDVALIDITY|UIDNEXT|UNSEEN) (\d+)\]")
_COUNT = re.compile(rb"^(\d+) (EXISTS|RECENT)$")
_STATUS = re.compile(rb"^(?:\* )?(?:STATUS )?[^(]*\((.*)\)\s*$", re.IGNORECASE)
_MAX_DIGITS = 20  # more than any 64-bit counter; longer "numbers" are garbage (and int() of
# more than 4300 digits raises ValueError)


def _number(digits: bytes | str) -> int | None:
    """An unsigned decimal of ASCII digits (as IMAP writes numbers), else None."""
    if isinstance(digits, str):
        digits = digits.encode("utf-8", "replace")
    if not digits.isdigit() or len(digits) > _MAX_DIGITS:  # bytes.isdigit: ASCII digits only
        return None
    return int(digits)


def _words(data: bytes) -> list[str]:
    return data.decode("utf-8", "replace").split()


def is_keepalive(line: Line) -> bool:
    """`OK Still here` (Dovecot) and other untagged OK lines are not mailbox changes."""
    text = bytes(line).removeprefix(b"* ").upper()
    return text.startswith(b"OK")


def pushes_in(lines: Sequence[Line]) -> list[bytes]:
    """The mailbox changes among untagged lines: `N EXISTS`, `N EXPUNGE`, `N FETCH (...)`."""
    return [bytes(x) for x in lines if not isinstance(x, bytearray) and _PUSH.match(x)]


@dataclass(slots=True)
class MailboxInfo:
    """What SELECT / EXAMINE told about the mailbox."""

    exists: int = 0
    recent: int = 0
    uid_validity: int | None = None
    uid_next: int | None = None
    unseen: int | None = None
    flags: tuple[str, ...] = ()
    read_only: bool = False


def parse_mailbox(lines: Sequence[Line]) -> MailboxInfo:
    info = MailboxInfo()
    for raw in lines:
        if isinstance(raw, bytearray):
            continue
        line = raw.removeprefix(b"* ").strip()
        if m := _COUNT.match(line):
            if (count := _number(m[1])) is not None:
                setattr(info, m[2].decode().lower(), count)
        elif line.upper().startswith(b"FLAGS ("):
            info.flags = tuple(_words(line[7:].rstrip(b")")))
        elif m := _CODE_NUM.search(line):
            name = {b"UIDVALIDITY": "uid_validity", b"UIDNEXT": "uid_next", b"UNSEEN": "unseen"}
            if (value := _number(m[2])) is not None:
                setattr(info, name[m[1]], value)
        if b"[READ-ONLY]" in line.upper():
            info.read_only = True
    return info


@dataclass(slots=True)
class FetchedMessage:
    """One `* seq FETCH (...)` answer: its attributes and the literals (body parts) it carried."""

    seq: int
    uid: int | None = None
    size: int | None = None
    flags: tuple[str, ...] = ()
    literals: list[bytes] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        """The (first) body part fetched: BODY[], BODY[HEADER], RFC822..."""
        return self.literals[0] if self.literals else b""


def parse_fetch(lines: Sequence[Line]) -> list[FetchedMessage]:
    out: list[FetchedMessage] = []
    for raw in lines:
        if isinstance(raw, bytearray):
            if out:
                out[-1].literals.append(bytes(raw))
            continue
        m = _FETCH_START.match(raw)
        if m and (seq := _number(m[1])) is not None:
            out.append(FetchedMessage(seq))
        elif m:
            m = None  # a sequence number no mailbox has: not a FETCH answer we can use
        if not out or (not m and not raw.startswith((b")", b" "))):
            continue  # the tagged text, or a line that is not part of a FETCH answer
        item = out[-1]
        if u := _UID.search(raw):
            item.uid = _number(u[1])
        if s := _SIZE.search(raw):
            item.size = _number(s[1])
        if f := _FLAGS.search(raw):
            item.flags = tuple(_words(f[1]))
    return out


def parse_search(lines: Sequence[Line]) -> list[int]:
    """Numbers of the untagged SEARCH answer (aioimaplib strips `* SEARCH`, keeps the rest);
    the last line is the tagged text."""
    found: list[int] = []
    for raw in lines[:-1]:
        words = bytes(raw).removeprefix(b"* ").split()
        if words and words[0].upper() == b"SEARCH":
            words = words[1:]
        numbers = [_number(w) for w in words]
        if all(n is not None for n in numbers):
            found += numbers  # type: ignore[arg-type]  # all ints, checked above
    return found


def parse_status(lines: Sequence[Line]) -> dict[str, int]:
    for raw in lines[:-1]:
        if isinstance(raw, bytes) and (m := _STATUS.match(raw)):
            words = _words(m[1])
            pairs = ((k.upper(), _number(v)) for k, v in zip(words[::2], words[1::2],
                                                              strict=False))
            return {k: v for k, v in pairs if v is not None}
    return {}


def parse_expunge(lines: Sequence[Line]) -> list[int]:
    return [n for raw in lines
            if isinstance(raw, bytes) and (m := _PUSH.match(raw)) and m[2].upper() == b"EXPUNGE"
            and (n := _number(m[1])) is not None]
