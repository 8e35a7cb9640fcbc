"""From Locust's request events to `sent` records: a successful DATA step whose context names
its Message-ID (the SMTP user puts it there) is a message the server accepted."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

from loadtests.stream.records import Sent

__all__ = ["sent_listener"]


def sent_listener(sink: Callable[[Sent], None],
                  scenarios: Collection[str] = ()) -> Callable[..., None]:
    """A listener for `events.request` handing each accepted message's `sent` record to `sink`
    (only those of `scenarios`, when given)."""
    wanted = frozenset(scenarios)

    def on_request(request_type: str = "", name: str = "",
                   exception: BaseException | None = None, context: dict[str, Any] | None = None,
                   start_time: float | None = None, **_: Any) -> None:
        if name != "DATA" or exception is not None or not context:
            return
        mid = context.get("message_id")
        scenario = context.get("scenario")
        if mid is None or (wanted and scenario not in wanted):
            return
        sink(Sent(start_time or time.time(), mid, list(context.get("rcpt") or ()), scenario))

    return on_request
