"""The SMTP and DNS clients against the embedded target, healthy and misbehaving: every
failure comes back as a recorded step carrying the server's reply or the socket error."""

import socket
import time
from pathlib import Path

import pytest
from cli import ROOT

from loadtests import bridge
from loadtests.clients.dns import MxResolver
from loadtests.clients.errors import describe
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
    error = rec.steps[0].error
    assert error is not None and describe(error).code == "ECONNREFUSED"  # as POP3 and IMAP


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


# -- the protocol layer: a scripted server on the bridge loop ---------------------------------
DEFAULT_REPLIES = {"DATA": b"354 go on\r\n", "QUIT": b"221 bye\r\n"}


@pytest.fixture
def scripted():
    """Factory: an SMTP server on 127.0.0.1 replying `replies[VERB]` (default 250; DATA: 354,
    then `replies["."]` after the message; QUIT: 221; None: never answer). Returns its port."""
    servers = []

    def start(replies, greeting=b"220 scripted\r\n"):

        async def handle(reader, writer):
            writer.write(greeting)
            while line := await reader.readline():
                verb = line.split(b" ", 1)[0].strip().upper().decode()
                reply = replies.get(verb, DEFAULT_REPLIES.get(verb, b"250 ok\r\n"))
                if reply is None:
                    await reader.read()  # stall until the client goes away
                    break
                writer.write(reply)
                if verb == "DATA" and reply.startswith(b"354"):
                    while (await reader.readline()) not in (b".\r\n", b""):
                        pass
                    final = replies.get(".", b"250 queued\r\n")
                    if final is None:
                        await reader.read()
                        break
                    writer.write(final)
                if verb == "QUIT":
                    break
            writer.close()

        return _serve(handle, servers)

    yield start
    _close(servers)


ONE = [Envelope(["user0001@example.test"], 1000)]
FAST = SmtpOptions(sender="loadgen@mailswarm.test", connect_timeout=1.0, command_timeout=0.3)


@pytest.mark.parametrize("verb", ["EHLO", "MAIL", "RCPT", "DATA", ".", "QUIT"])
def test_a_stalled_command_times_out_as_its_own_step(scripted, verb):
    import aiosmtplib

    port = scripted({verb: None})
    t0 = time.monotonic()
    accepted, rec = session(port, ONE, FAST)
    step = rec.steps[-1]
    assert step.name == {".": "DATA"}.get(verb, verb)
    assert isinstance(step.error, aiosmtplib.SMTPReadTimeoutError), step.error
    assert step.ms == pytest.approx(300, abs=150)
    assert time.monotonic() - t0 < 2
    assert [s.error is None for s in rec.steps[:-1]] == [True] * (len(rec.steps) - 1)
    assert accepted == (1 if verb == "QUIT" else 0)


@pytest.mark.parametrize(("verb", "reply", "kind"), [
    ("EHLO", b"550 no ehlo\r\n", "SMTPHeloError"),
    ("MAIL", b"451 try later\r\n", "SMTPSenderRefused"),
    ("RCPT", b"550 no such user\r\n", "SMTPRecipientRefused"),
    ("DATA", b"554 no data\r\n", "SMTPDataError"),
    (".", b"552 too big\r\n", "SMTPDataError"),
    ("QUIT", b"500 what\r\n", "SMTPResponseException"),
])
def test_refusals_carry_code_message_and_address(scripted, verb, reply, kind):
    port = scripted({verb: reply})
    _accepted, rec = session(port, ONE, FAST)
    error = rec.steps[-1].error
    assert type(error).__name__ == kind
    assert (error.code, error.message) == (int(reply[:3]), reply[4:-2].decode())
    if verb in ("MAIL", "RCPT"):
        assert error.args[2] == {"MAIL": FAST.sender, "RCPT": "user0001@example.test"}[verb]


def test_greeting_refused_and_long_replies(scripted):
    import aiosmtplib

    _accepted, rec = session(scripted({}, greeting=b"554 go away\r\n"), ONE, FAST)
    assert names(rec) == ["CONNECT"]
    assert isinstance(rec.steps[0].error, aiosmtplib.SMTPConnectResponseError)
    assert rec.steps[0].error.code == 554
    # an EHLO reply larger than the client's read buffer still arrives whole
    lines = [f"250-EXTENSION{i:04d} {'x' * 60}".encode() for i in range(150)]
    port = scripted({"EHLO": b"\r\n".join(lines) + b"\r\n250 LAST\r\n"})
    accepted, rec = session(port, ONE, FAST)
    assert accepted == 1 and not rec.failed


def test_control_characters_are_refused_and_recorded(scripted):
    options = SmtpOptions(sender="loadgen@mailswarm.test", local_hostname="x\r\nRSET")
    accepted, rec = session(scripted({}), ONE, options)
    assert accepted == 0 and names(rec) == ["CONNECT", "EHLO"]
    assert isinstance(rec.steps[-1].error, ValueError)


