"""Crafted results streams for the analysis and report tests (no run, no sockets)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

T0 = 1_700_000_000.0


def req(t: float, rtype: str, name: str, ms: float, ok: bool = True,
        err: str | None = None) -> dict[str, Any]:
    return {"kind": "req", "ts": T0 + t, "type": rtype, "name": name, "ms": ms, "len": 0,
            "ok": ok, "err": err if not ok else None, "sc": "sc"}


def header(**extra: Any) -> dict[str, Any]:
    return {"kind": "run", "ts": T0 - 1, "profile": {"name": "crafted", "scenarios": []},
            "target": {"name": "crafted", "endpoints": {}}, **extra}


def write_stream(folder: Path, records: Iterable[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    records = [header(), {"kind": "phase", "name": "load_start", "scenario": "*", "ts": T0},
               *records]
    last = max(r["ts"] for r in records)
    records.append({"kind": "end", "reason": "completed", "load_end": last + 0.5,
                    "ts": last + 0.5})
    with (folder / "results.jsonl").open("w") as out:
        for seq, rec in enumerate(records, 1):
            out.write(json.dumps({**rec, "seq": seq}) + "\n")
    return folder
