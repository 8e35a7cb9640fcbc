"""IMAP4rev1 server-side syntax, without I/O: command tokens, sequence sets, SEARCH criteria and
FETCH responses (RFC 3501). The embedded IMAP server (imap.py) drives these functions.

    tag, name, args = parse_command(b'a1 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER])')
    items = parse_fetch_items(args[2])
    render_fetch(seq, msg, items, with_uid=True)   # b'* 1 FETCH (UID 1 FLAGS () BODY[HEADER] {..}
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_tz

from loadtests.embedded.mailstore import Message

__all__ = [
    "SYSTEM_FLAGS",
    "FetchItem",
    "ImapSyntaxError",
    "Token",
    "compile_search",
    "format_flags",
    "literal_size",
    "parse_command",
    "parse_fetch_items",
    "parse_seqset",
    "render_fetch",
    "tokenize",
]

Token = str | list["Token"]
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")

# at most 10 digits: more than the largest literal accepted, and int() takes only 4300
_LITERAL_AT_END = re.compile(rb"\{(\d{1,10})(\+?)\}\r?\n?$")
_LITERAL = re.compile(rb"\{(\d{1,10})\+?\}\r\n")
_TAG = re.compile(r"[^\s(){%*\"\\\]+]+")


class ImapSyntaxError(ValueError):
    """The client's command is not valid IMAP (answered with BAD)."""


def literal_size(line: bytes) -> tuple[int, bool] | None:
    """`(n, synchronizing)` when a command line ends with a literal `{n}` / `{n+}`, else None."""
    m = _LITERAL_AT_END.search(line)
    if m is None:
        return None
    return int(m[1]), m[2] != b"+"


def tokenize(data: bytes) -> list[Token]:
    """Split command arguments: atoms and strings become str (literals decoded as UTF-8 with
    surrogate escapes), parenthesized lists become lists. An atom keeps `[...]` and a following
    `<...>` whole, so `BODY.PEEK[HEADER.FIELDS (FROM)]<0.100>` is one token."""
    stack: list[list[Token]] = [[]]
    pos, n = 0, len(data)
    while pos < n:
        c = data[pos:pos + 1]
        if c in (b" ", b"\r", b"\n"):
            pos += 1
        elif c == b"(":
            stack.append([])
            pos += 1
        elif c == b")":
            if len(stack) == 1:
                raise ImapSyntaxError("unbalanced ')'")
            done = stack.pop()
            stack[-1].append(done)
            pos += 1
        elif c == b'"':
            pos, text = _quoted(data, pos + 1)
            stack[-1].append(text)
        elif c == b"{":
            m = _LITERAL.match(data, pos)
            if m is None:
                raise ImapSyntaxError("bad literal")
            start = m.end()
            end = start + int(m[1])
            if end > n:
                raise ImapSyntaxError("literal shorter than announced")
            stack[-1].append(data[start:end].decode("utf-8", "surrogateescape"))
            pos = end
        else:
            pos, atom = _atom(data, pos)
            stack[-1].append(atom)
    if len(stack) != 1:
        raise ImapSyntaxError("unbalanced '('")
    return stack[0]


def _quoted(data: bytes, pos: int) -> tuple[int, str]:
    out = bytearray()
    while pos < len(data):
        c = data[pos]
        if c == 0x5C and pos + 1 < len(data):  # backslash
            out.append(data[pos + 1])
            pos += 2
        elif c == 0x22:
            return pos + 1, out.decode("utf-8", "surrogateescape")
        else:
            out.append(c)
            pos += 1
    raise ImapSyntaxError("unterminated quoted string")


def _atom(data: bytes, pos: int) -> tuple[int, str]:
    start, depth = pos, 0
    while pos < len(data):
        c = data[pos:pos + 1]
        if c == b"[":
            depth += 1
        elif c == b"]":
            depth = max(0, depth - 1)
        elif depth == 0 and c in (b" ", b"(", b")", b"\r", b"\n"):
            break
        pos += 1
    return pos, data[start:pos].decode("utf-8", "surrogateescape")


def parse_command(data: bytes) -> tuple[str, str, list[Token]]:
    """`(tag, COMMAND, args)` of one complete command (literals inline). Raises ImapSyntaxError
    with the tag (or "*") in `args[0]` when the line is not a command."""
    head, _, rest = data.rstrip(b"\r\n").partition(b" ")
    tag = head.decode("ascii", "replace")
    if not _TAG.fullmatch(tag):
        raise ImapSyntaxError("*")
    name, _, rest = rest.partition(b" ")
    if not name:
        raise ImapSyntaxError(tag)
    try:
        return tag, name.decode("ascii").upper(), tokenize(rest)
    except (ImapSyntaxError, UnicodeDecodeError) as exc:
        raise ImapSyntaxError(tag) from exc


