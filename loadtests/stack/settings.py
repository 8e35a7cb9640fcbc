"""What the reference stack is: fixed ports, the mail domain, its users, and the knobs of one run.

Other code (target files, tests, profiles) relies on these ports; change them only together with
`profiles/targets/stack.yaml` and the docker compose file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = [
    "DEFAULT_RUN_DIR",
    "DOMAIN",
    "MAIL_GID",
    "MAIL_HOST",
    "MAIL_UID",
    "PASSWORD",
    "PORTS",
    "RUN_DIR_ENV",
    "TLS_PORTS",
    "USER_COUNT",
    "USER_PATTERN",
    "DeliveryConcurrency",
    "DovecotLimits",
    "Layout",
    "StackConfig",
    "default_run_dir",
    "mailbox_path",
    "user_names",
]

DOMAIN = "example.test"
MAIL_HOST = f"mail.{DOMAIN}"
PASSWORD = "mailswarm-test"  # the one shared test password; never print it
USER_PATTERN = "user{n:04d}"
USER_COUNT = 1000
MAIL_UID = 5000  # owner of the maildirs; needs no passwd entry
MAIL_GID = 5000
RUN_DIR_ENV = "MAILSWARM_STACK_DIR"
DEFAULT_RUN_DIR = Path("/tmp/mailswarm-stack")

PORTS: dict[str, int] = {
    "dns": 10053,
    "smtp": 10025,
    "imap": 10143,
    "pop3": 10110,
    "imap-nginx": 11143,
    "pop3-nginx": 11110,
    "nginx-auth": 10081,
    "imap-perdition": 12143,
    "pop3-perdition": 12110,
    "http": 10080,
    # TLS listeners: the well-known port's last digits on each service's range (993, 995, 587,
    # 465, 443); STARTTLS is offered on the plain ports above
    "imaps": 10993,
    "pop3s": 10995,
    "submission": 10587,
    "smtps": 10465,
    "imaps-nginx": 11993,
    "pop3s-nginx": 11995,
    "imaps-perdition": 12993,
    "pop3s-perdition": 12995,
    "https": 10443,
}
"""Endpoint name -> TCP port (dns is UDP and TCP). Fixed: other code relies on them."""

TLS_PORTS = frozenset(("imaps", "pop3s", "submission", "smtps", "imaps-nginx", "pop3s-nginx",
                       "imaps-perdition", "pop3s-perdition", "https"))
"""The PORTS that speak TLS from the first byte or only after STARTTLS with AUTH (new with TLS;
docker/compose.yaml publishes them too, with one CA shared through a volume)."""


def default_run_dir() -> Path:
    """`$MAILSWARM_STACK_DIR`, else /tmp/mailswarm-stack."""
    return Path(os.environ.get(RUN_DIR_ENV) or DEFAULT_RUN_DIR)


def user_names(count: int = USER_COUNT, first: int = 1) -> list[str]:
    """Local parts of the mailboxes: user0001, user0002, ..."""
    return [USER_PATTERN.format(n=n) for n in range(first, first + count)]


@dataclass(frozen=True)
class DovecotLimits:
    """Dovecot's concurrency limits; None keeps Dovecot's own default (shown in brackets).

    - process_limit: imap and pop3 processes at most [1024]; beyond it LOGIN hangs ~10 s, then
      the connection closes without a reply.
    - client_limit: clients per imap/pop3 process [1]; only matters with service_count 0.
    - service_count: clients a process serves before it exits [1]; 0 = unlimited, so one
      process can hold many clients (up to client_limit).
    - mail_max_userip_connections: sessions per user and client address [10]; beyond it
      `NO [LIMIT]` and a close.
    - default_client_limit: clients of every service that does not set its own, among them
      auth, anvil, stats and log, which every logged-in process talks to [1000]; past it logins
      slow down (DESIGN.md: 1.7 s to 12.7 s per 500 beyond ~1,000 sessions).
    - login_process_limit: imap-login/pop3-login processes at most [100 by
      default_process_limit]; past it `* BYE Connection queue full`.
    - login_service_count: connections a login process serves [1: one process per login,
      "high-security mode"]; 0 = "high-performance mode", a few login processes (one per core
      kept ready) serve every connection, for fast ramps of thousands of sessions.
    """

    process_limit: int | None = None
    client_limit: int | None = None
    service_count: int | None = None
    mail_max_userip_connections: int | None = None
    default_client_limit: int | None = None
    login_process_limit: int | None = None
    login_service_count: int | None = None

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"dovecot {name} must be a whole number >= 0, not {value!r}")


Layout = Literal["flat", "hashed"]
"""Where a mailbox's maildir lives under <mail_dir>/<domain>: `flat` = <local>; `hashed` =
<last two characters>/<the two before>/<local> (Dovecot `%-2.2n/%-4.2n/%n`), so a domain of
100,000 accounts has 100 subdirectories of 100 each instead of 100,000 entries in one."""


@dataclass(frozen=True)
class DeliveryConcurrency:
    """Postfix's local delivery into the maildirs (its virtual(8) agent); None keeps Postfix's
    default (shown in brackets).

    - destination_limit: `virtual_destination_concurrency_limit`, parallel deliveries to one
      domain [20]; every stack mailbox is in one domain, so this is the delivery concurrency.
    - processes: the virtual service's maxproc in master.cf [default_process_limit = 100].
    """

    destination_limit: int | None = None
    processes: int | None = None

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"postfix delivery {name} must be a whole number >= 1, "
                                 f"not {value!r}")


@dataclass(frozen=True)
class StackConfig:
    """Everything that decides what the rendered configs say.

    `listen` is the address every server binds; `backend` the IPv4 address at which the
    proxies and Roundcube reach Dovecot (127.0.0.1 on one machine; a fixed container address
    under docker compose, because nginx's `Auth-Server` must be an IP address).
    """

    run_dir: Path = field(default_factory=default_run_dir)
    limits: DovecotLimits = DovecotLimits()
    listen: str = "127.0.0.1"
    backend: str = "127.0.0.1"
    smtp_host: str = "127.0.0.1"
    users: int = USER_COUNT
    layout: Layout = "flat"
    delivery: DeliveryConcurrency = DeliveryConcurrency()
    # nginx mail proxy worker processes: each holds worker_connections (half the open-files
    # limit) connections, two per proxied session, so one holds ~5,000 sessions here
    proxy_workers: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_dir", Path(self.run_dir).absolute())
        if self.layout not in ("flat", "hashed"):
            raise ValueError(f"layout must be flat or hashed, not {self.layout!r}")
        if not isinstance(self.proxy_workers, int) or not 1 <= self.proxy_workers <= 64:
            raise ValueError(f"proxy_workers must be a whole number from 1 to 64, not "
                             f"{self.proxy_workers!r}")
        if not isinstance(self.users, int) or not 1 <= self.users <= 1_000_000:
            raise ValueError(f"users must be a whole number from 1 to 1,000,000, not "
                             f"{self.users!r}")

    @property
    def log_dir(self) -> Path:
        return self.run_dir / "log"

    @property
    def pid_dir(self) -> Path:
        return self.run_dir / "pids"

    @property
    def tls_dir(self) -> Path:
        """The test CA and the server certificate made at `up` (loadtests/stack/tls.py)."""
        return self.run_dir / "tls"

    @property
    def mail_dir(self) -> Path:
        """Maildirs: <mail_dir>/example.test/user0001/{cur,new,tmp}."""
        return self.run_dir / "mail"

    def pid_file(self, daemon: str) -> Path:
        """The pid file of one daemon's master process (what monitors read)."""
        return self.pid_dir / f"{daemon}.pid"

    def maildir(self, user: str) -> Path:
        return self.mail_dir / mailbox_path(user, self.layout)


def mailbox_path(local: str, layout: Layout, domain: str = DOMAIN) -> str:
    """A mailbox's maildir relative to the mail root, in the given layout (see `Layout`)."""
    if layout == "hashed":
        return f"{domain}/{local[-2:]}/{local[-4:-2]}/{local}"
    return f"{domain}/{local}"