def test_a_cancel_from_outside_is_not_taken_for_a_timeout(scripted):
    """The bridge stopping a user cancels the session: that must end it, not be recorded."""
    port = scripted({"MAIL": None})
    slow = SmtpOptions(sender="loadgen@mailswarm.test", command_timeout=5.0)
    rec = StepRecorder("SMTP")
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        bridge.run(send_session("127.0.0.1", port, ONE, slow, rec), timeout=0.3)
    assert time.monotonic() - t0 < 2
    assert names(rec) == ["CONNECT", "EHLO"]


@pytest.mark.parametrize("message", [
    b"Subject: x\r\n\r\nplain\r\n",
    b"Subject: x\r\n\r\n.leading dot\r\n..two\r\nend",
    b".first line is a dot\r\n",
    b"lone\nnewlines\rand CRs\r\n.dot after LF\n",
    b"",
])
def test_data_payload_is_what_aiosmtplib_sends(message):
    from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

    from loadtests.clients.smtp import data_payload

    expected = PERIOD_REGEX.sub(b"..", normalize_message_line_endings(message)) + b".\r\n"
    assert data_payload(message) == expected


@pytest.mark.parametrize("address", [
    "user0001@example.test", "a.b+c_d@x-y.z", '"q u"@x.y', "Name <a@b.c>", "a..b@c", ".a@b",
    "x@[127.0.0.1]",
])
def test_addresses_are_quoted_as_aiosmtplib_quotes_them(address):
    from aiosmtplib.email import quote_address

    from loadtests.clients.smtp import _quoted

    assert _quoted(address) == quote_address(address).encode("ascii")


def test_replies_are_read_through_a_small_buffer():
    """asyncio reads a plain Protocol with recv(256 KiB): an mmap'd buffer per reply."""
    import asyncio

    from loadtests.clients.smtp import _Protocol

    async def make():
        return _Protocol(asyncio.get_running_loop())

    protocol = bridge.run(make())
    assert isinstance(protocol, asyncio.BufferedProtocol)
    assert 512 <= len(protocol.get_buffer(-1)) <= 65536


def test_a_host_name_is_resolved_and_connected(scripted):
    port = scripted({})
    rec = StepRecorder("SMTP")
    accepted = bridge.run(send_session("localhost", port, ONE, FAST, rec), timeout=30)
    assert accepted == 1 and not rec.failed, rec.steps


# -- PIPELINING (RFC 2920): a server that answers a group only once it has all of it ----------
@pytest.fixture
def pipelining_server():
    """Factory: a server offering PIPELINING that answers MAIL only after RCPT and DATA have
    arrived too (451 when they do not come within 0.5 s: the client did not pipeline), with
    the group's replies in one write (`rcpt` is the RCPT reply); after the message it expects
    QUIT already sent and writes the final reply and 221 together. Returns its port."""
    import asyncio

    servers = []

    def start(rcpt=b"250 ok\r\n"):
        async def handle(reader, writer):
            writer.write(b"220 pipelined\r\n")
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-pipelined\r\n250-SIZE 1000000\r\n250 PIPELINING\r\n")
                elif verb == b"MAIL":
                    try:
                        async with asyncio.timeout(0.5):
                            group = [await reader.readline(), await reader.readline()]
                    except TimeoutError:
                        writer.write(b"451 send the group at once\r\n")
                        continue
                    assert [g[:4] for g in group] == [b"RCPT", b"DATA"], group
                    ok = rcpt.startswith(b"2")
                    writer.write(b"250 ok\r\n" + rcpt + (b"354 go on\r\n" if ok else
                                                         b"554 no valid recipients\r\n"))
                    if not ok:
                        continue
                    while (await reader.readline()) not in (b".\r\n", b""):
                        pass
                    async with asyncio.timeout(0.5):
                        after = await reader.readline()
                    writer.write(b"250 queued\r\n" + (b"221 bye\r\n" if after[:4] == b"QUIT"
                                                      else b"500 expected QUIT\r\n"))
                    break
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    break
            writer.close()

        return _serve(handle, servers)

    yield start
    _close(servers)


ONE_RCPT = [Envelope(["user0001@example.test"], 600)]


def test_pipelining_sends_mail_rcpt_data_as_one_group_and_quit_with_the_message(
        pipelining_server):
    accepted, rec = session(pipelining_server(), ONE_RCPT)
    assert accepted == 1 and not rec.failed, rec.steps
    assert names(rec) == ["CONNECT", "EHLO", "MAIL", "RCPT", "DATA", "QUIT"]
    assert [s.length for s in rec.steps if s.name == "DATA"] == [600]


