"""One encoder and one decoder per record kind, in one table keyed by kind (`CODECS`).

Each record is one JSON object per line: `kind`, `seq`, then the kind's fields in their declared
order (`worker` last, when set). The generic codec is derived from the record's dataclass; `req`,
several per session, has a hand-formatted encoder (`req_line`: the same text `json.dumps` gives
for the same fields, at a fraction of its cost) and a direct decoder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

from loadtests.stream.records import (
    Delivery,
    End,
    Header,
    Phase,
    Queue,
    Record,
    Req,
    Sample,
    Sent,
    Step,
    Tick,
    TlsSeen,
    Tracking,
    UserError,
    WorkerEvent,
)

__all__ = ["CODECS", "RECORD_TYPES", "Codec", "decode", "encode", "generic_codec", "req_line",
           "to_dict"]

RECORD_TYPES: tuple[type[Record], ...] = (Header, Req, Tick, Phase, Sample, Step, UserError,
                                          WorkerEvent, Sent, Delivery, Queue, Tracking,
                                          TlsSeen, End)
"""Every kind, in the order a stream usually shows them first."""

_COMMON = ("seq", "worker")


@dataclass(frozen=True, slots=True)
class Codec:
    """How one kind goes to a line and back: `encode(record, seq)` -> JSON text (no newline),
    `to_dict(record)` -> the same as a dict, `decode(dict)` -> the record."""

    cls: type[Record]
    names: tuple[str, ...]  # the kind's own fields, in order
    omit_none: frozenset[str]
    encode: Callable[[Any, int], str]
    to_dict: Callable[[Any], dict[str, Any]]
    decode: Callable[[dict[str, Any]], Record]


def generic_codec(cls: type[Record]) -> Codec:
    """The codec derived from a record class's fields (every kind's, but for `req`'s encoder
    and decoder, which are hand-written for speed and checked against this one)."""
    own = [f for f in fields(cls) if f.name not in _COMMON]
    names = tuple(f.name for f in own)
    omit = frozenset(f.name for f in own if f.metadata.get("omit_none"))
    kind = cls.KIND

    def to_dict(record: Record, seq: int | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": kind, "seq": record.seq if seq is None else seq}
        for name in names:
            value = getattr(record, name)
            if value is not None or name not in omit:
                out[name] = value
        if record.worker is not None:
            out["worker"] = record.worker
        return out

    def encode(record: Record, seq: int) -> str:
        return json.dumps(to_dict(record, seq), separators=(",", ":"), default=str)

    def decode(data: dict[str, Any]) -> Record:
        values = {name: data[name] for name in names if name in data}
        return cls(**values, seq=data.get("seq", 0), worker=data.get("worker"))

    return Codec(cls, names, omit, encode, to_dict, decode)


_text = json.encoder.encode_basestring_ascii  # what json.dumps does to a str (ensure_ascii)


@lru_cache(maxsize=4096)
def _string(value: str | None) -> str:
    """JSON for a name-like string (few distinct values: cached)."""
    return json.dumps(value)


def _number(value: float) -> str:
    return float.__repr__(value) if type(value) is float and math.isfinite(value) \
        else json.dumps(value)


def _code(code: int | str) -> str:
    """JSON for a reply code (an int) or status / errno name (a str, few distinct: cached)."""
    return str(code) if type(code) is int else _string(code) if type(code) is str \
        else json.dumps(code)


def req_line(seq: int, ts: float, rtype: str, name: str, ms: float, length: int, ok: bool,
             err: str | None, code: int | str | None, sc: str | None,
             lag_ms: float | None = None, worker: str | None = None) -> str:
    """The `req` line for these fields: identical to the generic encoder's output."""
    line = (
        f'{{"kind":"req","seq":{seq},"ts":{_number(ts)},"type":{_string(rtype)},'
        f'"name":{_string(name)},"ms":{_number(ms)},"len":{length},'
        f'"ok":{"true" if ok else "false"},"err":{"null" if err is None else _text(err)},'
        f'"code":{"null" if code is None else _code(code)},"sc":{_string(sc)}'
    )
    if lag_ms is not None:
        line += f',"lag_ms":{_number(lag_ms)}'
    if worker is not None:
        line += f',"worker":{_string(worker)}'
    return line + "}"


def _encode_req(r: Req, seq: int) -> str:
    return req_line(seq, r.ts, r.type, r.name, r.ms, r.len, r.ok, r.err, r.code, r.sc,
                    r.lag_ms, r.worker)


def _decode_req(d: dict[str, Any]) -> Req:
    return Req(d["ts"], d["type"], d["name"], d["ms"], d.get("len", 0), d["ok"], d.get("err"),
               d.get("code"), d.get("sc"), d.get("lag_ms"), seq=d.get("seq", 0),
               worker=d.get("worker"))


def _codecs() -> dict[str, Codec]:
    table = {cls.KIND: generic_codec(cls) for cls in RECORD_TYPES}
    generic_req, generic_header = table["req"], table["run"]
    table["req"] = Codec(Req, generic_req.names, generic_req.omit_none, _encode_req,
                         generic_req.to_dict, _decode_req)

    def decode_header(d: dict[str, Any]) -> Record:
        """A header without `schema` is schema 1."""
        return generic_header.decode(d if "schema" in d else {**d, "schema": 1})

    table["run"] = Codec(Header, generic_header.names, generic_header.omit_none,
                         generic_header.encode, generic_header.to_dict, decode_header)
    return table


CODECS: dict[str, Codec] = _codecs()
"""Kind -> its codec: the one place a kind's encoding is looked up."""


def encode(record: Record, seq: int) -> str:
    """The line (without newline) of a record numbered `seq`."""
    return CODECS[record.KIND].encode(record, seq)


def to_dict(record: Record) -> dict[str, Any]:
    """A record as the dict of its line (e.g. to ship it to another process)."""
    return CODECS[record.KIND].to_dict(record)


def decode(data: dict[str, Any]) -> Record | None:
    """The typed record of a decoded line; None for a kind this version does not know.
    Raises KeyError or TypeError when a field is missing or unknown to the kind."""
    codec = CODECS.get(data.get("kind"))  # type: ignore[arg-type]
    return None if codec is None else codec.decode(data)
