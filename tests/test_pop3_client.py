"""The POP3 client against the embedded POP3 server (started in-test on the bridge loop), healthy
and misbehaving, plus the wire-format functions on their own. Every failure of a check-mail
session comes back as a recorded step carrying the server's text or the socket error."""

from __future__ import annotations

import asyncio
import errno
import pickle
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loadtests import bridge
from loadtests.clients.errors import describe
from loadtests.clients.pop3 import (
    Pop3Client,
    Pop3ConnectError,
    Pop3ConnectTimeout,
    Pop3ProtocolError,
    Pop3ReadTimeout,
    Pop3ReplyError,
    Pop3ServerDisconnected,
    apop_digest,
    check_mail,
    dot_unstuff,
    greeting_timestamp,
    parse_capa,
    parse_scan_listing,
    parse_status_line,
)
from loadtests.clients.steps import StepRecorder
from loadtests.embedded.mailstore import MailStore, password_for
from loadtests.embedded.pop3 import POP3_FAULTS, Pop3Server, dot_stuff, top_of

HOST = "127.0.0.1"
USER = "user0001"
PASSWORD = password_for(USER)
TRICKY = (b"Subject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\n\r\nmiddle.\r\n"
          b"...\r\nend.\r\n")


# --- the wire format, no sockets -------------------------------------------------------------

def test_status_lines():
    assert parse_status_line(b"+OK 2 320\r\n") == "2 320"
    assert parse_status_line(b"+OK\r\n") == ""
    with pytest.raises(Pop3ReplyError) as err:
        parse_status_line(b"-ERR [AUTH] Authentication failed.\r\n", command="PASS")
    assert err.value.code == "-ERR" and err.value.message == "[AUTH] Authentication failed."
    assert err.value.resp_code == "AUTH" and err.value.command == "PASS"
    assert str(err.value) == "-ERR [AUTH] Authentication failed."
    copy = pickle.loads(pickle.dumps(err.value))  # crosses process boundaries whole
    assert (copy.message, copy.resp_code, copy.command) == (err.value.message, "AUTH", "PASS")
    with pytest.raises(Pop3ProtocolError, match="not a POP3 reply"):
        parse_status_line(b"220 smtp.example.test ESMTP\r\n")
    with pytest.raises(Pop3ServerDisconnected):
        parse_status_line(b"+OK trunc")  # the connection closed before the line ended
    with pytest.raises(Pop3ServerDisconnected):
        parse_status_line(b"")


@pytest.mark.parametrize("data", [
    b"", b"plain\r\n", b".\r\n", b"..\r\n", b".x\r\n.\r\n..\r\n", TRICKY,
    b"no final line end", b"a\r\n.\r\n\r\n.\r\n",
])
def test_dot_stuffing_round_trips(data):
    wire = dot_stuff(data)
    assert wire.endswith(b".\r\n")
    expected = data if data.endswith(b"\r\n") or not data else data + b"\r\n"
    assert dot_unstuff(wire[:-3]) == expected


def test_dot_stuffing_on_the_wire():
    assert dot_stuff(b".a\r\nb\r\n.\r\n") == b"..a\r\nb\r\n..\r\n.\r\n"
    assert dot_unstuff(b"..a\r\nb\r\n..\r\n") == b".a\r\nb\r\n.\r\n"


def test_listings_capa_apop():
    assert parse_scan_listing("3 1200") == (3, "1200")
    assert parse_scan_listing("1 whqtswO00WBw418f9t5JxYwZ") == (1, "whqtswO00WBw418f9t5JxYwZ")
    with pytest.raises(Pop3ProtocolError):
        parse_scan_listing("x 12")
    assert parse_capa(b"TOP\r\nUSER\r\nSASL PLAIN LOGIN\r\nimplementation x\r\n") == {
        "TOP": [], "USER": [], "SASL": ["PLAIN", "LOGIN"], "IMPLEMENTATION": ["x"]}
    # RFC 1939's own example
    stamp = greeting_timestamp("POP3 server ready <1896.697170952@dbc.mtview.ca.us>")
    assert stamp == "<1896.697170952@dbc.mtview.ca.us>"
    assert apop_digest(stamp, "tanstaaf") == "c4c9334bac560ecc979e58001b3e22fb"
    assert greeting_timestamp("Dovecot ready.") is None


