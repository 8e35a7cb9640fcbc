"""Postfix: a private instance (`postfix -c DIR`) taking SMTP for example.test into the maildirs.

Pitfalls (DESIGN.md section 4): chroot off in master.cf, data_directory owned by postfix, log
to a file through the postlog service, and no comment after a value in main.cf.
"""

from __future__ import annotations

import os
import pty
import subprocess

from loadtests.stack.layout import postfix_vmailbox
from loadtests.stack.services.base import (
    Daemon,
    Service,
    chown_tree,
    make_mail_root,
    system_ids,
)
from loadtests.stack.services.dovecot import postfix_auth_socket
from loadtests.stack.settings import (
    DOMAIN,
    MAIL_GID,
    MAIL_HOST,
    MAIL_UID,
    PORTS,
    StackConfig,
)
from loadtests.stack.tls import cert_file, install_service_key, service_key

__all__ = ["Postfix"]

# --- TLS and authenticated submission (kept apart from the delivery settings below) ---------

_SUBMISSION_OPTIONS = (
    "smtpd_sasl_auth_enable=yes",
    "smtpd_client_restrictions=permit_sasl_authenticated,reject",
    "smtpd_relay_restrictions=permit_sasl_authenticated,reject",
    "smtpd_recipient_restrictions=permit_sasl_authenticated,reject",
)


def _tls_main(cfg: StackConfig) -> str:
    """main.cf: STARTTLS offered on every smtpd (may), SASL through Dovecot's auth socket,
    switched on only for the submission services (master.cf -o)."""
    return f"""\
smtpd_tls_cert_file = {cert_file(cfg)}
smtpd_tls_key_file = {service_key(cfg, "postfix")}
smtpd_tls_security_level = may
smtpd_tls_mandatory_protocols = >=TLSv1.2
smtpd_tls_protocols = >=TLSv1.2
smtpd_tls_loglevel = 0
smtpd_sasl_type = dovecot
smtpd_sasl_path = {postfix_auth_socket(cfg)}
smtpd_sasl_auth_enable = no
smtpd_sasl_authenticated_header = no
broken_sasl_auth_clients = no
"""


def _submission_services(cfg: StackConfig) -> str:
    """master.cf: submission (STARTTLS required before AUTH) and smtps (implicit TLS)."""
    out = ""
    for port, name, tls in ((PORTS["submission"], "submission",
                             ("smtpd_tls_security_level=encrypt", "smtpd_tls_auth_only=yes")),
                            (PORTS["smtps"], "smtps", ("smtpd_tls_wrappermode=yes",))):
        out += f"{cfg.listen}:{port} inet n - n - - smtpd\n"
        out += "".join(f"  -o {o}\n" for o in (f"syslog_name=postfix/{name}", *tls,
                                                  *_SUBMISSION_OPTIONS))
    return out


def _prepare_tls(cfg: StackConfig) -> None:
    install_service_key(cfg, "postfix")

# service type private unpriv chroot wakeup maxproc command (Debian's list, chroot off)
_MASTER_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


# --- local delivery concurrency (virtual(8) writes the maildirs; S8) --------------------------

def _delivery_main(cfg: StackConfig) -> str:
    """main.cf lines for the delivery concurrency options (none when left at the defaults)."""
    limit = cfg.delivery.destination_limit
    return "" if limit is None else f"virtual_destination_concurrency_limit = {limit}\n"


def _delivery_master(cfg: StackConfig, services: str) -> str:
    """master.cf's service list with the virtual agent's maxproc set when asked for."""
    if cfg.delivery.processes is None:
        return services
    old = "virtual   unix  -       n       n       -       -       virtual\n"
    assert old in services
    return services.replace(old, old.replace("-       virtual",
                                             f"{cfg.delivery.processes:<8}virtual"))


class Postfix(Service):
    name = "postfix"
    summary = (f"SMTP on port {PORTS['smtp']} (STARTTLS), submission {PORTS['submission']} "
               f"(STARTTLS + AUTH), smtps {PORTS['smtps']}: {DOMAIN} into the maildirs")
    packages = ("postfix",)
    endpoints = ("smtp", "submission", "smtps")

    def _dir(self, cfg: StackConfig) -> str:
        """The config directory (kept apart from the queue: postfix-script wants it root-owned)."""
        return str(cfg.run_dir / "postfix/conf")

    def files(self, cfg: StackConfig) -> dict[str, str]:
        base = cfg.run_dir / "postfix"
        inet = "127.0.0.1" if cfg.listen == "127.0.0.1" else "all"
        main = f"""\
# mailswarm reference stack: private Postfix instance (no comment after a value: it breaks)
compatibility_level = 3.6
queue_directory = {base}/queue
data_directory = {base}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = {MAIL_HOST}
mydomain = {DOMAIN}
myorigin = $myhostname
mydestination = localhost
inet_interfaces = {inet}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16
relayhost =
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
smtpd_banner = $myhostname ESMTP mailswarm
smtpd_peername_lookup = no
smtpd_relay_restrictions = reject_unauth_destination
default_transport = error:5.7.1 the mailswarm stack delivers only to {DOMAIN}
relay_transport = error:5.7.1 the mailswarm stack delivers only to {DOMAIN}
message_size_limit = 52428800
maillog_file = {self.log_file(cfg)}
maillog_file_prefixes = {cfg.log_dir}
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_base = {cfg.mail_dir}
virtual_mailbox_maps = texthash:{base}/conf/vmailbox
virtual_minimum_uid = 100
virtual_uid_maps = static:{MAIL_UID}
virtual_gid_maps = static:{MAIL_GID}
virtual_mailbox_limit = 0
""" + _tls_main(cfg) + _delivery_main(cfg)
        master = (f"{cfg.listen}:{PORTS['smtp']} inet n - n - - smtpd\n"
                  + _submission_services(cfg) + _delivery_master(cfg, _MASTER_SERVICES))
        vmailbox = postfix_vmailbox(cfg)
        return {"postfix/conf/main.cf": main, "postfix/conf/master.cf": master,
                "postfix/conf/vmailbox": vmailbox}

    def prepare(self, cfg: StackConfig) -> None:
        base = cfg.run_dir / "postfix"
        (base / "queue").mkdir(parents=True, exist_ok=True)
        data = base / "data"
        data.mkdir(exist_ok=True)
        cfg.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_file(cfg).touch()
        if os.geteuid() == 0:
            uid, gid = system_ids("postfix")
            chown_tree(data, uid, gid)
        make_mail_root(cfg)
        _prepare_tls(cfg)

    def diagnose(self, cfg: StackConfig) -> str:
        """`postfix check` under a pseudo-terminal: Postfix prints fatal errors only to a tty."""
        reader, writer = pty.openpty()
        try:
            subprocess.run(["postfix", "-c", self._dir(cfg), "check"], stdin=writer,
                           stdout=writer, stderr=writer, check=False, timeout=30)
            os.close(writer)
            writer = -1
            chunks = []
            while True:
                try:
                    chunk = os.read(reader, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks).decode(errors="replace").strip()
        finally:
            os.close(reader)
            if writer >= 0:
                os.close(writer)

    def daemons(self, cfg: StackConfig) -> list[Daemon]:
        base = self._dir(cfg)
        return [Daemon("postfix", ("postfix", "-c", base, "start"),
                       ports=tuple(PORTS[e] for e in self.endpoints),
                       daemonizes=True, own_pid_file=cfg.run_dir / "postfix/queue/pid/master.pid")]
