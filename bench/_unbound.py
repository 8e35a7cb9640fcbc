"""A private `unbound` for the benches: config in a temp dir, foreground, one thread, on a free
127.0.0.1 port, answering the local zone example.test (MX 10 mail.example.test,
mail.example.test A 127.0.0.1) — the lookups a mail server makes per message."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from _project import HOST, find_tool, stop_pid

__all__ = ["DOMAIN", "MAIL_HOST", "start_unbound"]

DOMAIN = "example.test"
MAIL_HOST = f"mail.{DOMAIN}"


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
    conf = workdir / "unbound.conf"
    conf.write_text(f"""\
server:
    interface: {HOST}@{port}
    port: {port}
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    access-control: 127.0.0.0/8 allow
    chroot: ""
    username: ""
    directory: "{workdir}"
    pidfile: "{workdir}/unbound.pid"
    logfile: "{workdir}/unbound.log"
    use-syslog: no
    verbosity: 0
    num-threads: 1
    so-rcvbuf: 4m
    auto-trust-anchor-file: ""
    module-config: "iterator"
    local-zone: "{DOMAIN}." static
    local-data: "{DOMAIN}. 3600 IN SOA ns.{DOMAIN}. hostmaster.{DOMAIN}. 1 3600 600 86400 60"
    local-data: "{DOMAIN}. 3600 IN NS ns.{DOMAIN}."
    local-data: "{DOMAIN}. 3600 IN MX 10 {MAIL_HOST}."
    local-data: "{MAIL_HOST}. 3600 IN A 127.0.0.1"
    local-data: "ns.{DOMAIN}. 3600 IN A 127.0.0.1"
remote-control:
    control-enable: no
""")
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