def test_top_of():
    msg = b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n"
    assert top_of(msg, 0) == b"A: 1\r\nB: 2\r\n\r\n"
    assert top_of(msg, 2) == b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n"
    assert top_of(msg, 10) == msg
    assert top_of(b"A: 1\r\n", 3) == b"A: 1\r\n"


# --- against the embedded server -------------------------------------------------------------

Serve = Callable[..., tuple[int, Pop3Server, MailStore]]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Factory: an embedded POP3 server on a free port of the bridge loop -> (port, server,
    store); closed after the test."""
    bridge.start()
    servers: list[asyncio.Server] = []

    def _serve(store: MailStore | None = None, **options: object) -> tuple[int, Pop3Server,
                                                                             MailStore]:
        store = store or MailStore(users=20, messages_per_user=5, message_size=2048)
        server = Pop3Server(store, **options)  # type: ignore[arg-type]
        listener = bridge.run(asyncio.start_server(server.handle, HOST, 0), timeout=5)
        servers.append(listener)
        return listener.sockets[0].getsockname()[1], server, store

    yield _serve

    async def _close(listener: asyncio.Server) -> None:
        listener.close()
        await listener.wait_closed()

    for listener in servers:
        bridge.run(_close(listener), timeout=5)


def run(coro, timeout: float = 20):
    return bridge.run(coro, timeout=timeout)


def session(port: int, **kwargs):
    rec = StepRecorder("POP3")
    opts = {"connect_timeout": 2.0, "read_timeout": 2.0, **kwargs}
    result = run(check_mail(HOST, port, opts.pop("user", USER),
                            opts.pop("password", PASSWORD), rec=rec, **opts))
    return result, rec


def names(rec: StepRecorder) -> list[str]:
    return [s.name for s in rec.steps]


def test_full_session_with_every_command(serve):
    port, server, store = serve()
    box = store.get(USER)
    stored = [m.data for m in box.snapshot()]

    async def go():
        async with Pop3Client(HOST, port, connect_timeout=2, read_timeout=2) as pop:
            assert pop.apop_timestamp and pop.apop_timestamp.endswith("@mail.example.test>")
            caps = await pop.capa()
            assert {"TOP", "UIDL", "USER", "PIPELINING", "RESP-CODES"} <= caps.keys()
            await pop.login(USER, PASSWORD)
            stat = await pop.stat()
            listing = await pop.list()
            uids = await pop.uidl()
            one = (await pop.list_one(2), await pop.uidl_one(2))
            bodies = [await pop.retr(n) for n, _ in listing]
            assert await pop.noop() == ""
            return stat, listing, uids, one, bodies

    stat, listing, uids, one, bodies = run(go())
    assert stat == (5, sum(len(d) for d in stored))
    assert listing == [(n, len(d)) for n, d in enumerate(stored, 1)]
    assert uids == [(n, m.unique_id) for n, m in enumerate(box.snapshot(), 1)]
    assert one == (listing[1], uids[1])
    assert bodies == stored  # byte for byte, dot-stuffed lines included
    assert any(b"\r\n." in d for d in stored)
    assert server.counters.logins == 1 and server.counters.retrieved == 5
    assert server.counters.connections.open == 0


def test_dot_stuffed_and_large_bodies_round_trip(serve):
    port, _, store = serve()
    box = store.get(USER)
    big = b"Subject: big\r\n\r\n" + b"".join(
        b".%07d a line that ends with a dot.\r\n" % i for i in range(100_000))  # ~4 MB
    long_line = b"Subject: long\r\n\r\n" + b"x" * 300_000 + b"\r\n.\r\n"
    for data in (TRICKY, big, long_line, b"Subject: empty body\r\n\r\n"):
        box.append(data)

    async def go():
        async with Pop3Client(HOST, port, connect_timeout=2, read_timeout=5) as pop:
            await pop.login(USER, PASSWORD)
            return [await pop.retr(n) for n in range(6, 10)]

    assert run(go()) == [TRICKY, big, long_line, b"Subject: empty body\r\n\r\n"]


def test_check_mail_records_every_step(serve):
    port, _, store = serve()
    result, rec = session(port, use_capa=True)
    assert result.ok and not rec.failed
    assert names(rec) == ["CONNECT", "CAPA", "USER", "PASS", "STAT", "LIST", "UIDL",
                          *["RETR"] * 5, "QUIT"]
    box = store.get(USER)
    assert [s.length for s in rec.steps if s.name == "RETR"] == [m.size for m in box.snapshot()]
    assert (result.count, result.new, result.retrieved) == (5, 5, 5)
    assert result.retrieved_bytes == sum(m.size for m in box.snapshot())
    assert result.known_uids == {m.unique_id for m in box.snapshot()}
    assert all(s.ms > 0 and s.protocol == "POP3" for s in rec.steps)

    # leave mail on the server: the next check fetches only what is new
    box.append(b"Subject: new one\r\n\r\nhello\r\n")
    again, rec = session(port, known_uids=result.known_uids, use_list=False)
    assert again.ok and names(rec).count("RETR") == 1 and again.new == 1
    assert len(again.known_uids) == 6
    looked, rec = session(port, retrieve="none", known_uids=set())
    assert looked.ok and "RETR" not in names(rec) and looked.new == 6


def test_bad_password_is_a_reply_error_with_the_server_text(serve):
    port, server, _ = serve()
    result, rec = session(port, password="wrong", known_uids={"kept"})
    assert names(rec) == ["CONNECT", "USER", "PASS"] and result.known_uids == {"kept"}
    err = rec.steps[-1].error
    assert isinstance(err, Pop3ReplyError) and result.error is err
    assert err.code == "-ERR" and err.resp_code == "AUTH"
    assert err.message == "[AUTH] invalid user name or password"
    assert server.counters.failed_logins == 1

    async def direct():
        async with Pop3Client(HOST, port, connect_timeout=2, read_timeout=2) as pop:
            with pytest.raises(Pop3ReplyError, match="invalid user name"):
                await pop.login("user9999", PASSWORD)  # no such user
            with pytest.raises(Pop3ReplyError, match="wrong state"):
                await pop.stat()
            return await pop.login(USER, PASSWORD)  # the session goes on after -ERR

    assert run(direct()).startswith("5 messages")


def test_server_closing_mid_retr(serve):
    port, _, _ = serve(fault="close-mid-retr")
    started = time.monotonic()
    result, rec = session(port)
    assert time.monotonic() - started < 5  # no hang
    assert names(rec)[-1] == "RETR" and names(rec).count("RETR") == 1
    err = rec.steps[-1].error
    assert isinstance(err, Pop3ProtocolError) and isinstance(err, ConnectionError)
    assert "closed" in str(err) or "lost" in str(err)
    assert result.error is err and result.retrieved == 0


def test_connect_refused():
    bridge.start()
    with socket.socket() as s:
        s.bind((HOST, 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    result, rec = session(port)
    assert names(rec) == ["CONNECT"]
    assert isinstance(result.error, Pop3ConnectError)
    assert "refused" in str(result.error).lower() and result.error.errno == errno.ECONNREFUSED
    assert describe(result.error).code == "ECONNREFUSED"  # recorded as the errno's name


def test_read_timeout_on_a_stalling_server(serve):
    port, _, _ = serve(fault="stall-retr")
    _, rec = session(port, read_timeout=0.3)
    assert names(rec)[-1] == "RETR"
    err = rec.steps[-1].error
    assert isinstance(err, Pop3ReadTimeout) and isinstance(err, TimeoutError)
    assert not isinstance(err, Pop3ConnectError)
    assert 250 <= rec.steps[-1].ms < 3000


def test_connect_timeout_on_a_silent_server(serve):
    port, _, _ = serve(fault="stall")
    result, rec = session(port, connect_timeout=0.3)
    assert names(rec) == ["CONNECT"]
    assert isinstance(result.error, Pop3ConnectTimeout)
    assert isinstance(result.error, TimeoutError) and isinstance(result.error, ConnectionError)


@pytest.mark.parametrize("fault", ["garbage", "reset"])
def test_broken_greetings(serve, fault):
    port, _, _ = serve(fault=fault)
    result, rec = session(port)
    assert names(rec) == ["CONNECT"]
    if fault == "garbage":
        assert isinstance(result.error, Pop3ProtocolError)
        assert "not a POP3 reply" in str(result.error)
    else:
        assert isinstance(result.error, ConnectionError)


def test_injected_login_failure(serve):
    port, _, _ = serve(fault="reply-err")
    result, rec = session(port)
    assert names(rec)[-1] == "PASS" and result.error.resp_code == "SYS/TEMP"


def test_unknown_fault_is_refused():
    with pytest.raises(ValueError, match="close-mid-retr"):
        Pop3Server(MailStore(), fault="close-mid-data")
    assert "none" in POP3_FAULTS


def test_top(serve):
    port, _, store = serve()
    data = store.get(USER).snapshot()[0].data

    async def go():
        async with Pop3Client(HOST, port, connect_timeout=2, read_timeout=2) as pop:
            await pop.login(USER, PASSWORD)
            return await pop.top(1, 0), await pop.top(1, 3)

    head, three = run(go())
    assert head == data.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    assert three == head + b"".join(line + b"\r\n" for line in
                                    data.split(b"\r\n\r\n", 1)[1].split(b"\r\n")[:3])
    result, rec = session(port, top_lines=2)
    assert result.ok and names(rec).count("TOP") == 5 and "RETR" not in names(rec)


def test_dele_rset_and_dele_quit(serve):
    port, server, store = serve()
    box = store.get(USER)
    first_uid = box.snapshot()[0].uid

    async def dele_then_rset():
        async with Pop3Client(HOST, port, connect_timeout=2, read_timeout=2) as pop:
            await pop.login(USER, PASSWORD)
            await pop.dele(1)
            after_dele = (await pop.stat())[0], [n for n, _ in await pop.list()]
            with pytest.raises(Pop3ReplyError, match="already deleted"):
                await pop.retr(1)
            await pop.rset()
            return after_dele, (await pop.stat())[0]

    assert run(dele_then_rset()) == ((4, [2, 3, 4, 5]), 5)
    assert len(box.snapshot()) == 5

    async def dele_then_drop():
        pop = Pop3Client(HOST, port, connect_timeout=2, read_timeout=2)
        await pop.connect()
        await pop.login(USER, PASSWORD)
        await pop.dele(1)
        pop.close()  # no QUIT: no UPDATE state, nothing is deleted
        await asyncio.sleep(0.1)

    run(dele_then_drop())
    assert len(box.snapshot()) == 5

    async def dele_then_quit():
        async with Pop3Client(HOST, port, connect_timeout=2, read_timeout=2) as pop:
            await pop.login(USER, PASSWORD)
            await pop.dele(1)
            return await pop.quit()

    assert "4 messages left" in run(dele_then_quit())
    assert first_uid not in {m.uid for m in box.snapshot()} and len(box.snapshot()) == 4

    result, rec = session(port, delete=True)
    assert result.ok and result.deleted == 4 and names(rec).count("DELE") == 4
    assert box.snapshot() == [] and result.known_uids == set()
    assert server.counters.deleted == 5


def test_apop(serve):
    port, _, _ = serve()
    result, rec = session(port, use_apop=True)
    assert result.ok and names(rec)[:3] == ["CONNECT", "APOP", "STAT"]
    bad, rec = session(port, use_apop=True, password="wrong")
    assert names(rec)[-1] == "APOP" and bad.error.resp_code == "AUTH"


def test_pipelined_commands_and_bad_input(serve):
    port, _, _ = serve()

    async def raw():
        reader, writer = await asyncio.open_connection(HOST, port)
        await reader.readline()
        writer.write(b"user user0002\r\npass " + PASSWORD.encode() + b"\r\nSTAT\r\n"
                     b"RETR 99\r\nRETR x\r\nXYZZY\r\nTOP 1\r\nquit\r\n")
        await writer.drain()
        lines = []
        while line := await reader.readline():
            lines.append(line)
        writer.close()
        return lines

    lines = run(raw())
    assert [line.split(b" ")[0] for line in lines] == [
        b"+OK", b"+OK", b"+OK", b"-ERR", b"-ERR", b"-ERR", b"-ERR", b"+OK"]


@pytest.fixture
def tls_context(tmp_path: Path) -> ssl.SSLContext:
    if not shutil.which("openssl"):
        pytest.skip("no openssl to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-subj", "/CN=mail.example.test", "-days", "1"],
                   check=True, capture_output=True, timeout=30)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_stls(serve, tls_context):
    port, _, store = serve(ssl_context=tls_context)

    async def go():
        async with Pop3Client(HOST, port, connect_timeout=2, read_timeout=2) as pop:
            assert "STLS" in await pop.capa()
            await pop.starttls()
            after = await pop.capa()
            await pop.login(USER, PASSWORD)
            return "STLS" in after, await pop.retr(1)

    offered_again, data = run(go())
    assert not offered_again and data == store.get(USER).snapshot()[0].data

    plain_port, _, _ = serve()

    async def refused():
        async with Pop3Client(HOST, plain_port, connect_timeout=2, read_timeout=2) as pop:
            with pytest.raises(Pop3ReplyError, match="STLS not available"):
                await pop.starttls()

    run(refused())
