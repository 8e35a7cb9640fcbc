"""The IMAP client and its sessions against the embedded IMAP server (started in-test on the
bridge's loop): replies, errors carrying the server's text, IDLE pushes and keepalives, NOOP
polling, drops, stopping idle sessions quickly (DONE then LOGOUT), and what an idle session
costs in memory."""

from __future__ import annotations

import asyncio
import gc
import random
import socket
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass

import gevent
import pytest
from aio import run_coro

from loadtests import bridge
from loadtests.clients.imap import (
    ImapByeError,
    ImapClient,
    ImapConnectError,
    ImapConnectTimeout,
    ImapDisconnected,
    ImapReadTimeout,
    ImapReplyError,
    active_session,
    idle_session,
)
from loadtests.clients.steps import Step, StepRecorder
from loadtests.embedded.imap import ImapServer
from loadtests.embedded.mailstore import MailStore, password_for

HOST = "127.0.0.1"
PW = password_for("user0001")


@dataclass
class Env:
    store: MailStore
    server: ImapServer
    port: int


@pytest.fixture
def serve() -> Iterator:
    """Factory: an embedded IMAP server on the bridge loop, closed after the test."""
    bridge.start()
    servers: list[asyncio.Server] = []

    def _serve(**options: object) -> Env:
        store = MailStore(users=400, messages_per_user=5, message_size=2048)
        server = ImapServer(store, **options)  # type: ignore[arg-type]
        srv = bridge.run(asyncio.start_server(server.handle, HOST, 0, backlog=1024), timeout=5)
        servers.append(srv)
        return Env(store, server, srv.sockets[0].getsockname()[1])

    yield _serve
    for srv in servers:
        srv.close()


@pytest.fixture
def env(serve) -> Env:
    return serve(keepalive_interval=0.2)


def names(rec: StepRecorder) -> list[str]:
    return [s.name for s in rec.steps]


def run(coro, timeout: float = 20):
    return bridge.run(coro, timeout=timeout)


async def logged_in(env: Env, user: str = "user0001", **kw: float) -> ImapClient:
    client = ImapClient(HOST, env.port, connect_timeout=2, read_timeout=2, **kw)
    await client.connect()
    await client.login(user, PW)
    return client


def test_login_and_bad_password(env: Env) -> None:
    async def go():
        client = ImapClient(HOST, env.port, connect_timeout=2, read_timeout=2)
        greeting = await client.connect()
        caps = await client.capability()
        with pytest.raises(ImapReplyError) as bad:
            await client.login("user0001", "wrong")
        await client.login("user0001", PW)
        await client.logout()
        client.close()
        return greeting, caps, bad.value

    greeting, caps, bad = run(go())
    assert greeting.startswith("* OK") and "IDLE" in caps
    assert bad.result == bad.code == "NO" and bad.resp_code == "AUTHENTICATIONFAILED"
    assert "Authentication failed" in bad.text and "NO [AUTHENTICATIONFAILED]" in str(bad)


def test_select_fetch_search_store_expunge(env: Env) -> None:
    box = env.store.get("user0001")

    async def go():
        client = await logged_in(env)
        info = await client.select("INBOX")
        headers = await client.fetch_headers("1:*")
        whole = await client.fetch_message("3", by_uid=True)
        status = await client.status("INBOX", ("MESSAGES", "UNSEEN"))
        found = await client.search('TEXT "line 7 of message 2 for"')
        subject = await client.search('SUBJECT "message 4"', by_uid=False)
        stored = await client.store("2", "+FLAGS", "(\\Flagged \\Deleted)")
        gone = await client.expunge()
        after = await client.select("INBOX")
        await client.logout()
        client.close()
        return info, headers, whole, status, found, subject, stored, gone, after

    info, headers, whole, status, found, subject, stored, gone, after = run(go())
    assert (info.exists, info.uid_validity, info.uid_next) == (5, 1, 6)
    assert [h.uid for h in headers] == [1, 2, 3, 4, 5]
    assert headers[0].body == box.messages[0].data.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    assert whole[0].body == next(m.data for m in box.messages if m.uid == 3)
    assert "\\Seen" in whole[0].flags  # BODY[] (not PEEK) marks it read
    assert status == {"MESSAGES": 5, "UNSEEN": 4}
    assert found == [2] and subject == [4]
    assert stored[0].uid == 2 and "\\Deleted" in stored[0].flags
    assert gone == [2] and after.exists == 4
    assert [m.uid for m in box.snapshot()] == [1, 3, 4, 5]


