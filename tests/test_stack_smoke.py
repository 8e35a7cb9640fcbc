"""Smoke tests of the real reference stack with real clients (needs root: installs, binds, setuid).

The stack starts once for this module (`up` is idempotent) and the last tests take it down and
check that no process and no listener is left.
"""

from __future__ import annotations

import os
import smtplib
import time
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import dns.resolver
import pytest

from loadtests.stack import DOMAIN, PORTS, StackConfig, down, status, up

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(os.geteuid() != 0, reason="the real stack needs root: it installs "
                       "Debian packages and its daemons switch users"),
]

HOST = "127.0.0.1"
SERVICES = ["unbound", "postfix"]


@pytest.fixture(scope="module")
def stack() -> Iterator[StackConfig]:
    cfg = StackConfig()
    up(SERVICES, config=cfg)
    yield cfg
    down(config=cfg)


def _new_mail(cfg: StackConfig, user: str) -> set[Path]:
    return set((cfg.maildir(user) / "new").glob("*"))


def _send(user: str, subject: str) -> None:
    msg = EmailMessage()
    msg["From"] = "loadgen@mailswarm.test"
    msg["To"] = f"{user}@{DOMAIN}"
    msg["Subject"] = subject
    msg.set_content("mailswarm stack smoke test\n")
    with smtplib.SMTP(HOST, PORTS["smtp"], timeout=10) as smtp:
        smtp.send_message(msg)


def _wait_for(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_status_reports_every_service_running(stack: StackConfig) -> None:
    states = status(SERVICES, config=stack)
    for name, state in states.items():
        assert state.running, name
        assert all(state.pids.values()), name
        assert sorted(state.ports.values()) == state.listening, name


def test_up_again_is_idempotent(stack: StackConfig) -> None:
    before = {n: s.pids for n, s in status(SERVICES, config=stack).items()}
    again = up(SERVICES, config=stack)
    assert {n: s.action for n, s in again.items()} == dict.fromkeys(SERVICES, "already running")
    assert {n: s.pids for n, s in again.items()} == before


def test_mx_lookup(stack: StackConfig) -> None:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [HOST]
    resolver.port = PORTS["dns"]
    mx = [(r.preference, r.exchange.to_text()) for r in resolver.resolve(DOMAIN, "MX")]
    assert mx == [(10, f"mail.{DOMAIN}.")]
    assert [r.to_text() for r in resolver.resolve(f"mail.{DOMAIN}", "A")] == ["127.0.0.1"]
    tcp = dns.resolver.Resolver(configure=False)
    tcp.nameservers, tcp.port = [HOST], PORTS["dns"]
    assert tcp.resolve(DOMAIN, "MX", tcp=True)


def test_smtp_delivers_into_the_maildir(stack: StackConfig) -> None:
    before = _new_mail(stack, "user0007")
    subject = f"smoke {uuid.uuid4()}"
    _send("user0007", subject)
    assert _wait_for(lambda: len(_new_mail(stack, "user0007")) == len(before) + 1)
    (path,) = _new_mail(stack, "user0007") - before
    assert subject in path.read_text()


def test_smtp_rejects_unknown_users_and_relaying(stack: StackConfig) -> None:
    with smtplib.SMTP(HOST, PORTS["smtp"], timeout=10) as smtp:
        smtp.ehlo()
        for rcpt in (f"nobody@{DOMAIN}", "someone@elsewhere.test"):
            smtp.mail("loadgen@mailswarm.test")
            code, _ = smtp.rcpt(rcpt)
            assert code >= 500, rcpt
            smtp.rset()


def _our_processes(cfg: StackConfig) -> list[int]:
    """Processes whose cwd or command line points into the run folder."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if state not in "ZX" and str(cfg.run_dir) in cmdline:
            found.append(int(entry.name))
    return found


def test_down_leaves_no_process_and_no_listener(stack: StackConfig) -> None:
    pids = [p for s in status(SERVICES, config=stack).values() for p in s.pids.values() if p]
    assert pids
    states = down(config=stack)
    assert all(not s.running and not s.listening for s in states.values())
    from loadtests.stack.procs import listening_ports, proc_info

    assert not listening_ports(set(PORTS.values()))
    assert all(proc_info(p) is None or not proc_info(p).running for p in pids)  # type: ignore[union-attr]
    assert _our_processes(stack) == []
