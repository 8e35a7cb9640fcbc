"""unbound: authoritative answers for example.test (MX -> mail.example.test -> 127.0.0.1)."""

from __future__ import annotations

from pathlib import Path

from loadtests.stack.services.base import Daemon, Service
from loadtests.stack.settings import DOMAIN, MAIL_HOST, PORTS, StackConfig

__all__ = ["Unbound", "unbound_conf"]


def unbound_conf(*, interface: str, port: int, directory: Path, logfile: Path,
                 access: str = "0.0.0.0/0", verbosity: int = 1, rcvbuf: str | None = None) -> str:
    """unbound's configuration: authoritative for the test domain, in the foreground, one thread
    (the stack's service, and the benches' private unbound)."""
    buffer = f"    so-rcvbuf: {rcvbuf}\n" if rcvbuf else ""
    return f"""\
server:
    interface: {interface}@{port}
    port: {port}
    do-ip6: no
    do-udp: yes
    do-tcp: yes
    access-control: {access} allow
    chroot: ""
    username: ""
    directory: "{directory}"
    pidfile: "{directory}/unbound.pid"
    logfile: "{logfile}"
    use-syslog: no
    verbosity: {verbosity}
    num-threads: 1
{buffer}    auto-trust-anchor-file: ""
    module-config: "iterator"
    local-zone: "{DOMAIN}." static
    local-data: "{DOMAIN}. 3600 IN SOA ns.{DOMAIN}. hostmaster.{DOMAIN}. 1 3600 600 86400 60"
    local-data: "{DOMAIN}. 3600 IN NS ns.{DOMAIN}."
    local-data: "{DOMAIN}. 3600 IN MX 10 {MAIL_HOST}."
    local-data: "{MAIL_HOST}. 3600 IN A 127.0.0.1"
    local-data: "{MAIL_HOST}. 3600 IN AAAA ::1"
    local-data: "ns.{DOMAIN}. 3600 IN A 127.0.0.1"
remote-control:
    control-enable: no
"""


class Unbound(Service):
    name = "unbound"
    summary = f"DNS on port {PORTS['dns']} (UDP+TCP): {DOMAIN} MX 10 {MAIL_HOST} -> 127.0.0.1"
    packages = ("unbound",)
    endpoints = ("dns",)

    def files(self, cfg: StackConfig) -> dict[str, str]:
        base = cfg.run_dir / "unbound"
        conf = unbound_conf(interface=cfg.listen, port=PORTS["dns"], directory=base,
                            logfile=self.log_file(cfg))
        return {"unbound/unbound.conf": conf}

    def daemons(self, cfg: StackConfig) -> list[Daemon]:
        conf = cfg.run_dir / "unbound/unbound.conf"
        return [Daemon("unbound", ("unbound", "-d", "-c", str(conf)), ports=(PORTS["dns"],))]