def parse_seqset(spec: str, largest: int) -> Callable[[int], bool]:
    """Membership test of a sequence set (`1:3,7,10:*`); `*` is `largest`."""
    ranges: list[tuple[int, int]] = []
    for part in spec.split(","):
        lo_s, _, hi_s = part.partition(":")
        try:
            lo = largest if lo_s == "*" else int(lo_s)
            hi = lo if not hi_s else (largest if hi_s == "*" else int(hi_s))
        except ValueError:
            raise ImapSyntaxError(f"bad sequence set {spec!r}") from None
        if (lo_s != "*" and lo < 1) or (hi_s not in ("", "*") and hi < 1):
            raise ImapSyntaxError(f"bad sequence set {spec!r}")
        ranges.append((min(lo, hi), max(lo, hi)))
    return lambda n: any(lo <= n <= hi for lo, hi in ranges)


def format_flags(flags: set[str]) -> str:
    return "(" + " ".join(sorted(flags)) + ")"


# ---- messages ------------------------------------------------------------------------------

def _split(data: bytes) -> tuple[bytes, bytes]:
    """Header block (with its blank line) and body."""
    i = data.find(b"\r\n\r\n")
    return (data, b"") if i < 0 else (data[:i + 4], data[i + 4:])


def _header_fields(header: bytes, names: set[str], exclude: bool) -> bytes:
    out: list[bytes] = []
    keep = False
    for line in header.split(b"\r\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t"):
            if keep:
                out.append(line)
            continue
        name = line.partition(b":")[0].strip().decode("ascii", "replace").upper()
        keep = (name in names) != exclude
        if keep:
            out.append(line)
    return b"".join(x + b"\r\n" for x in out) + b"\r\n"


def _header_value(data: bytes, name: str) -> bytes:
    header = _split(data)[0]
    return _header_fields(header, {name.upper()}, False)[len(name) + 1:]


# ---- SEARCH --------------------------------------------------------------------------------

Predicate = Callable[[int, Message], bool]
_MAX_NESTING = 50  # NOT / OR / parentheses in SEARCH criteria (each level is a recursion)
_FLAG_KEYS = {"ANSWERED": "\\Answered", "DELETED": "\\Deleted", "FLAGGED": "\\Flagged",
              "SEEN": "\\Seen", "DRAFT": "\\Draft"}
_MONTHS = {m: i for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG",
                                         "SEP", "OCT", "NOV", "DEC"), start=1)}


def _day(text: str) -> tuple[int, int, int]:
    try:
        d, m, y = text.split("-")
        return int(y), _MONTHS[m.upper()], int(d)
    except (ValueError, KeyError):
        raise ImapSyntaxError(f"bad date {text!r}") from None


def _internal_day(msg: Message) -> tuple[int, int, int]:
    t = time.gmtime(msg.internal_date)
    return t.tm_year, t.tm_mon, t.tm_mday


def _sent_day(msg: Message) -> tuple[int, int, int]:
    parsed = parsedate_tz(_header_value(msg.data, "Date").decode("ascii", "replace").strip())
    return (parsed[0], parsed[1], parsed[2]) if parsed else (1970, 1, 1)


def compile_search(args: Sequence[Token], largest_seq: int,
                   uid_of: Callable[[int], int], largest_uid: int) -> Predicate:
    """A predicate `(seq, message) -> bool` for SEARCH criteria (all ANDed). TEXT and BODY scan
    the whole message each time: server-side search costs CPU, as on a real server."""
    items = list(args)
    if len(items) >= 2 and isinstance(items[0], str) and items[0].upper() == "CHARSET":
        items = items[2:]
    preds: list[Predicate] = []
    while items:
        preds.append(_criterion(items, largest_seq, largest_uid))
    if not preds:
        raise ImapSyntaxError("empty search")
    return lambda seq, msg: all(p(seq, msg) for p in preds)


def _string(items: list[Token]) -> str:
    head = items[0] if items else None
    if not isinstance(head, str):
        raise ImapSyntaxError("search key needs a string")
    del items[0]
    return head