def test_examine_is_read_only(env: Env) -> None:
    async def go():
        client = await logged_in(env)
        info = await client.examine("INBOX")
        with pytest.raises(ImapReplyError, match="read-only"):
            await client.store("1", "+FLAGS", "(\\Seen)")
        client.close()
        return info

    assert run(go()).read_only
    assert env.store.get("user0001").messages[0].flags == set()


def test_idle_session_gets_the_exists_push_and_ignores_keepalives(env: Env) -> None:
    box = env.store.get("user0007")

    async def go():
        rec = StepRecorder("IMAP")
        task = asyncio.ensure_future(idle_session(
            HOST, env.port, "user0007", PW, rec=rec, hold=1.5, read_timeout=2))
        while env.server.stats.idling < 1:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # a couple of keepalives first
        box.append(b"Subject: new\r\n\r\nhello\r\n")
        return await task, rec

    result, rec = run(go())
    assert not rec.failed and result.pushes == 1 and not result.dropped
    assert result.keepalives >= 2  # `* OK Still here` every 0.2 s, none counted as a push
    assert names(rec) == ["CONNECT", "LOGIN", "SELECT", "IDLE", "LOGOUT"]


def test_idle_is_rearmed_before_the_server_autologout(serve) -> None:
    env = serve(keepalive_interval=10, autologout=0.6)
    rec = StepRecorder("IMAP")
    result = run(idle_session(HOST, env.port, "user0001", PW, rec=rec, hold=1.5,
                              idle_rearm=0.25, read_timeout=2))
    assert not rec.failed and result.rearms >= 4 and not result.dropped
    rec = StepRecorder("IMAP")
    result = run(idle_session(HOST, env.port, "user0001", PW, rec=rec, hold=1.5,
                              idle_rearm=10, read_timeout=2))
    assert result.dropped and "Autologout" in result.reason
    assert isinstance(rec.steps[-1].error, ImapByeError) and rec.steps[-1].name == "IDLE"


def test_noop_mode_counts_pushes(env: Env) -> None:
    box = env.store.get("user0002")

    async def go():
        rec = StepRecorder("IMAP")
        task = asyncio.ensure_future(idle_session(
            HOST, env.port, "user0002", PW, rec=rec, hold=1.0, mode="noop", noop_interval=0.2))
        await asyncio.sleep(0.3)
        box.append(b"Subject: new\r\n\r\nhello\r\n")
        return await task, rec

    result, rec = run(go())
    assert not rec.failed and result.noops >= 3 and result.pushes == 1
    assert names(rec)[:3] == ["CONNECT", "LOGIN", "SELECT"] and names(rec)[-1] == "LOGOUT"
    assert set(names(rec)[3:-1]) == {"NOOP"}
    assert env.server.stats.idling == 0 and env.server.stats.commands["IDLE"] == 0


def test_active_session(env: Env) -> None:
    rec = StepRecorder("IMAP")
    result = run(active_session(HOST, env.port, "user0003", PW, rec=rec, rng=random.Random(3),
                                actions=2, expunge=True))
    assert not rec.failed, [s.error for s in rec.steps]
    assert result.fetched >= 10 and result.searches == 2 and result.stored == 2
    assert result.expunged == 1 and len(env.store.get("user0003").snapshot()) == 4
    assert {"FETCH", "SEARCH", "STORE", "EXPUNGE"} <= set(names(rec))
    flagged = [m for m in env.store.get("user0003").snapshot() if m.flags & {"\\Seen",
                                                                             "\\Flagged"}]
    assert flagged  # the STOREs are visible in the shared store