def test_pipelining_off_sends_one_command_at_a_time(pipelining_server):
    from dataclasses import replace

    accepted, rec = session(pipelining_server(), ONE_RCPT, replace(OPTS, pipelining=False))
    assert accepted == 0 and names(rec) == ["CONNECT", "EHLO", "MAIL"]
    assert rec.steps[-1].error.code == 451


def test_pipelined_refused_recipient_ends_the_session_at_rcpt(pipelining_server):
    accepted, rec = session(pipelining_server(rcpt=b"550 no such user\r\n"), ONE_RCPT)
    assert accepted == 0 and names(rec) == ["CONNECT", "EHLO", "MAIL", "RCPT"]
    assert rec.steps[-1].error.code == 550 and rec.steps[2].error is None


def test_a_finished_session_leaves_no_reference_cycle(pipelining_server, monkeypatch):
    """asyncio's socket transport refers to itself (its read callback): the client drops
    that once the connection is lost, so the transport and its socket go with their last
    reference instead of waiting for a garbage collection."""
    import asyncio
    import gc
    import weakref

    from loadtests.clients.smtp import _Protocol

    transports = []
    made = _Protocol.connection_made

    def keep(self, transport):
        transports.append(weakref.ref(transport))
        made(self, transport)

    monkeypatch.setattr(_Protocol, "connection_made", keep)
    port = pipelining_server()
    gc.collect()
    gc.disable()
    try:
        accepted, _rec = session(port, ONE_RCPT)
        bridge.run(asyncio.sleep(0.01))  # the transport's connection_lost runs meanwhile
        assert accepted == 1 and len(transports) == 1
        assert transports[0]() is None
    finally:
        gc.enable()


def test_a_plain_session_to_an_address_skips_create_connection(pipelining_server,
                                                                monkeypatch):
    """The connected socket becomes the transport directly (no wait for connection_made);
    the greeting is still read."""
    calls = []
    ev_loop = bridge.loop()
    create = ev_loop.create_connection

    async def counted(*args, **kwargs):
        calls.append(kwargs)
        return await create(*args, **kwargs)

    monkeypatch.setattr(ev_loop, "create_connection", counted)
    accepted, rec = session(pipelining_server(), ONE_RCPT)
    assert accepted == 1 and not rec.failed, rec.steps
    assert calls == []


def test_replies_that_arrive_together_are_read_one_by_one():
    """Several replies in one packet (a pipelined group's), and one split across packets."""
    import asyncio

    from loadtests.clients.smtp import _Protocol

    class Transport(asyncio.Transport):
        def get_extra_info(self, name, default=None):
            return default

    async def read():
        protocol = _Protocol(asyncio.get_running_loop())
        protocol.connection_made(Transport())
        protocol.data_received(b"250 one\r\n250-two\r\n250 two b\r\n354 go")
        first, second = await protocol.read_response(), await protocol.read_response()
        third = asyncio.ensure_future(protocol.read_response())
        await asyncio.sleep(0)
        assert not third.done()
        protocol.data_received(b" on\r\n221 bye\r\n")
        protocol.connection_lost(None)
        out = [first, second, await third, await protocol.read_response()]
        with pytest.raises(Exception, match="Connection lost"):
            await protocol.read_response()
        return [(r.code, r.message) for r in out]

    assert bridge.run(read(), timeout=5) == [(250, "one"), (250, "two\ntwo b"), (354, "go on"),
                                  (221, "bye")]


def _serve(handle, servers):
    """Start an asyncio server running `handle` on the bridge loop; its port."""
    import asyncio

    async def serve():
        return await asyncio.start_server(handle, "127.0.0.1", 0)

    server = bridge.run(serve())
    servers.append(server)
    return server.sockets[0].getsockname()[1]


def _close(servers):
    async def close_all():
        for server in servers:
            server.close()

    bridge.run(close_all())


@pytest.mark.parametrize("setting, expected", [("", True), ("pipelining: false", False)])
def test_the_profile_turns_pipelining_on_or_off(tmp_path: Path, setting: str,
                                                expected: bool) -> None:
    """`smtp: {pipelining: false}` reaches the client's options (default on)."""
    from loadtests.profiles import load_profile
    from loadtests.schedule.loadplan import build_load
    from loadtests.targets import load_target

    extra = f", {setting}" if setting else ""
    profile = tmp_path / "p.yaml"
    profile.write_text(
        "name: p\nduration: 1s\nscenarios:\n  - name: mta\n    user: smtp\n"
        "    schedule: {kind: closed, users: 1}\n"
        f"    smtp: {{mx_lookup: false, connect_to: endpoint{extra}}}\n")
    classes, _ = build_load(load_profile(profile),
                            load_target(ROOT / "profiles" / "targets" / "stack.yaml"),
                            allow_remote=False)
    assert classes[0].smtp_options().pipelining is expected  # type: ignore[attr-defined]