def _criterion(items: list[Token], largest_seq: int, largest_uid: int,
               depth: int = 0) -> Predicate:
    if depth > _MAX_NESTING:
        raise ImapSyntaxError("search criteria nested too deeply")
    if not items:
        raise ImapSyntaxError("search key missing")
    tok = items.pop(0)
    if isinstance(tok, list):
        sub = list(tok)
        preds = []
        while sub:
            preds.append(_criterion(sub, largest_seq, largest_uid, depth + 1))
        return lambda seq, msg: all(p(seq, msg) for p in preds)
    key = tok.upper()
    if key == "ALL":
        return lambda seq, msg: True
    if key in _FLAG_KEYS:
        flag = _FLAG_KEYS[key]
        return lambda seq, msg: flag in msg.flags
    if key.startswith("UN") and key[2:] in _FLAG_KEYS:
        flag = _FLAG_KEYS[key[2:]]
        return lambda seq, msg: flag not in msg.flags
    if key in ("RECENT", "NEW"):
        return lambda seq, msg: False  # this server does not track \Recent
    if key == "OLD":
        return lambda seq, msg: True
    if key in ("KEYWORD", "UNKEYWORD"):
        word, want = _string(items), key == "KEYWORD"
        return lambda seq, msg: (word in msg.flags) == want
    if key in ("FROM", "TO", "CC", "BCC", "SUBJECT"):
        needle = _string(items).lower().encode()
        return lambda seq, msg: needle in _header_value(msg.data, key).lower()
    if key == "HEADER":
        name, needle = _string(items), _string(items).lower().encode()
        return lambda seq, msg: needle in _header_value(msg.data, name).lower()
    if key == "BODY":
        needle = _string(items).lower().encode()
        return lambda seq, msg: needle in _split(msg.data)[1].lower()
    if key == "TEXT":
        needle = _string(items).lower().encode()
        return lambda seq, msg: needle in msg.data.lower()
    if key in ("LARGER", "SMALLER"):
        try:
            size = int(_string(items))
        except ValueError:
            raise ImapSyntaxError("size must be a number") from None
        if key == "LARGER":
            return lambda seq, msg: msg.size > size
        return lambda seq, msg: msg.size < size
    if key in ("BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"):
        day = _day(_string(items))
        get = _sent_day if key.startswith("SENT") else _internal_day
        kind = key.removeprefix("SENT")
        if kind == "BEFORE":
            return lambda seq, msg: get(msg) < day
        if kind == "ON":
            return lambda seq, msg: get(msg) == day
        return lambda seq, msg: get(msg) >= day
    if key == "NOT":
        inner = _criterion(items, largest_seq, largest_uid, depth + 1)
        return lambda seq, msg: not inner(seq, msg)
    if key == "OR":
        left = _criterion(items, largest_seq, largest_uid, depth + 1)
        right = _criterion(items, largest_seq, largest_uid, depth + 1)
        return lambda seq, msg: left(seq, msg) or right(seq, msg)
    if key == "UID":
        uids = parse_seqset(_string(items), largest_uid)
        return lambda seq, msg: uids(msg.uid)
    if key[:1].isdigit() or key[:1] == "*":
        seqs = parse_seqset(key, largest_seq)
        return lambda seq, msg: seqs(seq)
    raise ImapSyntaxError(f"unknown search key {tok!r}")


# ---- FETCH ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FetchItem:
    """One FETCH attribute: `name` as answered (FLAGS, BODY[HEADER], RFC822...); for body parts
    the `section` (""/HEADER/TEXT/HEADER.FIELDS/...), the `fields` list, whether it is a `peek`
    (does not set \\Seen) and the `partial` (start, length)."""

    name: str
    section: str | None = None
    fields: tuple[str, ...] = ()
    peek: bool = True
    partial: tuple[int, int | None] | None = None


_MACROS = {"ALL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"],
           "FAST": ["FLAGS", "INTERNALDATE", "RFC822.SIZE"],
           "FULL": ["FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"]}
_SIMPLE = {"FLAGS", "UID", "RFC822.SIZE", "INTERNALDATE", "ENVELOPE", "BODYSTRUCTURE", "BODY"}
_BODY = re.compile(r"(BODY(?:\.PEEK)?)\[([^\]]*)\](?:<([0-9]{1,10})(?:\.([0-9]{1,10}))?>)?",
                   re.IGNORECASE)


def parse_fetch_items(arg: Token) -> list[FetchItem]:
    """FETCH attributes from the command's item list, a single item or a macro."""
    names = arg if isinstance(arg, list) else [arg]
    if len(names) == 1 and isinstance(names[0], str) and names[0].upper() in _MACROS:
        names = list(_MACROS[names[0].upper()])
    items: list[FetchItem] = []
    for tok in names:
        if not isinstance(tok, str):
            raise ImapSyntaxError("bad fetch item")
        up = tok.upper()
        if up in _SIMPLE:
            items.append(FetchItem("BODYSTRUCTURE" if up == "BODY" else up))
        elif up == "RFC822":
            items.append(FetchItem("RFC822", "", peek=False))
        elif up == "RFC822.HEADER":
            items.append(FetchItem("RFC822.HEADER", "HEADER"))
        elif up == "RFC822.TEXT":
            items.append(FetchItem("RFC822.TEXT", "TEXT", peek=False))
        else:
            items.append(_body_item(tok))
    return items


