"""Roundcube webmail on php-fpm behind its own nginx, logging in to the stack's Dovecot.

The php-fpm pool sets ROUNDCUBE_CONFIG_DIR to the run folder, so only the config written here
is read (Debian's /etc/roundcube stays as it is); the SQLite database is created there on the
first request. Install it lean: php8.2-fpm first, or apt picks Apache's mod-php.
php-fpm's listen backlog (4096, the kernel's somaxconn here) holds every request 3,000 close-mode
sessions can have in flight: an overload shows as latency, not as nginx's 502 (with 1,024 a
loaded machine saw 502s on a third of the logins).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from loadtests.stack.services.base import Daemon, Service, chown_tree, system_ids
from loadtests.stack.services.nginx import nginx_daemon, nginx_main, prepare_nginx
from loadtests.stack.settings import DOMAIN, PORTS, StackConfig
from loadtests.stack.tls import cert_file, install_service_key, service_key

__all__ = ["Roundcube"]

PHP_FPM = "php-fpm8.2"
DOCUMENT_ROOT = "/var/lib/roundcube/public_html"
DEBIAN_CONFIG = "/etc/roundcube"
_FASTCGI_PARAMS = (
    "QUERY_STRING $query_string", "REQUEST_METHOD $request_method",
    "CONTENT_TYPE $content_type", "CONTENT_LENGTH $content_length",
    "SCRIPT_NAME $fastcgi_script_name", "REQUEST_URI $request_uri",
    "DOCUMENT_URI $document_uri", "DOCUMENT_ROOT $document_root",
    "SERVER_PROTOCOL $server_protocol", "REQUEST_SCHEME $scheme", "HTTPS $https if_not_empty",
    "GATEWAY_INTERFACE CGI/1.1", "SERVER_SOFTWARE nginx/$nginx_version",
    "REMOTE_ADDR $remote_addr", "REMOTE_PORT $remote_port", "SERVER_ADDR $server_addr",
    "SERVER_PORT $server_port", "SERVER_NAME $server_name", "REDIRECT_STATUS 200",
    "SCRIPT_FILENAME $document_root$fastcgi_script_name",
)


def _php(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Roundcube(Service):
    name = "roundcube"
    summary = (f"webmail on HTTP {PORTS['http']} and HTTPS {PORTS['https']} (nginx + php-fpm) "
               "logging in to Dovecot")
    packages = ("php8.2-fpm", "php-fpm", "roundcube-core", "roundcube-sqlite3", "nginx")
    endpoints = ("http", "https")
    needs = ("dovecot",)

    def _base(self, cfg: StackConfig) -> str:
        return str(cfg.run_dir / self.name)

    def files(self, cfg: StackConfig) -> dict[str, str]:
        base = self._base(cfg)
        des_key = hashlib.sha256(base.encode()).hexdigest()[:24]
        settings = {
            "db_dsnw": f"sqlite:///{base}/db/roundcube.sqlite?mode=0640",
            "imap_host": f"{cfg.backend}:{PORTS['imap']}",
            "smtp_host": f"{cfg.smtp_host}:{PORTS['smtp']}",
            "smtp_user": "", "smtp_pass": "",
            "username_domain": DOMAIN, "mail_domain": DOMAIN,
            "des_key": des_key, "product_name": "mailswarm Roundcube", "skin": "elastic",
            "log_driver": "file", "log_dir": f"{cfg.log_dir}/roundcube/",
            "temp_dir": f"{base}/temp/", "support_url": "",
        }
        lines = [f"$config[{_php(k)}] = {_php(v)};" for k, v in settings.items()]
        config = "\n".join([
            "<?php", "// mailswarm reference stack: the only Roundcube config read",
            "$config = [];",
            *lines, "$config['plugins'] = [];", "$config['enable_installer'] = false;",
            "$config['imap_cache'] = null;", "$config['messages_cache'] = false;", ""])
        defaults = f"<?php\ninclude {_php(DEBIAN_CONFIG + '/defaults.inc.php')};\n"
        pool = f"""\
[global]
pid = {base}/php-fpm.pid
error_log = {cfg.log_dir}/roundcube-php-fpm.log
daemonize = no

[roundcube]
user = www-data
group = www-data
listen = {base}/php-fpm.sock
listen.owner = www-data
listen.group = www-data
listen.mode = 0660
listen.backlog = 4096
pm = static
pm.max_children = 8
clear_env = yes
catch_workers_output = yes
env[ROUNDCUBE_CONFIG_DIR] = {base}/config
php_admin_value[error_log] = {cfg.log_dir}/roundcube-php.log
php_admin_flag[log_errors] = on
"""
        params = "".join(f"        fastcgi_param {p};\n" for p in _FASTCGI_PARAMS)
        http = f"""\
    include /etc/nginx/mime.types;
    server {{
        listen {cfg.listen}:{PORTS['http']};
        listen {cfg.listen}:{PORTS['https']} ssl;
        ssl_certificate {cert_file(cfg)};
        ssl_certificate_key {service_key(cfg, "www-data")};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:roundcube_tls:10m;
        root {DOCUMENT_ROOT};
        index index.php;
        client_max_body_size 30m;
        location ~ \\.php$ {{
            fastcgi_pass unix:{base}/php-fpm.sock;
{params}        }}
    }}
"""
        return {
            f"{self.name}/config/config.inc.php": config,
            f"{self.name}/config/defaults.inc.php": defaults,
            f"{self.name}/php-fpm.conf": pool,
            f"{self.name}/nginx.conf": nginx_main(cfg, self.name, http),
        }

    def prepare(self, cfg: StackConfig) -> None:
        base = cfg.run_dir / self.name
        writable = [base / "db", base / "temp", cfg.log_dir / "roundcube"]
        for path in writable:
            path.mkdir(parents=True, exist_ok=True)
        prepare_nginx(cfg, self.name)
        install_service_key(cfg, "www-data")
        if os.geteuid() == 0:
            uid, gid = system_ids("www-data")
            for path in writable:
                chown_tree(path, uid, gid)

    def log_file(self, cfg: StackConfig) -> Path:
        return cfg.log_dir / "roundcube-php-fpm.log"

    def daemons(self, cfg: StackConfig) -> list[Daemon]:
        conf = f"{self._base(cfg)}/php-fpm.conf"
        return [
            Daemon("roundcube-php", (PHP_FPM, "-F", "-y", conf)),
            nginx_daemon(cfg, self.name, (PORTS["http"], PORTS["https"])),
        ]