def test_bad_password_ends_the_session_with_the_server_text(env: Env) -> None:
    rec = StepRecorder("IMAP")
    result = run(idle_session(HOST, env.port, "user0001", "wrong", rec=rec, hold=5))
    assert result.failed and not result.logged_in and names(rec) == ["CONNECT", "LOGIN"]
    assert "AUTHENTICATIONFAILED" in str(rec.steps[-1].error)


def test_cancel_mid_idle_sends_done_then_logout_quickly(env: Env) -> None:
    """A Locust user being stopped: its greenlet is killed while the session idles."""
    rec = StepRecorder("IMAP")
    greenlet = gevent.spawn(bridge.run, idle_session(HOST, env.port, "user0004", PW, rec=rec,
                                                     hold=600))
    deadline = time.monotonic() + 5
    while env.server.stats.idling < 1 and time.monotonic() < deadline:
        gevent.sleep(0.02)
    assert env.server.stats.idling == 1
    t0 = time.monotonic()
    greenlet.kill(block=True, timeout=5)
    assert time.monotonic() - t0 < 1.0
    gevent.sleep(0.1)
    stats = env.server.stats
    assert stats.commands["LOGOUT"] == 1 and stats.idling == 0 and stats.connections.open == 0


def test_300_idle_sessions_stop_within_seconds(env: Env) -> None:
    n = 300

    async def go():
        tasks = [asyncio.ensure_future(idle_session(
            HOST, env.port, f"user{i + 1:04d}", PW, rec=StepRecorder("IMAP"), hold=600,
            connect_timeout=10, read_timeout=10)) for i in range(n)]
        deadline = time.monotonic() + 20
        while env.server.stats.idling < n and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        idling = env.server.stats.idling
        t0 = time.monotonic()
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return idling, time.monotonic() - t0, results

    idling, took, results = run(go(), timeout=40)
    assert idling == n
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert took < 5
    assert env.server.stats.commands["LOGOUT"] == n


def test_per_user_connection_limit(serve) -> None:
    env = serve(max_user_connections=1)

    async def go():
        first = await logged_in(env)
        second = ImapClient(HOST, env.port, connect_timeout=2, read_timeout=2)
        await second.connect()
        with pytest.raises(ImapReplyError) as limit:
            await second.login("user0001", PW)
        second.close()
        await first.logout()
        first.close()
        return limit.value

    err = run(go())
    assert err.resp_code == "LIMIT" and "mail_max_userip_connections=1" in err.text


def test_dropped_during_idle(serve) -> None:
    env = serve(fault="drop-idle")
    rec = StepRecorder("IMAP")
    result = run(idle_session(HOST, env.port, "user0001", PW, rec=rec, hold=5, read_timeout=2))
    assert result.dropped and not result.failed
    assert rec.steps[-1].name == "IDLE" and isinstance(rec.steps[-1].error, ImapDisconnected)
    assert rec.steps[-1].ms < 1500  # noticed at once, not after a timeout


def test_bye_greeting(serve) -> None:
    env = serve(fault="bye")
    rec = StepRecorder("IMAP")
    result = run(idle_session(HOST, env.port, "user0001", PW, rec=rec, hold=5))
    assert result.dropped and names(rec) == ["CONNECT"]
    err = rec.steps[0].error
    assert isinstance(err, ImapByeError) and err.text == "Connection queue full"


