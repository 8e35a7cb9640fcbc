"""The stream's one reader: typed records in stream order, bad lines counted.

`read_stream(path)` gives a `StreamReader`: iterate it for the records; afterwards its `skipped`
lists the lines that were not records, as (line number, why). The first line must be a `run`
header (else `StreamError`: "not a mailswarm results stream"). Any later line that is not UTF-8,
not JSON, not a JSON object, misses a field of its kind or has a field of another type (a string
where a number belongs) is skipped and listed — never silently, never a traceback. A line of a
kind this version does not know is skipped without being listed (a newer writer's addition), and
a last line cut off by a killed run is skipped (`cut_off` says so). A `run` header without
`schema` is schema 1 (the same fields as schema 2 but for `req.code`, read as None); a header
with a newer schema than this version knows stops the reading with a `StreamVersionError`
naming both versions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

from loadtests.stream.codec import CODECS, decode
from loadtests.stream.records import SCHEMA, Header, Record, Req

__all__ = ["StreamError", "StreamReader", "StreamVersionError", "read_stream"]


class StreamError(ValueError):
    """The stream cannot be read (not a results stream)."""


class StreamVersionError(StreamError):
    """The stream was written with a newer schema than this version of mailswarm reads."""


Check = Callable[[Any], bool]

_BASE: dict[str, Check] = {
    "float": lambda v: type(v) in (float, int),
    "int": lambda v: type(v) in (int, float),  # a number: counters summed over workers
    "str": lambda v: type(v) is str,
    "bool": lambda v: type(v) is bool,
    "None": lambda v: v is None,
    "Any": lambda v: True,
}


def _split(text: str, sep: str) -> list[str]:
    """`text` split on `sep` outside brackets."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "["
        depth -= ch == "]"
        if depth == 0 and text.startswith(sep, i):
            parts.append(text[start:i])
            start = i + len(sep)
    return [p.strip() for p in [*parts, text[start:]]]


def _checker(annotation: str) -> Check:
    """A test of a decoded JSON value against a field's annotation (as written in
    loadtests.stream.records: unions of float, int, str, bool, None, Any, list[...], dict[...])."""
    options = _split(annotation, "|")
    if len(options) > 1:
        checks = [_checker(o) for o in options]
        return lambda v: any(c(v) for c in checks)
    match = re.fullmatch(r"(dict|list)\[(.*)\]", annotation)
    if match is None:
        return _BASE[annotation]
    args = _split(match.group(2), ",")
    item = _checker(args[-1])
    if match.group(1) == "list":
        return lambda v: type(v) is list and all(item(x) for x in v)
    return lambda v: type(v) is dict and all(item(x) for x in v.values())


_CHECKS: dict[str, list[tuple[str, Check]]] = {
    kind: [(f.name, _checker(str(f.type))) for f in fields(codec.cls)
           if f.name in codec.names or f.name == "worker"]
    for kind, codec in CODECS.items()}


_NUMBER = (float, int)


def _plain_req(r: Req) -> bool:
    """The `req` checks of `_CHECKS` written out (the hot path: several per session)."""
    return (type(r.ts) in _NUMBER and type(r.ms) in _NUMBER and type(r.ok) is bool
            and type(r.type) is str and type(r.name) is str and type(r.len) in _NUMBER
            and (r.err is None or type(r.err) is str)
            and (r.code is None or type(r.code) in (int, str))
            and (r.sc is None or type(r.sc) is str)
            and (r.lag_ms is None or type(r.lag_ms) in _NUMBER)
            and (r.worker is None or type(r.worker) is str))


def _record(line: bytes) -> tuple[Record | None, str | None]:
    """(record, None); (None, None) for a kind this version does not know; (None, why) for a
    line that is not a record."""
    try:
        data = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    except ValueError:
        return None, "not JSON"
    if not isinstance(data, dict):
        return None, f"JSON {type(data).__name__}, not a record"
    kind = data.get("kind")
    if type(kind) is not str:
        return None, "a JSON object without a `kind`"
    try:
        record = decode(data)
    except KeyError as exc:
        return None, f"a {kind!r} record without its field {exc}"
    except TypeError as exc:
        return None, f"a {kind!r} record: {exc}"
    if record is None or (type(record) is Req and _plain_req(record)):
        return record, None
    for name, check in _CHECKS[kind]:
        value = getattr(record, name)
        if not check(value):
            return None, f"a {kind!r} record whose {name!r} is {json.dumps(value)[:40]}"
    return record, None


class StreamReader:
    """The records of one results file, in order (iterate once); `skipped`: the lines that were
    not records, (line number, why); `cut_off`: the last line was cut off."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.skipped: list[tuple[int, str]] = []
        self.cut_off = False

    def __iter__(self) -> Iterator[Record]:
        path = self.path
        with path.open("rb") as stream:
            number = 0
            for number, line in enumerate(stream, 1):
                if not line.endswith(b"\n"):
                    self.cut_off = True  # the writer died mid-line
                    break
                record, why = _record(line)
                if number == 1 and type(record) is not Header:
                    what = why or ("a record of an unknown kind" if record is None
                                   else f"a {record.KIND!r} record")
                    raise StreamError(f"{path}: line 1 is {what}: not a mailswarm results "
                                      "stream (its first line is a `run` record)")
                if record is None:
                    if why is not None:
                        self.skipped.append((number, why))
                    continue
                if type(record) is Header and record.schema > SCHEMA:
                    raise StreamVersionError(
                        f"{path}: written with stream schema {record.schema} (mailswarm "
                        f"{record.version or 'unknown'}); this mailswarm reads schema {SCHEMA} "
                        "and older: read it with a newer mailswarm")
                yield record
            if number == 0 or (number == 1 and self.cut_off):
                raise StreamError(f"{path}: no records: not a mailswarm results stream (or "
                                  "one cut off before its first line)")


def read_stream(path: Path) -> StreamReader:
    """The records of `path` (a results.jsonl file), typed, in order; see `StreamReader`."""
    return StreamReader(path)
