"""The IMAP client and its sessions against real Dovecot from the project's stack (needs root).

Wrong passwords trigger Dovecot's per-address auth penalty (the next logins from 127.0.0.1 wait
seconds), so the bad-password test runs last, with a generous timeout.
"""

from __future__ import annotations

import asyncio
import os
import random
import smtplib
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from loadtests import bridge
from loadtests.clients.imap import ImapClient, ImapReplyError, active_session, idle_session
from loadtests.clients.steps import StepRecorder
from loadtests.stack import DOMAIN, PASSWORD, PORTS, StackConfig, down, up

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(os.geteuid() != 0, reason="the real stack needs root: it installs "
                       "Debian packages and its daemons switch users"),
]

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def stack() -> Iterator[StackConfig]:
    cfg = StackConfig()
    up(["unbound", "postfix", "dovecot"], config=cfg)
    try:
        yield cfg
    finally:
        down(config=cfg)


@pytest.fixture(autouse=True)
def _loop() -> None:
    bridge.start()


def _send(user: str, subject: str) -> None:
    msg = EmailMessage()
    msg["From"] = "loadgen@mailswarm.test"
    msg["To"] = f"{user}@{DOMAIN}"
    msg["Subject"] = subject
    msg.set_content("mailswarm IMAP test\n" * 20)
    with smtplib.SMTP(HOST, PORTS["smtp"], timeout=10) as smtp:
        smtp.send_message(msg)


def names(rec: StepRecorder) -> list[str]:
    return [s.name for s in rec.steps]


def test_login_select_fetch_search(stack: StackConfig) -> None:
    user = "user0031"
    subject = f"imap-dovecot-{uuid.uuid4().hex[:8]}"
    _send(user, subject)

    async def go():
        client = ImapClient(HOST, PORTS["imap"], connect_timeout=10, read_timeout=20)
        greeting = await client.connect()
        await client.login(user, PASSWORD)
        caps = await client.capability()
        deadline = time.monotonic() + 20
        while True:  # delivery through Postfix takes a moment
            info = await client.select("INBOX")
            found = await client.search(f'SUBJECT "{subject}"')
            if found or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
        whole = await client.fetch_message(str(found[0]), by_uid=True, peek=True)
        headers = await client.fetch_headers(str(found[0]), by_uid=True)
        status = await client.status("INBOX", ("MESSAGES", "UIDNEXT"))
        await client.store(str(found[0]), "+FLAGS", "(\\Seen)")
        unseen = await client.search("UNSEEN")
        await client.logout()
        client.close()
        return greeting, caps, info, found, whole, headers, status, unseen

    greeting, caps, info, found, whole, headers, status, unseen = bridge.run(go(), timeout=60)
    assert greeting.startswith("* OK") and "IDLE" in caps
    assert info.exists >= 1 and info.uid_validity and len(found) == 1
    assert subject.encode() in whole[0].body and b"mailswarm IMAP test" in whole[0].body
    assert headers[0].body.endswith(b"\r\n\r\n") and subject.encode() in headers[0].body
    assert status["MESSAGES"] == info.exists and found[0] not in unseen


def test_idle_session_sees_mail_delivered_by_postfix(stack: StackConfig) -> None:
    user = "user0032"

    async def go():
        rec = StepRecorder("IMAP")
        task = asyncio.ensure_future(idle_session(
            HOST, PORTS["imap"], user, PASSWORD, rec=rec, hold=6, read_timeout=20))
        while "IDLE" not in names(rec) and not task.done():
            await asyncio.sleep(0.05)
        await asyncio.to_thread(_send, user, "idle push")
        return await task, rec

    result, rec = bridge.run(go(), timeout=60)
    assert not rec.failed, [s.error for s in rec.steps]
    assert result.pushes >= 1 and not result.dropped
    assert names(rec)[:4] == ["CONNECT", "LOGIN", "SELECT", "IDLE"]


def test_noop_session_and_cancel_mid_idle(stack: StackConfig) -> None:
    rec = StepRecorder("IMAP")
    result = bridge.run(idle_session(HOST, PORTS["imap"], "user0033", PASSWORD, rec=rec,
                                     hold=1.0, mode="noop", noop_interval=0.3), timeout=30)
    assert not rec.failed and result.noops >= 2

    async def cancelled():
        rec = StepRecorder("IMAP")
        task = asyncio.ensure_future(idle_session(HOST, PORTS["imap"], "user0034", PASSWORD,
                                                  rec=rec, hold=600))
        while "IDLE" not in names(rec) and not task.done():
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return time.monotonic() - t0

    assert bridge.run(cancelled(), timeout=30) < 1.5  # DONE then LOGOUT, not stuck behind IDLE


def test_active_session(stack: StackConfig) -> None:
    for n in range(3):
        _send("user0035", f"active {n}")
    time.sleep(1.0)
    rec = StepRecorder("IMAP")
    result = bridge.run(active_session(HOST, PORTS["imap"], "user0035", PASSWORD, rec=rec,
                                       rng=random.Random(5), actions=2, expunge=True,
                                       read_timeout=20), timeout=60)
    assert not rec.failed, [s.error for s in rec.steps]
    assert result.fetched >= 2 and result.searches == 2 and result.expunged == 1


def test_bad_password_last(stack: StackConfig) -> None:
    """Last: Dovecot's auth penalty slows the next logins from this address."""
    async def go():
        client = ImapClient(HOST, PORTS["imap"], connect_timeout=10, read_timeout=30)
        await client.connect()
        try:
            await client.login("user0036", "wrong-password")
        finally:
            client.close()

    with pytest.raises(ImapReplyError) as err:
        bridge.run(go(), timeout=60)
    assert err.value.code == "NO" and err.value.resp_code == "AUTHENTICATIONFAILED"