@pytest.mark.parametrize("fault", ["stall", "garbage", "refused"])
def test_broken_connects(serve, fault: str) -> None:
    if fault == "refused":
        with socket.socket() as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
    else:
        port = serve(fault=fault).port
    rec = StepRecorder("IMAP")
    result = run(idle_session(HOST, port, "user0001", PW, rec=rec, hold=5, connect_timeout=0.5))
    assert result.failed or result.dropped
    assert names(rec) == ["CONNECT"] and rec.steps[0].ms < 1500
    err = rec.steps[0].error
    expected = {"stall": ImapConnectTimeout, "refused": ImapConnectError}.get(fault)
    if expected:
        assert isinstance(err, expected)
    else:
        assert "not an IMAP greeting" in str(err)


def test_capabilities_that_are_not_utf8_are_kept_not_raised() -> None:
    """A server whose CAPABILITY line carries bytes that are not UTF-8 (an old or broken
    server's vendor atom): the client reads every atom instead of failing the session."""
    async def serve_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK [CAPABILITY IMAP4rev1] ready\r\n")
        while line := await reader.readline():
            writer.write(b"* CAPABILITY IMAP4rev1 IDLE X-VENDOR-\xff\xfe\r\n"
                         + line.split(b" ", 1)[0] + b" OK done\r\n")
        writer.close()

    async def go() -> set[str]:
        server = await asyncio.start_server(serve_one, HOST, 0)
        client = ImapClient(HOST, server.sockets[0].getsockname()[1], connect_timeout=2,
                            read_timeout=2)
        try:
            await client.connect()
            return await client.capability()
        finally:
            client.close()
            server.close()

    caps = run_coro(go(), timeout=20)
    assert caps == {"IMAP4rev1", "IDLE", "X-VENDOR-\xff\xfe"}


def test_read_timeout_is_not_a_connect_timeout(serve) -> None:
    env = serve(command_delay=0.6)
    rec = StepRecorder("IMAP")
    result = run(active_session(HOST, env.port, "user0001", PW, rec=rec, rng=random.Random(),
                                connect_timeout=3, read_timeout=0.3))
    assert result.failed and names(rec) == ["CONNECT", "LOGIN"]
    assert isinstance(rec.steps[-1].error, ImapReadTimeout)
    assert not isinstance(rec.steps[-1].error, ImapConnectError)


def test_an_idle_session_holds_little_python_memory(embedded) -> None:
    """What thousands of idle sessions multiply (bench/imap_idle), the server in its own
    process: Python allocations per session in IDLE. aioimaplib's stock protocol (an
    asyncio.Queue, Events and a Condition: eight deques of ~760 B) and a race task per push
    wait made it ~20.8 KiB; now ~11.2."""
    target = embedded.target
    endpoint = target.endpoint("imap")
    assert endpoint is not None
    n, idle = 200, 0

    def on_step(step: Step) -> None:
        nonlocal idle
        idle += step.name == "IDLE" and step.error is None

    async def go() -> float:
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            tasks = [asyncio.ensure_future(idle_session(
                endpoint.host, endpoint.port, target.users.name(i), target.secret() or "",
                rec=StepRecorder("IMAP", on_step=on_step), hold=600)) for i in range(n)]
            deadline = time.monotonic() + 30
            while idle < n and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            gc.collect()
            per_session = (tracemalloc.get_traced_memory()[0] - before) / n
        finally:
            tracemalloc.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return per_session

    per_session = run(go(), timeout=60)
    assert idle == n
    assert per_session < 14 * 1024


def test_a_recorder_can_keep_only_failed_steps() -> None:
    fired: list[Step] = []
    rec = StepRecorder("IMAP", on_step=fired.append, failures_only=True)

    async def ok() -> None:
        pass

    async def fail() -> None:
        raise ImapDisconnected("gone")

    async def go() -> None:
        for _ in range(3):
            await rec.step("IDLE", ok())
        with pytest.raises(ImapDisconnected):
            await rec.step("IDLE", fail())

    run(go())
    assert len(fired) == 4  # every step still reaches the stream
    assert [type(s.error) for s in rec.steps] == [ImapDisconnected] and rec.failed
