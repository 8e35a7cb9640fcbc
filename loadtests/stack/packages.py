"""Installing the Debian packages the stack needs, non-interactively, only what is missing.

Package scripts would start the system's own daemons on the standard ports; a temporary
/usr/sbin/policy-rc.d (exit 101, the Docker convention) stops that for the install's duration.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

__all__ = ["CLIENT_TOOLS", "PackageError", "install", "missing"]

CLIENT_TOOLS = ("swaks", "libnet-ssleay-perl", "openssl", "curl")
"""Real clients the stack's smoke tests drive (installed with the servers by `stack install`)."""

_POLICY = Path("/usr/sbin/policy-rc.d")
_PRESEED = """\
postfix postfix/main_mailer_type select No configuration
roundcube-core roundcube/dbconfig-install boolean false
roundcube-core roundcube/reconfigure-webserver multiselect
roundcube-core roundcube/restart-webserver boolean false
roundcube-core roundcube/hosts string 127.0.0.1
"""


class PackageError(RuntimeError):
    """Packages are missing and could not be installed (not root, or apt-get failed)."""


def missing(packages: Iterable[str]) -> list[str]:
    """The packages of the list that dpkg does not have installed, in the list's order."""
    result = []
    for name in dict.fromkeys(packages):
        probe = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", name],
                               capture_output=True, text=True, check=False)
        if probe.returncode != 0 or not probe.stdout.endswith(" installed"):
            result.append(name)
    return result


def _apt(args: list[str], log: Path | None) -> int:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "NEEDRESTART_MODE": "a"}
    with (open(log, "ab") if log else open(os.devnull, "wb")) as out:
        return subprocess.run(["apt-get", "-q", "-y", *args], env=env, stdout=out,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              check=False).returncode


def install(packages: Iterable[str], log: Path | None = None) -> list[str]:
    """Install what is missing (root only); returns what was installed. Raises PackageError."""
    todo = missing(packages)
    if not todo:
        return []
    if os.geteuid() != 0:
        raise PackageError(f"missing Debian packages {' '.join(todo)}; install them as root "
                           "(mailswarm stack install)")
    subprocess.run(["debconf-set-selections"], input=_PRESEED, text=True, check=False,
                   capture_output=True)
    made_policy = not _POLICY.exists()
    if made_policy:
        _POLICY.write_text("#!/bin/sh\n# mailswarm: no daemon starts during install\nexit 101\n")
        _POLICY.chmod(0o755)
    try:
        args = ["install", "--no-install-recommends", *todo]
        if _apt(args, log) != 0 and (_apt(["update"], log) != 0 or _apt(args, log) != 0):
            where = f"; see {log}" if log else ""
            raise PackageError(f"apt-get could not install {' '.join(todo)}{where}")
    finally:
        if made_policy:
            _POLICY.unlink(missing_ok=True)
    still = missing(todo)
    if still:
        raise PackageError(f"still missing after apt-get: {' '.join(still)}")
    return todo