def _body_item(tok: str) -> FetchItem:
    m = _BODY.fullmatch(tok)
    if m is None:
        raise ImapSyntaxError(f"unknown fetch item {tok!r}")
    section_text = m[2].strip()
    if not section_text.isascii():  # section and header field names are ASCII (RFC 5322)
        raise ImapSyntaxError(f"bad section {section_text!r}")
    section, _, rest = section_text.partition(" ")
    section = section.upper()
    fields: tuple[str, ...] = ()
    if section in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
        inner = tokenize(rest.encode())
        if (len(inner) != 1 or not isinstance(inner[0], list)
                or not all(isinstance(f, str) for f in inner[0])):
            raise ImapSyntaxError("HEADER.FIELDS needs a list of field names")
        fields = tuple(f.upper() for f in inner[0] if isinstance(f, str))
    elif section not in ("", "HEADER", "TEXT", "1", "MIME"):
        raise ImapSyntaxError(f"unsupported section {section_text!r}")
    partial = None
    if m[3] is not None:
        partial = (int(m[3]), int(m[4]) if m[4] is not None else None)
    name = f"BODY[{section_text.upper()}]" + (f"<{partial[0]}>" if partial else "")
    return FetchItem(name, section, fields, m[1].upper() == "BODY.PEEK", partial)


def _section(data: bytes, item: FetchItem) -> bytes:
    header, body = _split(data)
    if item.section == "":
        part = data
    elif item.section == "HEADER":
        part = header
    elif item.section in ("TEXT", "1"):
        part = body
    elif item.section == "MIME":
        part = b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    else:
        part = _header_fields(header, set(item.fields), (item.section or "").endswith(".NOT"))
    if item.partial is not None:
        start, length = item.partial
        part = part[start:] if length is None else part[start:start + length]
    return part


def _imap_date(ts: float) -> str:
    return time.strftime('"%d-%b-%Y %H:%M:%S +0000"', time.gmtime(ts))


def _nstring(value: bytes) -> bytes:
    text = value.strip()
    if not text:
        return b"NIL"
    return b'"' + text.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _address(value: bytes) -> bytes:
    m = re.search(rb"<?([^<>@\s]+)@([^<>\s]+?)>?\s*$", value.strip())
    if m is None:
        return b"NIL"
    return b'((NIL NIL "' + m[1] + b'" "' + m[2] + b'"))'


def _envelope(data: bytes) -> bytes:
    h = {k: _header_value(data, k) for k in ("Date", "Subject", "From", "To", "Message-ID")}
    sender = _address(h["From"])
    parts = [_nstring(h["Date"]), _nstring(h["Subject"]), sender, sender, sender,
             _address(h["To"]), b"NIL", b"NIL", b"NIL", _nstring(h["Message-ID"])]
    return b"(" + b" ".join(parts) + b")"


def _bodystructure(data: bytes) -> bytes:
    body = _split(data)[1]
    return (b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" %d %d)'
            % (len(body), body.count(b"\n")))


def render_fetch(seq: int, msg: Message, items: Sequence[FetchItem], *, with_uid: bool,
                 flags: set[str] | None = None) -> bytes:
    """The untagged `* seq FETCH (...)` response, literals inline. `flags` overrides the
    message's flags (the caller passes them after setting \\Seen)."""
    shown = set(msg.flags if flags is None else flags)
    parts: list[bytes] = []
    names = {i.name for i in items}
    if with_uid and "UID" not in names:
        parts.append(b"UID %d" % msg.uid)
    for item in items:
        if item.name == "FLAGS":
            parts.append(b"FLAGS " + format_flags(shown).encode())
        elif item.name == "UID":
            parts.append(b"UID %d" % msg.uid)
        elif item.name == "RFC822.SIZE":
            parts.append(b"RFC822.SIZE %d" % msg.size)
        elif item.name == "INTERNALDATE":
            parts.append(b"INTERNALDATE " + _imap_date(msg.internal_date).encode())
        elif item.name == "ENVELOPE":
            parts.append(b"ENVELOPE " + _envelope(msg.data))
        elif item.name == "BODYSTRUCTURE":
            parts.append(b"BODYSTRUCTURE " + _bodystructure(msg.data))
        else:
            data = _section(msg.data, item)
            parts.append(item.name.encode() + b" {%d}\r\n" % len(data) + data)
    return b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n"
