"""The results stream: one JSON object per line in `OUT/results.jsonl`, written while a run goes.

Record kinds (field `kind`):
- `run`: the header — profile, target (no credentials), start time, mailswarm version;
- `req`: one request or session, Locust's request contract: `type` (SMTP, DNS...), `name`
  (CONNECT, MX, session...), `ts` (start, epoch seconds), `ms`, `len`, `ok`, `err`, `sc` (scenario);
- `tick`: once a second, the schedule's counters per scenario and the users running;
- `phase`: a schedule event (`arrival_start`, `arrival_stop`) for one scenario;
- `error`: an exception that escaped a user (a bug, recorded rather than lost);
- `end`: why the run ended (`completed`, `interrupted`).
Every record has a sequence number `seq`. The writer buffers and is flushed at least every second
by the runner, so a killed run keeps all but its last second; the reader skips a cut-off last line.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

__all__ = ["RESULTS_FILE", "ResultsWriter", "describe_error", "read_results", "request_record"]

RESULTS_FILE = "results.jsonl"


class ResultsWriter:
    """Appends records to the stream; `flush()` pushes them to the file (and the OS)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = path.open("a", encoding="utf-8")
        self._buffer: list[str] = []
        self._seq = 0

    def write(self, kind: str, **fields: Any) -> None:
        self._seq += 1
        fields["kind"] = kind
        fields["seq"] = self._seq
        fields.setdefault("ts", time.time())
        self._buffer.append(json.dumps(fields, separators=(",", ":"), default=str))

    def on_request(self, request_type: str, name: str, response_time: float,
                   response_length: int | None, exception: BaseException | None = None,
                   context: dict[str, Any] | None = None, start_time: float | None = None,
                   **_: Any) -> None:
        """Listener for Locust's `events.request`: every protocol's records arrive here.

        Formats the line directly (the same JSON `json.dumps` would give for these fields) at a
        fraction of its cost: several records per session make this a hot path.
        """
        ctx = context or {}
        self._seq += 1
        ts = start_time or time.time()
        err = None if exception is None else ctx.get("error") or describe_error(exception)
        line = (
            f'{{"kind":"req","seq":{self._seq},"ts":{_number(ts)},"type":{_string(request_type)},'
            f'"name":{_string(name)},"ms":{_number(round(response_time, 3))},'
            f'"len":{int(response_length or 0)},"ok":{"true" if exception is None else "false"},'
            f'"err":{"null" if err is None else json.dumps(err)},'
            f'"sc":{_string(ctx.get("scenario"))}'
        )
        if "lag_ms" in ctx:
            line += f',"lag_ms":{json.dumps(ctx["lag_ms"])}'
        self._buffer.append(line + "}")

    def write_record(self, record: dict[str, Any]) -> None:
        """A record made elsewhere (a worker process): numbered in this stream's order."""
        self._seq += 1
        record["seq"] = self._seq
        self._buffer.append(json.dumps(record, separators=(",", ":"), default=str))

    def flush(self) -> None:
        if self._file is None:
            return
        if self._buffer:
            self._file.write("\n".join(self._buffer) + "\n")
            self._buffer.clear()
        self._file.flush()  # in the page cache now: it survives the process being killed

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None


@lru_cache(maxsize=4096)
def _string(value: str | None) -> str:
    """JSON for a name-like string (few distinct values: cached)."""
    return json.dumps(value)


def _number(value: float) -> str:
    return float.__repr__(value) if type(value) is float and math.isfinite(value) \
        else json.dumps(value)


def request_record(request_type: str, name: str, response_time: float,
                   response_length: int | None = 0, exception: BaseException | None = None,
                   context: dict[str, Any] | None = None, start_time: float | None = None,
                   **_: Any) -> dict[str, Any]:
    """A `req` record from the arguments of Locust's `events.request`, as a dict without a
    sequence number (a worker process ships these to the master's stream)."""
    ctx = context or {}
    record = {
        "kind": "req", "ts": start_time or time.time(), "type": request_type, "name": name,
        "ms": round(response_time, 3), "len": response_length or 0, "ok": exception is None,
        "err": None if exception is None else ctx.get("error") or describe_error(exception),
        "sc": ctx.get("scenario"),
    }
    if "lag_ms" in ctx:
        record["lag_ms"] = ctx["lag_ms"]
    return record


def describe_error(exception: BaseException) -> str:
    """`Kind: text` for a record, with the server's reply code when the error carries one."""
    code = getattr(exception, "code", None)
    text = getattr(exception, "message", None) or str(exception) or repr(exception)
    kind = type(exception).__name__
    return f"{kind}: {code} {text}" if isinstance(code, int) else f"{kind}: {text}"


def read_results(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a stream in order; a last line cut off by a killed run is skipped."""
    with path.open(encoding="utf-8") as stream:
        for line in stream:
            if not line.endswith("\n"):
                return  # the writer died mid-line
            try:
                yield json.loads(line)
            except ValueError:
                continue
