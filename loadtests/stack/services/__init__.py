"""The servers of the reference stack, in start order, by name."""

from __future__ import annotations

from loadtests.stack.services.base import Daemon, Service
from loadtests.stack.services.dovecot import Dovecot
from loadtests.stack.services.nginx import NginxMail
from loadtests.stack.services.perdition import Perdition
from loadtests.stack.services.postfix import Postfix
from loadtests.stack.services.roundcube import Roundcube
from loadtests.stack.services.unbound import Unbound

__all__ = ["SERVICES", "Daemon", "Service", "resolve"]

SERVICES: dict[str, Service] = {
    s.name: s for s in (Unbound(), Postfix(), Dovecot(), NginxMail(), Perdition(), Roundcube())
}
"""Every service, in the order `up` starts them (dependencies first)."""


def resolve(names: list[str] | None, with_needs: bool = False) -> list[Service]:
    """The named services in start order (all when None); ValueError names an unknown one."""
    if not names:
        return list(SERVICES.values())
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        raise ValueError(f"unknown service {', '.join(unknown)}; "
                         f"choose from {', '.join(SERVICES)}")
    wanted = set(names)
    if with_needs:
        pending = list(names)
        while pending:
            for need in SERVICES[pending.pop()].needs:
                if need not in wanted:
                    wanted.add(need)
                    pending.append(need)
    return [s for name, s in SERVICES.items() if name in wanted]
