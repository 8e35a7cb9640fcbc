"""A session's request events handed to `events.request` listeners at once
(loadtests.users.requests): a BulkListener takes the list, every other listener each record
with `fire`'s keyword arguments; a failing listener is logged as `fire` logs it and the others
still get the records; Locust's control-flow exceptions go through."""

from __future__ import annotations

from typing import Any

import pytest
from locust import log
from locust.event import EventHook
from locust.exception import StopUser

from loadtests.users.requests import BulkListener, fire_requests

REQUESTS = [{"request_type": "SMTP", "name": name, "response_time": 1.0,
             "response_length": 0, "exception": None, "context": {"scenario": "s"},
             "start_time": 1.0, "response": None, "url": None} for name in ("EHLO", "session")]


def test_a_bulk_listener_gets_the_list_and_a_plain_one_each_record() -> None:
    hook = EventHook()
    one: list[dict[str, Any]] = []
    many: list[list[dict[str, Any]]] = []
    plain: list[dict[str, Any]] = []
    hook.add_listener(BulkListener(lambda **kw: one.append(kw), lambda reqs: many.append(
        list(reqs))))
    hook.add_listener(lambda **kw: plain.append(kw))
    fire_requests(hook, REQUESTS)
    assert many == [REQUESTS] and not one
    assert plain == REQUESTS
    hook.fire(**REQUESTS[0])  # one record fired the usual way: the bulk listener's `one`
    assert one == [REQUESTS[0]]


def test_a_failing_listener_is_logged_and_the_others_still_run(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log, "unhandled_greenlet_exception", False)
    hook = EventHook()
    seen: list[str] = []

    def broken(**_: Any) -> None:
        raise ValueError("listener bug")

    hook.add_listener(broken)
    hook.add_listener(lambda name, **_: seen.append(name))
    fire_requests(hook, REQUESTS)
    assert seen == ["EHLO", "session"]
    assert log.unhandled_greenlet_exception is True


def test_stop_user_from_a_listener_goes_through() -> None:
    hook = EventHook()

    def stop(**_: Any) -> None:
        raise StopUser()

    hook.add_listener(stop)
    with pytest.raises(StopUser):
        fire_requests(hook, REQUESTS)
