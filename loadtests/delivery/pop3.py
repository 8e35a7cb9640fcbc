"""Finding copies by POP3: one poll of one mailbox — log in, list the unique ids, retrieve and
verify the messages not seen before, delete the ones mailswarm sent (optional), quit."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from loadtests.clients.message import SENT_HEADER, Verdict, verify
from loadtests.clients.pop3 import Pop3Client

__all__ = ["Pop3Finder"]

_OURS = SENT_HEADER.encode("ascii") + b":"


@dataclass
class Pop3Finder:
    """Polls mailboxes on `host:port`; `login(mailbox)` gives the user name to log in with."""

    host: str
    port: int
    password: str = field(repr=False)  # never in a repr or a traceback
    login: Callable[[str], str]
    delete: bool = True
    timeout: float = 10.0
    seen: dict[str, set[str]] = field(default_factory=dict)  # mailbox -> UIDLs retrieved

    async def poll(self, mailbox: str) -> list[tuple[Verdict, float]]:
        """The new copies in `mailbox`: (verdict, when found)."""
        out: list[tuple[Verdict, float]] = []
        seen = self.seen.setdefault(mailbox, set())
        async with Pop3Client(self.host, self.port, connect_timeout=self.timeout,
                              read_timeout=self.timeout) as pop:
            await pop.login(self.login(mailbox), self.password)
            for number, uid in await pop.uidl():
                if uid in seen:
                    continue
                data = await pop.retr(number)
                found = time.time()
                seen.add(uid)
                out.append((verify(data), found))
                if self.delete and _OURS in data[:4096]:
                    await pop.dele(number)
                    seen.discard(uid)  # gone after QUIT; a UIDL may be reused
        return out
