"""Finding copies in a local maildir tree (the real stack, or a server on this host): one poll
of one mailbox reads the files in its `new/` and `cur/` not seen before and verifies them.

Polling, not inotify: only the mailboxes with copies due are scanned (one `scandir` of two
directories each per interval), it works on any file system, needs no watch per directory
(100,000 accounts would exceed the default `fs.inotify.max_user_watches`) and no dependency
(neither `watchfiles` nor `inotify_simple` is installed here). A copy's "found" time is its
file's modification time — when delivery finished writing it — so the latency does not
include the polling interval (bounded by the time it was seen, for clocks that disagree).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from loadtests.clients.message import Verdict, verify

__all__ = ["MaildirFinder"]


class _Sliceable(str):
    """A name whose `{name[a:b]}` in a format template is the slice a:b (str.format hands the
    index over as the text "a:b")."""

    def __getitem__(self, key: object) -> str:
        if isinstance(key, str):
            bounds = [int(part) if part.strip() else None for part in key.split(":")]
            if len(bounds) == 1:
                return str.__getitem__(self, bounds[0] or 0)
            return str.__getitem__(self, slice(*bounds))
        return str.__getitem__(self, key)  # type: ignore[index]


@dataclass
class MaildirFinder:
    """`template` names a mailbox's maildir: `{local}` and `{domain}` of its address, e.g.
    `/srv/mail/{domain}/{local}` (the stack's flat layout), or slices of them for a hashed
    layout, e.g. `/srv/mail/{domain}/{local[-2:]}/{local[-4:-2]}/{local}`; `$VARS` and `~` in
    it are expanded."""

    template: str
    seen: dict[str, set[str]] = field(default_factory=dict)  # mailbox -> file names (base)

    def path(self, mailbox: str) -> str:
        local, _, domain = mailbox.partition("@")
        return os.path.expanduser(os.path.expandvars(self.template)).format(
            local=_Sliceable(local), domain=_Sliceable(domain))

    async def poll(self, mailbox: str) -> list[tuple[Verdict, float]]:
        out: list[tuple[Verdict, float]] = []
        seen = self.seen.setdefault(mailbox, set())
        root = self.path(mailbox)
        for sub in ("new", "cur"):
            try:
                entries = list(os.scandir(os.path.join(root, sub)))
            except FileNotFoundError:
                continue
            for entry in entries:
                base = entry.name.split(":", 1)[0]  # `:2,S` flags change when it is read
                if base in seen or entry.name.startswith("."):
                    continue
                now = time.time()
                try:
                    with open(entry.path, "rb") as f:
                        data = f.read()
                    mtime = entry.stat().st_mtime
                except FileNotFoundError:  # moved new/ -> cur/ meanwhile: next round
                    continue
                seen.add(base)
                out.append((verify(data), min(mtime, now)))
        return out
