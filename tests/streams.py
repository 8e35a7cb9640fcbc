"""Crafted results streams for the analysis and report tests (no run, no sockets): typed records,
written through the stream's own writer."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from loadtests.stream import RESULTS_FILE, End, Header, Phase, Record, Req, StreamWriter

T0 = 1_700_000_000.0


def req(t: float, rtype: str, name: str, ms: float, ok: bool = True,
        err: str | None = None, code: int | str | None = None) -> Req:
    return Req(T0 + t, rtype, name, ms, 0, ok, err if not ok else None,
               code if not ok else None, "sc")


def header(**extra: Any) -> Header:
    return Header(T0 - 1, profile={"name": "crafted", "scenarios": []},
                  target={"name": "crafted", "endpoints": {}}, **extra)


def write_stream(folder: Path, records: Iterable[Record], *, head: Header | None = None,
                 end: bool = True) -> Path:
    """A run folder whose stream holds `head` (default `header()`), a `load_start` phase, the
    records, and (with `end`) an `end` record half a second after the last one."""
    folder.mkdir(parents=True, exist_ok=True)
    records = [head or header(), Phase(T0, "load_start", "*"), *records]
    last = max(r.ts for r in records)
    if end:
        records.append(End(last + 0.5, "completed", last + 0.5))
    writer = StreamWriter(folder / RESULTS_FILE)
    for rec in records:
        writer.write(rec)
    writer.close()
    return folder
