"""Finding copies by IMAP IDLE: one session per watched mailbox stays in IDLE on its INBOX; when
the server pushes a change (`N EXISTS`), the session leaves IDLE, FETCHes the messages new since
its last look (UID at or above the next one it expects) whole — headers and body — verifies
each, reports it, and IDLEs again.

The watched mailboxes are fixed when the run starts (the target's first N users) and their
sessions are opened before the load, so a copy is never delivered before its mailbox is
watched: the UIDNEXT of the first SELECT is where looking starts (older mail is not this run's).
A session that fails reconnects with back-off and first catches up from the UID it expected
next, so a copy delivered while it was away is still found. While the server refuses new
sessions (a failed connect or login), one session probes it with back-off and the others wait
until it gets in, so a dead endpoint sees one attempt per back-off, not one per mailbox. A
copy's "found" time is when the push that announced it arrived (the reply to the FETCH, for
copies found by catching up).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from loadtests.clients.errors import describe
from loadtests.clients.imap_client import ImapClient
from loadtests.clients.imap_errors import ImapError
from loadtests.clients.imap_replies import FetchedMessage, MailboxInfo
from loadtests.clients.message import SENT_HEADER, Verdict, verify
from loadtests.clients.tls import TlsConfig

__all__ = ["Found", "ImapIdleFinder"]

Found = Callable[[str, list[tuple[Verdict, float]]], None]
"""Where a watcher hands what it found: (mailbox, [(verdict, when found)])."""

_OURS = SENT_HEADER.encode("ascii") + b":"
_STOP_CHECK = 1.0  # seconds: how soon an idling session notices the tracker stopping
_BACKOFF_MAX = 10.0


@dataclass
class _Box:
    """Where one mailbox's watcher is: the UID it expects next, under which UIDVALIDITY."""

    name: str
    next_uid: int | None = None
    uid_validity: int | None = None


