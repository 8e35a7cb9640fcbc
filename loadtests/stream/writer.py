"""The stream's one writer: numbers records (`seq`), buffers their lines, appends them on `flush`.

The runner flushes at least once a second, so a killed run keeps all but its last second.
`on_request` is the listener for Locust's `events.request` (every protocol's records arrive
there): it formats the `req` line directly from the event's arguments, without building a
record (`on_requests`: a whole session's events at once, see loadtests.users.requests);
`req_dict` gives the same record as the dict of its line (a worker ships these, several
per session, so it skips the record object too); `req_record` builds the typed record from the
same arguments; `user_error_record` the `error` record of Locust's `events.user_error`.

The writer is where secrets are kept out: with a `Redactor` (the run's passwords), every error
text is redacted on its way in, whether from `on_request` or `write` (a worker's records too).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from loadtests.clients.errors import describe
from loadtests.stream.codec import encode, req_line
from loadtests.stream.records import Record, Req, UserError
from loadtests.stream.redact import Redactor

__all__ = ["RESULTS_FILE", "StreamWriter", "req_dict", "req_record", "user_error_record"]

RESULTS_FILE = "results.jsonl"


def _failure(exception: BaseException | None,
             ctx: dict[str, Any]) -> tuple[str | None, int | str | None]:
    """(err, code) of a request event: `Kind: text` and the reply code or errno name."""
    if exception is None:
        return None, None
    info = describe(exception)
    return ctx.get("error") or str(info), info.code


def req_record(request_type: str, name: str, response_time: float,
               response_length: int | None = 0, exception: BaseException | None = None,
               context: dict[str, Any] | None = None, start_time: float | None = None,
               **_: Any) -> Req:
    """The `req` record of Locust's `events.request` arguments."""
    ctx = context or {}
    err, code = _failure(exception, ctx)
    return Req(start_time or time.time(), request_type, name, round(response_time, 3),
               int(response_length or 0), exception is None, err, code, ctx.get("scenario"),
               ctx.get("lag_ms"))


def req_dict(request_type: str, name: str, response_time: float,
             response_length: int | None = 0, exception: BaseException | None = None,
             context: dict[str, Any] | None = None, start_time: float | None = None,
             **_: Any) -> dict[str, Any]:
    """`to_dict(req_record(...))` of Locust's `events.request` arguments, built directly."""
    ctx = context or {}
    err, code = _failure(exception, ctx) if exception is not None else (None, None)
    out = {"kind": "req", "seq": 0, "ts": start_time or time.time(), "type": request_type,
           "name": name, "ms": round(response_time, 3), "len": int(response_length or 0),
           "ok": exception is None, "err": err, "code": code, "sc": ctx.get("scenario")}
    lag = ctx.get("lag_ms")
    if lag is not None:
        out["lag_ms"] = lag
    return out


def user_error_record(user: object, exception: BaseException) -> UserError:
    """The `error` record of an exception that escaped `user` (Locust's `events.user_error`)."""
    info = describe(exception)
    return UserError(time.time(), type(user).__name__, str(info), info.code)


class StreamWriter:
    """Appends records to `path`; `flush()` pushes them to the file (and the OS page cache).
    `redactor` hides the run's secrets in every error text written."""

    def __init__(self, path: Path, redactor: Redactor | None = None) -> None:
        self.path = path
        self.redactor = redactor or Redactor()
        self._file: IO[str] | None = path.open("a", encoding="utf-8")
        self._buffer: list[str] = []
        self._seq = 0
        self.taps: list[Callable[[Record], None]] = []  # see every record `write` is given

    def write(self, record: Record) -> None:
        """Any record, numbered in this stream's order (a worker's too: it keeps `worker`)."""
        self._seq += 1
        record = self.redactor.record(record)
        self._buffer.append(encode(record, self._seq))
        for tap in self.taps:
            tap(record)

    def write_ok_req(self, ts: float, rtype: str, name: str, ms: float, length: int,
                     sc: str | None, lag_ms: float | None, worker: str | None) -> None:
        """A succeeded `req` (nothing to redact) as `write(Req(...))` writes it; the record
        object is made only when a tap wants it (a worker's shipped rows, on the master)."""
        if self.taps:
            self.write(Req(ts, rtype, name, ms, length, True, None, None, sc, lag_ms,
                           worker=worker))
            return
        self._seq += 1
        self._buffer.append(req_line(self._seq, ts, rtype, name, ms, length, True, None, None,
                                     sc, lag_ms, worker))

    def on_request(self, request_type: str, name: str, response_time: float,
                   response_length: int | None, exception: BaseException | None = None,
                   context: dict[str, Any] | None = None, start_time: float | None = None,
                   **_: Any) -> None:
        """Listener for Locust's `events.request`: the `req` line, formatted directly."""
        self._req(request_type, name, response_time, response_length, exception, context,
                  start_time)

    def on_requests(self, requests: Iterable[dict[str, Any]]) -> None:
        """`on_request` for each of a session's request events (their keyword arguments)."""
        req = self._req
        for kw in requests:
            req(kw["request_type"], kw["name"], kw["response_time"], kw.get("response_length"),
                kw.get("exception"), kw.get("context"), kw.get("start_time"))

    def _req(self, request_type: str, name: str, response_time: float,
             response_length: int | None, exception: BaseException | None,
             context: dict[str, Any] | None, start_time: float | None) -> None:
        ctx = context or {}
        self._seq += 1
        err, code = _failure(exception, ctx) if exception is not None else (None, None)
        self._buffer.append(req_line(
            self._seq, start_time or time.time(), request_type, name, round(response_time, 3),
            int(response_length or 0), exception is None, self.redactor.optional(err), code,
            ctx.get("scenario"), ctx.get("lag_ms")))

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
