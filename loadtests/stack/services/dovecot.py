"""Dovecot: IMAP and POP3 for the 1,000 test users, reading the maildirs Postfix writes.

Its own base_dir, state_dir and instance_name keep it apart from any other Dovecot; an opening
`{` must end its line. Limits come from `StackConfig.limits` so a test can lower them.
"""

from __future__ import annotations

import os
from pathlib import Path

from loadtests.stack.layout import dovecot_location
from loadtests.stack.services.base import Daemon, Service, make_mail_root, system_ids
from loadtests.stack.settings import (
    DOMAIN,
    MAIL_GID,
    MAIL_UID,
    PASSWORD,
    PORTS,
    DovecotLimits,
    StackConfig,
    user_names,
)
from loadtests.stack.tls import cert_file, service_key

__all__ = ["Dovecot", "postfix_auth_socket"]


def _service_limits(limits: DovecotLimits) -> str:
    lines = [f"  {name} = {value}\n" for name, value in (
        ("process_limit", limits.process_limit), ("client_limit", limits.client_limit),
        ("service_count", limits.service_count)) if value is not None]
    return "".join(lines)


def _global_limits(limits: DovecotLimits) -> str:
    if limits.default_client_limit is None:
        return ""
    return f"default_client_limit = {limits.default_client_limit}\n"


def _login_limits(limits: DovecotLimits) -> str:
    out = ""
    if limits.login_process_limit is not None:
        out += f"  process_limit = {limits.login_process_limit}\n"
    if limits.login_service_count is not None:
        out += f"  service_count = {limits.login_service_count}\n"
        if limits.login_service_count == 0:
            out += f"  process_min_avail = {os.cpu_count() or 1}\n"
    return out


def _protocol_limits(limits: DovecotLimits) -> str:
    if limits.mail_max_userip_connections is None:
        return ""
    return f"  mail_max_userip_connections = {limits.mail_max_userip_connections}\n"


# --- TLS and Postfix's SASL (kept apart from the mail layout and limits above) --------------

def postfix_auth_socket(cfg: StackConfig) -> Path:
    """Dovecot's auth socket for Postfix's submission service (smtpd_sasl_type = dovecot)."""
    return cfg.run_dir / "dovecot/run/auth-postfix"


def _tls_settings(cfg: StackConfig) -> str:
    """ssl = yes with the stack's certificate; STARTTLS on the plain ports, plaintext LOGIN
    still allowed there (the plain endpoints keep working)."""
    return (f"ssl = yes\nssl_cert = <{cert_file(cfg)}\nssl_key = <{service_key(cfg)}\n"
            "ssl_min_protocol = TLSv1.2\n")


def _auth_service(cfg: StackConfig) -> str:
    """The auth socket Postfix's smtpd asks (read-write for the postfix user only; the name is
    relative to base_dir)."""
    return f"""\
service auth {{
  unix_listener {postfix_auth_socket(cfg).name} {{
    mode = 0660
    user = postfix
    group = postfix
  }}
}}
"""


class Dovecot(Service):
    name = "dovecot"
    summary = (f"IMAP {PORTS['imap']}, POP3 {PORTS['pop3']} (STARTTLS), IMAPS {PORTS['imaps']}, "
               f"POP3S {PORTS['pop3s']}: user0001..user1000@{DOMAIN}, limits from options")
    packages = ("dovecot-core", "dovecot-imapd", "dovecot-pop3d")
    endpoints = ("imap", "pop3", "imaps", "pop3s")
    needs = ()

    def files(self, cfg: StackConfig) -> dict[str, str]:
        base = cfg.run_dir / "dovecot"
        limits = _service_limits(cfg.limits)
        proto = _protocol_limits(cfg.limits)
        conf = f"""\
# mailswarm reference stack: private Dovecot instance
instance_name = mailswarm
base_dir = {base}/run
state_dir = {base}/state
log_path = {self.log_file(cfg)}
protocols = imap pop3
listen = {cfg.listen}
{_tls_settings(cfg)}disable_plaintext_auth = no
auth_mechanisms = plain login
auth_default_realm = {DOMAIN}
auth_username_format = %Lu
first_valid_uid = {MAIL_UID}
last_valid_uid = {MAIL_UID}
mail_location = maildir:{dovecot_location(cfg.mail_dir, cfg.layout)}
login_greeting = Dovecot ready.
{_global_limits(cfg.limits)}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/users
}}
userdb {{
  driver = static
  args = uid={MAIL_UID} gid={MAIL_GID} home={dovecot_location(cfg.mail_dir, cfg.layout)}
}}
service imap-login {{
{_login_limits(cfg.limits)}  inet_listener imap {{
    port = {PORTS['imap']}
  }}
  inet_listener imaps {{
    port = {PORTS['imaps']}
    ssl = yes
  }}
}}
service pop3-login {{
{_login_limits(cfg.limits)}  inet_listener pop3 {{
    port = {PORTS['pop3']}
  }}
  inet_listener pop3s {{
    port = {PORTS['pop3s']}
    ssl = yes
  }}
}}
service imap {{
{limits}}}
service pop3 {{
{limits}}}
protocol imap {{
{proto}}}
protocol pop3 {{
{proto}}}
{_auth_service(cfg)}"""
        users = "".join(f"{u}@{DOMAIN}:{{PLAIN}}{PASSWORD}::::::\n"
                        for u in user_names(cfg.users))
        return {"dovecot/dovecot.conf": conf, "dovecot/users": users}

    def prepare(self, cfg: StackConfig) -> None:
        base = cfg.run_dir / "dovecot"
        for sub in ("run", "state"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        # Called only when no master of ours runs: a leftover pid file may name a zombie
        # (PID 1 reaps late) for which kill -0 succeeds, and Dovecot would refuse to start.
        (base / "run/master.pid").unlink(missing_ok=True)
        users = base / "users"
        users.chmod(0o640)
        if os.geteuid() == 0:
            os.chown(users, 0, system_ids("dovecot")[1])  # auth runs as the dovecot user
        make_mail_root(cfg)

    def daemons(self, cfg: StackConfig) -> list[Daemon]:
        conf = str(cfg.run_dir / "dovecot/dovecot.conf")
        return [Daemon("dovecot", ("dovecot", "-F", "-c", conf),
                       ports=tuple(PORTS[e] for e in self.endpoints))]