@dataclass
class ImapIdleFinder:
    """Watches `mailboxes` on `host:port`; `login(mailbox)` gives the user name to log in with.
    `delete`: copies of this run's messages are flagged \\Deleted and EXPUNGEd once found."""

    host: str
    port: int
    password: str = field(repr=False)  # never in a repr or a traceback
    login: Callable[[str], str]
    mailboxes: Sequence[str]
    delete: bool = True
    tls: TlsConfig | None = None
    timeout: float = 10.0
    rearm: float = 1500.0  # IDLE is re-sent before the 29 minutes servers allow
    connect_concurrency: int = 20
    ready: set[str] = field(default_factory=set)  # mailboxes selected at least once
    pushes: int = 0
    reconnects: int = 0
    errors: int = 0
    first_error: str | None = None
    last_error: str | None = None
    # while a session fails to get in, `_prober` names the one that retries; `_up` wakes the
    # others when it is in (set exactly when `_prober` is None)
    _up: asyncio.Event = field(default_factory=asyncio.Event, init=False, repr=False)
    _prober: str | None = field(default=None, init=False, repr=False)

    async def watch(self, found: Found, stopping: Callable[[], bool]) -> None:
        """Watch every mailbox until `stopping()`; a session ends within ~1 s of it."""
        gate = asyncio.Semaphore(self.connect_concurrency)
        self._up = asyncio.Event()  # this loop's: the server lets sessions in
        self._up.set()
        await asyncio.gather(*(self._watch(_Box(box), found, stopping, gate)
                               for box in self.mailboxes))

    async def _watch(self, box: _Box, found: Found, stopping: Callable[[], bool],
                     gate: asyncio.Semaphore) -> None:
        backoff, up = 0.5, self._up
        while not stopping():
            if self._prober not in (None, box.name):  # another session probes the server
                await _until_set(up, stopping)
                continue
            client = ImapClient(self.host, self.port, connect_timeout=self.timeout,
                                read_timeout=self.timeout, tls=self.tls)
            opened = False
            try:
                async with gate:
                    await self._open(client, box)
                opened = True
                self._prober = None
                up.set()
                self.ready.add(box.name)
                backoff = 0.5
                await self._follow(client, box, found, stopping)
            except ImapError as exc:  # counted; the session reconnects and catches up
                self.errors += 1
                self.last_error = str(describe(exc))
                self.first_error = self.first_error or self.last_error
                if not opened:  # no new sessions get in: one session probes from now on
                    up.clear()
                    self._prober = self._prober or box.name
            finally:
                await client.stop(1.0)
            if not stopping():
                self.reconnects += 1
                await asyncio.sleep(backoff)
                backoff = min(_BACKOFF_MAX, backoff * 2)

    async def _open(self, client: ImapClient, box: _Box) -> None:
        await client.connect()
        if client.tls is not None and client.tls.mode == "starttls":
            await client.starttls()
            await client.tls_handshake()
        await client.login(self.login(box.name), self.password)
        info = await client.select("INBOX")
        if box.next_uid is None or info.uid_validity != box.uid_validity:
            # first look (or UIDs renumbered): this run's mail is what comes from now on
            box.next_uid = info.uid_next or await _next_uid(client, info)
        box.uid_validity = info.uid_validity

    async def _follow(self, client: ImapClient, box: _Box, found: Found,
                      stopping: Callable[[], bool]) -> None:
        """FETCH what is new, IDLE until a push, again; LOGOUT when stopping."""
        pushed_at: float | None = None
        while not stopping():
            assert box.next_uid is not None
            got, changes = await client.fetch_changes(f"{box.next_uid}:*", "(UID BODY.PEEK[])",
                                                      by_uid=True)
            now = time.time()
            new = [m for m in got if m.uid is not None and m.uid >= box.next_uid]
            if new:
                box.next_uid = max(m.uid for m in new if m.uid is not None) + 1
                found(box.name, [(verify(m.body), pushed_at or now) for m in new])
                if self.delete:
                    await _delete_ours(client, new)
                    # a copy that came meanwhile was announced in the STORE/EXPUNGE replies,
                    # and the next IDLE would not announce it again: look once more first
                    pushed_at = None
                    continue
            if any(b"EXISTS" in line.upper() for line in changes):
                pushed_at = now  # told with the reply: fetch again before idling
                continue
            pushed_at = await self._idle(client, stopping)
        await client.logout()

    async def _idle(self, client: ImapClient, stopping: Callable[[], bool]) -> float | None:
        """IDLE until a push (its time), the re-arm time or stopping (None); then DONE."""
        await client.idle_start()
        until = time.monotonic() + self.rearm
        pushed_at = None
        while not stopping() and (left := until - time.monotonic()) > 0:
            if await client.wait_push(min(_STOP_CHECK, left)):
                pushed_at = time.time()
                self.pushes += 1
                break
        client.idle_done()
        await client.idle_finish()
        return pushed_at


async def _until_set(event: asyncio.Event, stopping: Callable[[], bool]) -> None:
    """Wait for `event`, looking at `stopping()` every _STOP_CHECK seconds."""
    while not event.is_set() and not stopping():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(event.wait(), _STOP_CHECK)


async def _next_uid(client: ImapClient, info: MailboxInfo) -> int:
    """The UID after the mailbox's last message (a server that sent no UIDNEXT)."""
    if not info.exists:
        return 1
    last = await client.fetch("*", "(UID)")
    return max((m.uid for m in last if m.uid is not None), default=0) + 1


async def _delete_ours(client: ImapClient, messages: list[FetchedMessage]) -> None:
    """Flag this run's copies \\Deleted and EXPUNGE them (the mailbox stays small)."""
    uids = [str(m.uid) for m in messages if m.uid is not None and _OURS in m.body[:4096]]
    if uids:
        await client.store(",".join(uids), "+FLAGS.SILENT", "(\\Deleted)")
        await client.expunge()
