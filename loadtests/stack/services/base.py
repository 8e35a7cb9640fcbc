"""The shape of one stack service: packages, rendered files, daemons to run, ports to wait for."""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from loadtests.stack.settings import DOMAIN, MAIL_GID, MAIL_UID, PORTS, StackConfig

__all__ = ["Daemon", "Service", "chown_tree", "make_mail_root", "system_ids"]


@dataclass(frozen=True)
class Daemon:
    """One long-running master process of a service.

    Normally it stays in the foreground and its pid is the one we spawned. A daemon that forks
    away by itself (Postfix) sets `daemonizes` and names the pid file it writes.
    """

    name: str
    argv: tuple[str, ...]
    ports: tuple[int, ...] = ()
    daemonizes: bool = False
    own_pid_file: Path | None = None
    env: tuple[tuple[str, str], ...] = ()


class Service(ABC):
    """A server of the stack. Subclasses are stateless; everything comes from StackConfig."""

    name: ClassVar[str]
    summary: ClassVar[str]
    packages: ClassVar[tuple[str, ...]]
    endpoints: ClassVar[tuple[str, ...]]  # keys of settings.PORTS this service answers on
    needs: ClassVar[tuple[str, ...]] = ()  # services it talks to, started before it

    @abstractmethod
    def files(self, cfg: StackConfig) -> dict[str, str]:
        """Config files to write: path relative to the run folder -> text."""

    @abstractmethod
    def daemons(self, cfg: StackConfig) -> list[Daemon]:
        """The processes to start, in order."""

    def prepare(self, cfg: StackConfig) -> None:  # noqa: B027 - optional hook
        """Folders and ownership the daemons need; runs after the files are written."""

    def diagnose(self, cfg: StackConfig) -> str:
        """Extra words for a failure message (e.g. a config check's output); empty by default."""
        return ""

    def ports(self) -> dict[str, int]:
        return {name: PORTS[name] for name in self.endpoints}

    def log_file(self, cfg: StackConfig) -> Path:
        """Where to look first when the service does not come up."""
        return cfg.log_dir / f"{self.name}.log"


def system_ids(user: str, group: str | None = None) -> tuple[int, int]:
    """uid and gid of a system account created by a Debian package."""
    import grp
    import pwd

    entry = pwd.getpwnam(user)
    gid = grp.getgrnam(group).gr_gid if group else entry.pw_gid
    return entry.pw_uid, gid


def chown_tree(path: Path, uid: int, gid: int) -> None:
    """chown a folder and everything below it (only when running as root)."""
    if os.geteuid() != 0:
        return
    shutil.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def make_mail_root(cfg: StackConfig) -> None:
    """The maildir root shared by Postfix (writes) and Dovecot (reads), owned by the mail uid,
    with every account's maildir in the configured layout."""
    from loadtests.stack.layout import provision

    domain = cfg.mail_dir / DOMAIN
    domain.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        for path in (cfg.mail_dir, domain):
            os.chown(path, MAIL_UID, MAIL_GID)
    provision(cfg)
