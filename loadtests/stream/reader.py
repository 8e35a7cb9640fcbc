"""The stream's one reader: typed records in stream order.

A last line cut off by a killed run is skipped, as is a line that is not JSON or of a kind this
version does not know. A `run` header without `schema` is schema 1 (the same fields as schema 2
but for `req.code`, read as None); a header with a newer schema than this version knows stops
the reading with a `StreamVersionError` naming both versions.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from loadtests.stream.codec import decode
from loadtests.stream.records import SCHEMA, Header, Record

__all__ = ["StreamError", "StreamVersionError", "read_stream"]


class StreamError(ValueError):
    """A record of the stream cannot be read (a field is missing or of another kind)."""


class StreamVersionError(StreamError):
    """The stream was written with a newer schema than this version of mailswarm reads."""


def read_stream(path: Path) -> Iterator[Record]:
    """The records of `path` (a results.jsonl file), typed, in order."""
    with path.open(encoding="utf-8") as stream:
        for number, line in enumerate(stream, 1):
            if not line.endswith("\n"):
                return  # the writer died mid-line
            try:
                data = json.loads(line)
            except ValueError:
                continue
            try:
                record = decode(data)
            except (KeyError, TypeError) as exc:
                raise StreamError(f"{path}:{number}: a {data.get('kind')!r} record: "
                                  f"{type(exc).__name__}: {exc}") from exc
            if record is None:
                continue
            if type(record) is Header and record.schema > SCHEMA:
                raise StreamVersionError(
                    f"{path}: written with stream schema {record.schema} (mailswarm "
                    f"{record.version or 'unknown'}); this mailswarm reads schema {SCHEMA} and "
                    "older: read it with a newer mailswarm")
            yield record
