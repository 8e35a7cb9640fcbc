"""One `SessionCounts` for the generator's session gauge and the embedded target's servers; the
JSON names each side always wrote stay as they were."""

from __future__ import annotations

from loadtests.counts import SessionCounts
from loadtests.embedded.imap import IMAP_CONNECTION_FIELDS, ImapServerStats
from loadtests.embedded.listener import LISTENER_FIELDS
from loadtests.embedded.mailstore import MailStore
from loadtests.embedded.pop3 import POP3_CONNECTION_FIELDS, Pop3Counters
from loadtests.embedded.server import _counters
from loadtests.embedded.web import WebmailServer
from loadtests.schedule.sessions import SessionGauge


def test_open_peak_opened_failed_dropped() -> None:
    c = SessionCounts()
    for _ in range(3):
        c.opening()
    c.closed()
    c.dropped += 1
    c.failed += 1
    c.opening()
    assert (c.open, c.peak, c.opened, c.failed, c.dropped) == (3, 3, 4, 1, 1)
    c.now_open(1)
    assert (c.open, c.peak) == (1, 3)
    assert c.as_dict({"opened": "accepted", "open": "active"}) == {"accepted": 4, "active": 1}


def test_the_generator_gauge_keeps_its_tick_fields() -> None:
    gauge = SessionGauge()
    gauge.opening("IMAP")
    gauge.opening("IMAP")
    gauge.closed("IMAP")
    gauge.dropped("IMAP")
    assert gauge.snapshot() == {"IMAP": {"open": 1, "peak": 2, "opened": 2, "dropped": 1}}


def test_the_embedded_servers_keep_their_stats_names() -> None:
    listener = SessionCounts(open=1, peak=2, opened=5, failed=1)
    assert listener.as_dict(LISTENER_FIELDS) == {"accepted": 5, "active": 1, "peak": 2,
                                                 "refused": 1}
    pop3 = Pop3Counters()
    pop3.opening()
    pop3.add(logins=1)
    assert _counters(pop3, POP3_CONNECTION_FIELDS) == {
        "connections": 1, "active": 1, "logins": 1, "failed_logins": 0, "retrieved": 0,
        "retrieved_bytes": 0, "deleted": 0, "faults": 0}
    imap = ImapServerStats()
    imap.connections.opening()
    imap.connections.closed()
    got = _counters(imap, IMAP_CONNECTION_FIELDS)
    assert (got["connections"], got["open"], got["peak_open"]) == (1, 0, 1)
    assert "sessions" not in got and "failed" not in got


def test_the_webmail_counters_keep_their_names() -> None:
    counters: dict[str, int] = {}
    WebmailServer(MailStore(users=1), counters=counters)
    assert set(counters) == {"requests", "logins", "login_failures", "csrf_failures", "logouts",
                             "sessions_expired", "messages_sent", "sessions_open",
                             "sessions_peak", "connections_open", "connections_peak"}
