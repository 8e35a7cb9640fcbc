"""A private `unbound` for the benches: config in a temp dir, foreground, one thread, on a free
127.0.0.1 port, answering the local zone example.test (MX 10 mail.example.test,
mail.example.test A 127.0.0.1) — the lookups a mail server makes per message."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from _project import HOST, find_tool, stop_pid, use_project_env

__all__ = ["DOMAIN", "MAIL_HOST", "start_unbound"]

use_project_env()  # before importing loadtests: the benches import this module first
from loadtests.stack.settings import DOMAIN, MAIL_HOST  # noqa: E402


def free_port_udp_tcp() -> int:
    """A loopback port free for both UDP and TCP (unbound binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((HOST, 0))
            port = int(udp.getsockname()[1])
            with socket.socket() as tcp:
                try:
                    tcp.bind((HOST, port))
                except OSError:
                    continue
                return port
    raise OSError("no loopback port free for both UDP and TCP")



def unbound_conf(workdir: Path, port: int) -> Path:
    """The stack's unbound configuration (loadtests.stack.services.unbound), on `port`."""
    from loadtests.stack.services.unbound import unbound_conf as render

    conf = workdir / "unbound.conf"
    conf.write_text(render(interface=HOST, port=port, directory=workdir,
                           logfile=workdir / "unbound.log", access="127.0.0.0/8", verbosity=0,
                           rcvbuf="4m"))
    return conf


def start_unbound(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    tool = find_tool("unbound", "apt-get install unbound")
    port = free_port_udp_tcp()
    proc = subprocess.Popen([tool, "-d", "-c", str(unbound_conf(workdir, port))],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    import dns.message
    import dns.query

    deadline = time.monotonic() + 10
    while True:
        try:
            answer = dns.query.udp(dns.message.make_query(DOMAIN, "MX"), HOST, port=port,
                                   timeout=0.2)
            if answer.answer:
                return proc, port
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_pid(proc.pid)
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                sys.exit(f"unbound did not answer on {HOST}:{port}: {err[-1000:]}")
            time.sleep(0.05)


