"""perdition: the process-per-connection IMAP/POP3 proxy of the seed post, in front of Dovecot.

Every option is on the command line (an empty config file keeps /etc/perdition out). It drops
to `nobody` and reopens its log, so the log file must exist and be writable by nobody; it forks
a child per connection that survives SIGTERM to the parent (the stack stops the whole group).
"""

from __future__ import annotations

import os
from pathlib import Path

from loadtests.stack.services.base import Daemon, Service, system_ids
from loadtests.stack.settings import PORTS, StackConfig
from loadtests.stack.tls import cert_file, install_service_key, service_key

__all__ = ["Perdition"]

# (perdition's protocol name, our endpoint, Dovecot's endpoint, ssl_mode): the plain listeners
# offer STARTTLS/STLS (tls_listen), the implicit ones end TLS (ssl_listen); all plain to Dovecot
_PROTOCOLS = (("imap4", "imap-perdition", "imap", "tls_listen"),
              ("pop3", "pop3-perdition", "pop3", "tls_listen"),
              ("imap4s", "imaps-perdition", "imap", "ssl_listen"),
              ("pop3s", "pop3s-perdition", "pop3", "ssl_listen"))


class Perdition(Service):
    name = "perdition"
    summary = (f"proxy IMAP {PORTS['imap-perdition']}, POP3 {PORTS['pop3-perdition']} (STARTTLS), "
               f"IMAPS {PORTS['imaps-perdition']}, POP3S {PORTS['pop3s-perdition']} -> Dovecot "
               "(one process per connection)")
    packages = ("perdition",)
    endpoints = ("imap-perdition", "pop3-perdition", "imaps-perdition", "pop3s-perdition")
    needs = ("dovecot",)

    def files(self, cfg: StackConfig) -> dict[str, str]:
        return {"perdition/perdition.conf": "# mailswarm: every option is on the command line\n"}

    def _log(self, cfg: StackConfig, proto: str) -> str:
        return str(cfg.log_dir / f"perdition-{proto}.log")

    def log_file(self, cfg: StackConfig) -> Path:
        return cfg.log_dir / "perdition-imap4.log"

    def prepare(self, cfg: StackConfig) -> None:
        uid, gid = system_ids("nobody", "nogroup")
        install_service_key(cfg, "nobody", "nogroup")
        for proto, _, _, _ in _PROTOCOLS:
            log = cfg.log_dir / f"perdition-{proto}.log"
            log.touch()
            if os.geteuid() == 0:
                os.chown(log, uid, gid)

    def daemons(self, cfg: StackConfig) -> list[Daemon]:
        conf = str(cfg.run_dir / "perdition/perdition.conf")
        result = []
        for proto, endpoint, backend, ssl_mode in _PROTOCOLS:
            argv = (
                f"perdition.{proto}", "--no_daemon", "--config_file", conf,
                "--bind_address", cfg.listen, "--listen_port", str(PORTS[endpoint]),
                "--outgoing_server", cfg.backend, "--outgoing_port", str(PORTS[backend]),
                "--ssl_mode", ssl_mode, "--ssl_cert_file", str(cert_file(cfg)),
                "--ssl_key_file", str(service_key(cfg, "nobody")),
                "--no_lookup", "--connection_limit", "0",
                "--username", "nobody", "--group", "nogroup",
                "--log_facility", self._log(cfg, proto),
                "--pid_file", str(cfg.run_dir / f"perdition/{proto}.pid"),
            )
            result.append(Daemon(f"perdition-{proto}", argv, ports=(PORTS[endpoint],)))
        return result
