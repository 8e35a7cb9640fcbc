"""The real reference stack: Debian's mail servers on 127.0.0.1 high ports, without systemd.

    from loadtests.stack import up, down, status, DovecotLimits
    up(["postfix", "dovecot"], dovecot_limits=DovecotLimits(process_limit=50))
    down()

Tests (and anything else that holds the stack for a while) use `using([...])`, which waits
while another process holds it, so two test sessions on one machine do not stop each other's
servers.

Every config is rendered into a run folder (default /tmp/mailswarm-stack, or
$MAILSWARM_STACK_DIR); nothing under /etc changes. Ports are in `PORTS`.
"""

from __future__ import annotations

from loadtests.stack.manager import (
    ServiceState,
    StackError,
    down,
    install,
    render,
    status,
    up,
)
from loadtests.stack.packages import PackageError
from loadtests.stack.services import SERVICES
from loadtests.stack.session import StackBusy, exclusive, using
from loadtests.stack.settings import (
    DOMAIN,
    PASSWORD,
    PORTS,
    DovecotLimits,
    StackConfig,
    default_run_dir,
    user_names,
)

__all__ = [
    "DOMAIN",
    "PASSWORD",
    "PORTS",
    "SERVICES",
    "DovecotLimits",
    "PackageError",
    "ServiceState",
    "StackBusy",
    "StackConfig",
    "StackError",
    "default_run_dir",
    "down",
    "exclusive",
    "install",
    "render",
    "status",
    "up",
    "user_names",
    "using",
]
