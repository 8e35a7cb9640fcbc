"""The POP3 client against real Dovecot from the project's stack (needs root): a message with
lines starting with "." goes in through Postfix and comes back byte for byte; every command of
the client works on a real server; a bad password is an -ERR carrying Dovecot's text.

The bad-password test runs last and ends with a good login: failed logins from 127.0.0.1 make
Dovecot delay the next logins from it (DESIGN.md section 4) and a success clears that.
"""

from __future__ import annotations

import os
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtests import bridge
from loadtests.clients.pop3 import Pop3Client, Pop3ReplyError, check_mail
from loadtests.clients.steps import StepRecorder

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(os.geteuid() != 0, reason="the real stack needs root (apt, daemons)"),
]

HOST = "127.0.0.1"
USERS = ("user0061", "user0062", "user0063")  # this module's own mailboxes
DOTTED = (b".leading dot\r\n..two dots\r\n.\r\nmiddle\r\n...\r\n. space\r\nends with a dot.\r\n"
          b"\r\n.\r\nlast line\r\n")


@pytest.fixture(scope="module")
def stack() -> Iterator[tuple[int, str, object]]:
    from loadtests.stack import PASSWORD, PORTS, StackConfig, down, up

    cfg = StackConfig()
    try:  # down even when up fails half-way
        up(["unbound", "postfix", "dovecot"], config=cfg)
        bridge.start()
        for user in USERS:
            empty(PORTS["pop3"], user, PASSWORD)
        yield PORTS["pop3"], PASSWORD, cfg
    finally:
        down(config=cfg)


def run(coro, timeout: float = 60):
    return bridge.run(coro, timeout=timeout)


def client(port: int) -> Pop3Client:
    return Pop3Client(HOST, port, connect_timeout=10, read_timeout=20)


def empty(port: int, user: str, password: str) -> None:
    """Leave the mailbox empty (earlier runs' mail stays in the stack's maildirs)."""
    rec = StepRecorder("POP3")
    result = run(check_mail(HOST, port, user, password, rec=rec, retrieve="all", delete=True,
                            connect_timeout=10, read_timeout=20))
    assert result.ok, result.error


def deliver(cfg, user: str, subject: str, body: bytes) -> Path:
    """Send through Postfix and wait for the maildir file; returns its path."""
    from loadtests.stack import DOMAIN, PORTS

    new = cfg.maildir(user) / "new"
    before = set(new.glob("*"))
    message = (f"From: <loadgen@mailswarm.test>\r\nTo: <{user}@{DOMAIN}>\r\n"
               f"Subject: {subject}\r\n\r\n").encode() + body
    with smtplib.SMTP(HOST, PORTS["smtp"], timeout=20) as smtp:
        smtp.sendmail("loadgen@mailswarm.test", [f"{user}@{DOMAIN}"], message)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        arrived = set(new.glob("*")) - before
        if arrived:
            return arrived.pop()
        time.sleep(0.1)
    raise AssertionError(f"no delivery to {user} within 30 s")


def test_dot_stuffed_body_comes_back_exactly(stack):
    port, password, cfg = stack
    user = USERS[0]
    stored = deliver(cfg, user, "dots", DOTTED).read_bytes()
    expected = stored.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")  # maildir has LF lines

    async def go():
        async with client(port) as pop:
            await pop.login(user, password)
            assert (await pop.stat())[0] == 1
            return await pop.retr(1)

    data = run(go())
    assert data == expected
    assert data.endswith(b"\r\n\r\n" + DOTTED)  # the body as sent, dot lines and all


def test_check_mail_session_and_every_command(stack):
    port, password, cfg = stack
    user = USERS[1]
    for n in range(3):
        deliver(cfg, user, f"message {n}", b"line\r\n" * (n + 1) * 50)

    rec = StepRecorder("POP3")
    result = run(check_mail(HOST, port, user, password, rec=rec, use_capa=True,
                            connect_timeout=10, read_timeout=20))
    assert result.ok, result.error
    assert [s.name for s in rec.steps] == ["CONNECT", "CAPA", "USER", "PASS", "STAT", "LIST",
                                           "UIDL", "RETR", "RETR", "RETR", "QUIT"]
    assert (result.count, result.new, result.retrieved) == (3, 3, 3)
    assert len(result.known_uids) == 3

    async def go():
        async with client(port) as pop:
            assert pop.apop_timestamp is None  # APOP is not offered by this Dovecot
            caps = await pop.capa()
            assert {"TOP", "UIDL", "USER", "RESP-CODES"} <= caps.keys()
            await pop.login(user, password)
            listing = await pop.list()
            uids = await pop.uidl()
            one = await pop.list_one(2), await pop.uidl_one(2)
            top = await pop.top(1, 0)
            await pop.dele(1)
            after_dele = (await pop.stat())[0]
            await pop.rset()
            after_rset = (await pop.stat())[0]
            assert await pop.noop() is not None
            await pop.dele(3)
            await pop.quit()
            return listing, uids, one, top, after_dele, after_rset

    listing, uids, one, top, after_dele, after_rset = run(go())
    assert [n for n, _ in listing] == [1, 2, 3] and one == (listing[1], uids[1])
    assert {uid for _, uid in uids} == result.known_uids
    assert top.endswith(b"\r\n\r\n") and b"Subject: message 0" in top and b"line" not in top
    assert (after_dele, after_rset) == (2, 3)

    # DELE then QUIT removed message 3; the client's known UIDs follow the server
    rec = StepRecorder("POP3")
    again = run(check_mail(HOST, port, user, password, rec=rec, known_uids=result.known_uids,
                           connect_timeout=10, read_timeout=20))
    assert again.ok and again.count == 2 and again.new == 0 and again.retrieved == 0
    assert again.known_uids == result.known_uids - {uids[2][1]}


def test_bad_password_is_an_err_with_dovecots_text(stack):
    port, password, _ = stack
    user = USERS[2]
    rec = StepRecorder("POP3")
    result = run(check_mail(HOST, port, user, "not-the-password", rec=rec,
                            connect_timeout=10, read_timeout=30))
    assert [s.name for s in rec.steps] == ["CONNECT", "USER", "PASS"]
    err = result.error
    assert isinstance(err, Pop3ReplyError) and rec.steps[-1].error is err
    assert err.code == "-ERR" and err.resp_code == "AUTH"
    assert "Authentication failed" in err.message

    async def then_good():  # the same connection goes on; a success clears the penalty
        async with client(port) as pop:
            pop.read_timeout = 30
            await pop.login(user, password)
            return await pop.stat()

    assert run(then_good())[0] == 0
