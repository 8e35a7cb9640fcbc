"""nginx mail proxy (IMAP + POP3) in front of Dovecot; its auth_http is a location of itself.

nginx's compiled-in paths point into /var/lib/nginx and /run, so pid, lock and every temp path
are set into the run folder; the mail module must be loaded explicitly.
"""

from __future__ import annotations

import resource
from pathlib import Path

from loadtests.stack.services.base import Daemon, Service, chown_tree, system_ids
from loadtests.stack.settings import MAIL_HOST, PORTS, StackConfig
from loadtests.stack.tls import cert_file, install_service_key, service_key

__all__ = ["NginxMail", "nginx_main"]

MAIL_MODULE = "/usr/lib/nginx/modules/ngx_mail_module.so"
_TEMPS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def _fd_limit() -> int:
    """The open-files hard limit here (nginx may raise its soft limit up to it)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)


def nginx_main(cfg: StackConfig, name: str, http: str, extra: str = "", workers: int = 1) -> str:
    """An nginx.conf living in <run>/<name>/: foreground, own pid/lock/temp paths, `workers`
    worker processes."""
    base = cfg.run_dir / name
    temps = "".join(f"    {t}_temp_path {base}/tmp/{t};\n" for t in _TEMPS)
    return f"""\
# mailswarm reference stack: {name}
{extra}daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile {_fd_limit()};
user www-data;
pid {base}/nginx.pid;
lock_file {base}/nginx.lock;
error_log {cfg.log_dir / name}.log notice;
events {{
    worker_connections {_fd_limit() // 2};
}}
http {{
    access_log off;
{temps}{http}}}
"""


def prepare_nginx(cfg: StackConfig, name: str) -> None:
    tmp = cfg.run_dir / name / "tmp"
    for t in _TEMPS:
        (tmp / t).mkdir(parents=True, exist_ok=True)
    uid, gid = system_ids("www-data")
    chown_tree(tmp, uid, gid)


def nginx_daemon(cfg: StackConfig, name: str, ports: tuple[int, ...]) -> Daemon:
    conf: Path = cfg.run_dir / name / "nginx.conf"
    log = str(cfg.log_dir / f"{name}.log")
    return Daemon(name, ("nginx", "-e", log, "-c", str(conf), "-p", str(conf.parent)),
                  ports=ports)


def _tls_servers(cfg: StackConfig) -> str:
    """Implicit-TLS IMAP and POP3 listeners: nginx ends TLS and speaks plain to Dovecot."""
    return "".join(f"""\
    server {{
        listen {cfg.listen}:{PORTS[port]} ssl;
        protocol {protocol};
    }}
""" for port, protocol in (("imaps-nginx", "imap"), ("pop3s-nginx", "pop3")))


class NginxMail(Service):
    name = "nginx"
    summary = (f"mail proxy IMAP {PORTS['imap-nginx']}, POP3 {PORTS['pop3-nginx']} (STARTTLS), "
               f"IMAPS {PORTS['imaps-nginx']}, POP3S {PORTS['pop3s-nginx']} -> Dovecot "
               f"(auth_http on {PORTS['nginx-auth']})")
    packages = ("nginx", "libnginx-mod-mail")
    endpoints = ("imap-nginx", "pop3-nginx", "imaps-nginx", "pop3s-nginx")
    needs = ("dovecot",)

    def files(self, cfg: StackConfig) -> dict[str, str]:
        auth = PORTS["nginx-auth"]
        http = f"""\
    map $http_auth_protocol $mailswarm_backend_port {{
        default {PORTS['imap']};
        pop3 {PORTS['pop3']};
    }}
    server {{
        listen 127.0.0.1:{auth};
        location = /auth {{
            add_header Auth-Status OK;
            add_header Auth-Server {cfg.backend};
            add_header Auth-Port $mailswarm_backend_port;
            return 200;
        }}
    }}
"""
        mail = f"""\
mail {{
    server_name {MAIL_HOST};
    auth_http 127.0.0.1:{auth}/auth;
    proxy on;
    proxy_pass_error_message on;
    starttls on;
    ssl_certificate {cert_file(cfg)};
    ssl_certificate_key {service_key(cfg, "www-data")};
    ssl_protocols TLSv1.2 TLSv1.3;
    imap_auth plain login;
    pop3_auth plain;
    server {{
        listen {cfg.listen}:{PORTS['imap-nginx']};
        protocol imap;
    }}
    server {{
        listen {cfg.listen}:{PORTS['pop3-nginx']};
        protocol pop3;
    }}
{_tls_servers(cfg)}}}
"""
        conf = nginx_main(cfg, self.name, http, extra=f"load_module {MAIL_MODULE};\n",
                          workers=cfg.proxy_workers) + mail
        return {f"{self.name}/nginx.conf": conf}

    def prepare(self, cfg: StackConfig) -> None:
        prepare_nginx(cfg, self.name)
        install_service_key(cfg, "www-data")

    def daemons(self, cfg: StackConfig) -> list[Daemon]:
        ports = (*(PORTS[e] for e in self.endpoints), PORTS["nginx-auth"])
        return [nginx_daemon(cfg, self.name, ports)]
