"""The embedded target: DNS answers over UDP and TCP, SMTP accepts its users and counts mail."""

import smtplib
import time

import dns.message
import dns.query
import dns.rcode
import pytest

from loadtests.embedded.dns import DnsZone


def ask(target, name, rdtype, tcp=False):
    query = dns.message.make_query(name, rdtype)
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, "127.0.0.1", port=target.ready["dns_port"], timeout=3)


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_mx_then_address(embedded, tcp):
    mx = ask(embedded, "example.test", "MX", tcp)
    assert [r.to_text() for r in mx.answer[0]] == ["10 mail.example.test."]
    a = ask(embedded, "mail.example.test", "A", tcp)
    assert [r.to_text() for r in a.answer[0]] == ["127.0.0.1"]
    assert [r.to_text() for r in ask(embedded, "mail.example.test", "AAAA", tcp).answer[0]] == [
        "::1"]


def test_unknown_names():
    zone = DnsZone("example.test")
    nx = dns.message.from_wire(zone.answer(dns.message.make_query("x.example.test", "A").to_wire()))
    assert nx.rcode() == dns.rcode.NXDOMAIN
    out = dns.message.from_wire(zone.answer(dns.message.make_query("example.org", "MX").to_wire()))
    assert out.rcode() == dns.rcode.REFUSED
    assert zone.answer(b"\x00garbage") is None


def test_smtp_accepts_known_users_and_counts(embedded):
    with smtplib.SMTP("127.0.0.1", embedded.ready["smtp_port"], local_hostname="t.test",
                      timeout=5) as smtp:
        smtp.sendmail("a@mailswarm.test", ["user0001@example.test", "user1000@example.test"],
                      b"Subject: hi\r\n\r\nbody\r\n")
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp.sendmail("a@mailswarm.test", ["user1001@example.test"], b"x\r\n")
        assert refused.value.recipients["user1001@example.test"][0] == 550
    time.sleep(1.2)  # stats are written every second
    stats = embedded.stats()
    assert stats.smtp_messages == 1
    assert stats.smtp_recipients == 2
    assert stats.smtp_rejected_recipients == 1


def test_slow_dns_is_slow(start_target):
    target = start_target(dns_delay=0.3)
    t0 = time.monotonic()
    ask(target, "example.test", "MX")
    assert time.monotonic() - t0 >= 0.3


def test_stop_leaves_no_process(start_target):
    target = start_target()
    proc = target.process
    target.stop()
    assert proc.poll() is not None  # reaped: no zombie left behind
