"""The SMTP and DNS clients against the embedded target, healthy and misbehaving: every
failure comes back as a recorded step carrying the server's reply or the socket error."""

import socket

import pytest

from loadtests import bridge
from loadtests.clients.dns import MxResolver
from loadtests.clients.smtp import Envelope, SmtpOptions, send_session
from loadtests.clients.steps import StepRecorder

OPTS = SmtpOptions(sender="loadgen@mailswarm.test", connect_timeout=1.0, command_timeout=1.0)
TWO = [Envelope(["user0001@example.test", "user0002@example.test"], 3000),
       Envelope(["user0003@example.test"], 500)]


@pytest.fixture(autouse=True)
def _loop():
    bridge.start()


def session(port, envelopes=TWO, options=OPTS):
    rec = StepRecorder("SMTP")
    accepted = bridge.run(send_session("127.0.0.1", port, envelopes, options, rec), timeout=30)
    return accepted, rec


def names(rec):
    return [s.name for s in rec.steps]


def test_healthy_session_times_every_step(embedded):
    accepted, rec = session(embedded.ready["smtp_port"])
    assert accepted == 2 and not rec.failed
    assert names(rec) == ["CONNECT", "EHLO", "MAIL", "RCPT", "RCPT", "DATA", "MAIL", "RCPT",
                          "DATA", "QUIT"]
    assert [s.length for s in rec.steps if s.name == "DATA"] == [3000, 500]
    assert all(s.ms > 0 for s in rec.steps)


def test_refused_connection():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    accepted, rec = session(port)
    assert accepted == 0 and names(rec) == ["CONNECT"]
    assert "refused" in str(rec.steps[0].error).lower() or "connect" in str(rec.steps[0].error)


@pytest.mark.parametrize(("fault", "code"), [("reply-4xx", 451), ("reply-5xx", 554)])
def test_error_replies_carry_the_code(start_target, fault, code):
    target = start_target(fault=fault)
    accepted, rec = session(target.ready["smtp_port"])
    assert accepted == 0
    assert names(rec) == ["CONNECT", "EHLO", "MAIL", "RCPT"]
    assert rec.steps[-1].error.code == code
    assert "injected" in rec.steps[-1].error.message


def test_disconnect_mid_data(start_target):
    target = start_target(fault="close-mid-data")
    accepted, rec = session(target.ready["smtp_port"])
    assert accepted == 0 and names(rec)[-1] == "DATA"
    assert rec.steps[-1].error is not None


@pytest.mark.parametrize("fault", ["stall", "reset", "garbage"])
def test_broken_greetings(start_target, fault):
    target = start_target(fault=fault)
    accepted, rec = session(target.ready["smtp_port"])
    assert accepted == 0 and names(rec) == ["CONNECT"]
    assert rec.steps[0].error is not None
    if fault == "stall":
        assert rec.steps[0].ms == pytest.approx(1000, abs=300)  # the connect timeout


def test_mx_lookup(embedded):
    resolver = MxResolver("127.0.0.1", embedded.ready["dns_port"], aaaa=True)
    rec = StepRecorder("DNS")
    host, addresses = bridge.run(resolver.resolve_mail_host("example.test", rec))
    assert (host, addresses) == ("mail.example.test", ["127.0.0.1", "::1"])
    assert names(rec) == ["MX", "A", "AAAA"] and not rec.failed


def test_mx_lookup_failures(embedded, start_target):
    rec = StepRecorder("DNS")
    resolver = MxResolver("127.0.0.1", embedded.ready["dns_port"])
    with pytest.raises(Exception, match=r"does not exist|NXDOMAIN|REFUSED"):
        bridge.run(resolver.resolve_mail_host("example.org", rec))
    slow = start_target(dns_delay=2.0)
    timeout = MxResolver("127.0.0.1", slow.ready["dns_port"], timeout=0.3)
    rec = StepRecorder("DNS")
    with pytest.raises(Exception):  # noqa: B017 - dnspython's lifetime timeout
        bridge.run(timeout.resolve_mail_host("example.test", rec))
    assert names(rec) == ["MX"] and rec.steps[0].error is not None
    assert rec.steps[0].ms < 1000


def test_dns_concurrency_cap(start_target):
    target = start_target(dns_delay=0.2)
    resolver = MxResolver("127.0.0.1", target.ready["dns_port"], max_concurrent=2)

    async def many():
        import asyncio
        import time
        t0 = time.monotonic()
        await asyncio.gather(*(resolver.resolve_mail_host("example.test", StepRecorder("DNS"))
                               for _ in range(4)))
        return time.monotonic() - t0

    # 4 lookups x 2 queries x 0.2 s, two at a time: about 0.8 s (unlimited: about 0.4 s)
    assert bridge.run(many()) >= 0.75
