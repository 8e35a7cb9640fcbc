"""A session's request records handed to Locust's `events.request` listeners in one go.

A one-message SMTP session makes seven records (six steps and the session). Fired one by one,
each goes through Locust's `EventHook.fire` (a copy of the listener list, a keyword call per
listener) and each listener formats or counts it alone: about half of the generator's CPU per
session outside the client. `fire_requests` hands the whole list to every listener that is a
`BulkListener` (the run's own stream writer and counters) in one call, and calls every other
listener (Locust's statistics, delivery tracking, a locustfile's own) once per record with
the same keyword arguments as `events.request.fire` — so each listener sees every record, in
the session's order. Listeners run one after another over the whole list rather than all of
them per record: a record another listener writes for a request (a delivery `sent`, a `tls`
record) comes after the session's `req` records instead of right after its own.
"""

from __future__ import annotations

import functools
import logging
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from locust import log
from locust.event import EventHook
from locust.exception import (
    InterruptTaskSet,
    RescheduleTask,
    RescheduleTaskImmediately,
    StopTest,
    StopUser,
)

__all__ = ["BulkListener", "fire_requests"]

Request = dict[str, Any]  # the keyword arguments of one `events.request.fire`

# what EventHook.fire lets through from a listener (it logs every other exception)
_PASS_ON = (StopUser, StopTest, RescheduleTask, RescheduleTaskImmediately, InterruptTaskSet)


class BulkListener(functools.partial):
    """An `events.request` listener (`one`, called with one request's keyword arguments) that
    also takes a session's requests as a list (`many`). A `partial` of `one`, so a single
    record's call costs no extra Python frame."""

    many: Callable[[Sequence[Request]], None]

    def __new__(cls, one: Callable[..., None],
                many: Callable[[Sequence[Request]], None]) -> BulkListener:
        listener = super().__new__(cls, one)
        listener.many = many
        return listener


def fire_requests(hook: EventHook, requests: Sequence[Request]) -> None:
    """Deliver `requests` to every listener of `hook` (Locust's `events.request`), as
    `hook.fire(**request)` for each would, with a `BulkListener` given them all at once."""
    handlers: list[Any] | None = getattr(hook, "_handlers", None)  # EventHook's listener list
    if handlers is None:  # not Locust's EventHook as we know it: one fire per record
        for request in requests:
            hook.fire(**request)
        return
    for handler in handlers.copy():  # a listener may add or remove listeners meanwhile
        try:
            if type(handler) is BulkListener:
                handler.many(requests)
            else:
                for request in requests:
                    handler(**request)
        except _PASS_ON:
            raise
        except Exception:  # as EventHook.fire: logged, the run goes on, the exit code says it
            logging.error("Uncaught exception in event handler: \n%s", traceback.format_exc())
            log.unhandled_greenlet_exception = True
