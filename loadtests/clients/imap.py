"""IMAP sessions for the load users, timed command by command, on aioimaplib (imap_client.py).

`idle_session` logs in, SELECTs INBOX and stays for `hold` seconds in IDLE (re-armed every
`idle_rearm` seconds, before the 29 minutes servers allow) or NOOP-polling, counting the
mailbox changes the server pushes. `active_session` reads mail: FETCH headers and a whole
message, UID SEARCH, STORE flags, optionally EXPUNGE. Steps: CONNECT, (STARTTLS,) TLS with a
TLS endpoint, LOGIN or AUTHENTICATE (`auth: plain`), SELECT, IDLE (one per re-arm: the time to
the `+` continuation), NOOP, FETCH, SEARCH, STORE, EXPUNGE, LOGOUT. The password and the AUTH
string are blanked out of any error before a step records it.

The first failure ends the session: it is recorded as a failed step carrying the ImapError
(with the server's text) and nothing is raised to the caller, except CancelledError (the user
was stopped), re-raised after a bounded DONE + LOGOUT.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from loadtests.clients.errors import redact
from loadtests.clients.imap_client import ImapClient
from loadtests.clients.imap_errors import (
    ImapByeError,
    ImapConnectError,
    ImapConnectTimeout,
    ImapDisconnected,
    ImapError,
    ImapProtocolError,
    ImapReadTimeout,
    ImapReplyError,
    ImapTimeout,
)
from loadtests.clients.imap_replies import FetchedMessage, MailboxInfo
from loadtests.clients.steps import Step, StepRecorder
from loadtests.clients.tls import TlsConfig

__all__ = [
    "ActiveResult",
    "AfterSelect",
    "FetchedMessage",
    "IdleResult",
    "ImapByeError",
    "ImapClient",
    "ImapConnectError",
    "ImapConnectTimeout",
    "ImapDisconnected",
    "ImapError",
    "ImapProtocolError",
    "ImapReadTimeout",
    "ImapReplyError",
    "ImapTimeout",
    "MailboxInfo",
    "SessionEnd",
    "active_session",
    "idle_session",
    "read_mail",
]

T = TypeVar("T")

TWENTY_FIVE_MINUTES = 1500.0
SEARCHES = ("UNSEEN", "FLAGGED", 'FROM "sender1"', 'SUBJECT "message 2"', 'TEXT "line 7 of"',
            'OR SEEN SUBJECT "message 3"')


@dataclass(slots=True)
class SessionEnd:
    """How a session ended: `dropped` when the server closed the connection or said BYE (the
    user may reconnect with back-off), `failed` for any other failure, `reason` its text."""

    logged_in: bool = False
    dropped: bool = False
    failed: bool = False
    reason: str = ""


@dataclass(slots=True)
class IdleResult(SessionEnd):
    """An idle session: mailbox changes pushed (EXISTS/EXPUNGE/FETCH lines), IDLE re-arms,
    NOOPs sent and keepalives ignored."""

    pushes: int = 0
    rearms: int = 0
    noops: int = 0
    keepalives: int = 0


@dataclass(slots=True)
class ActiveResult(SessionEnd):
    """A mail-reading session: messages fetched and their bytes, searches and their hits,
    STOREs and messages expunged."""

    fetched: int = 0
    bytes: int = 0
    searches: int = 0
    found: int = 0
    stored: int = 0
    expunged: int = 0


AfterSelect = Callable[[ImapClient, StepRecorder, MailboxInfo, ActiveResult], Awaitable[None]]
"""What an active session does between SELECT and LOGOUT: (client, recorder, SELECT reply,
result to fill)."""


async def _recorded(rec: StepRecorder, name: str, action: Awaitable[T]) -> T:
    """Await `action` without timing it as a step, but record its failure as step `name`."""
    started, t0 = time.time(), time.perf_counter()
    try:
        return await action
    except Exception as exc:
        rec.steps.append(Step(rec.protocol, name, started, (time.perf_counter() - t0) * 1000,
                              0, redact(exc, rec.secrets)))
        raise


@contextlib.asynccontextmanager
async def _ending(client: ImapClient, result: SessionEnd,
                  stop_timeout: float) -> AsyncIterator[None]:
    """The end of every session: the first failure (already recorded by its step) ends it
    quietly; a cancellation leaves with DONE + LOGOUT within `stop_timeout` and goes on."""
    try:
        yield
    except asyncio.CancelledError:
        await client.stop(stop_timeout)
        raise
    except Exception as exc:
        result.dropped = isinstance(exc, ImapDisconnected)
        result.failed = not result.dropped
        result.reason = str(exc)
    finally:
        if client.tls is not None:
            client.tls.remember(client.transport)
        client.close()


Auth = Literal["login", "plain"]


async def _open(client: ImapClient, rec: StepRecorder, user: str, password: str,
                result: SessionEnd, auth: Auth) -> MailboxInfo:
    """CONNECT, (STARTTLS,) (TLS,) LOGIN or AUTHENTICATE PLAIN, SELECT INBOX."""
    if password:
        initial = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        rec.secrets = (*rec.secrets, password, initial, initial.rstrip("="))
    await rec.step("CONNECT", client.connect())
    if client.handshake is not None:
        rec.record("TLS", *client.handshake)
    if client.tls is not None and client.tls.mode == "starttls":
        await rec.step("STARTTLS", client.starttls())
        await rec.step("TLS", client.tls_handshake(), info=True)
    if auth == "plain":
        await rec.step("AUTHENTICATE", client.authenticate_plain(user, password))
    else:
        await rec.step("LOGIN", client.login(user, password))
    result.logged_in = True
    return await rec.step("SELECT", client.select("INBOX"))


async def idle_session(host: str, port: int, user: str, password: str, *, rec: StepRecorder,
                       hold: float, mode: Literal["idle", "noop"] = "idle",
                       noop_interval: float = 60.0, idle_rearm: float = TWENTY_FIVE_MINUTES,
                       connect_timeout: float = 10.0, read_timeout: float = 30.0,
                       stop_timeout: float = 1.0, tls: TlsConfig | None = None,
                       auth: Auth = "login") -> IdleResult:
    """Log in, SELECT INBOX, stay `hold` seconds idle (IDLE or NOOP polling), LOG OUT."""
    if mode not in ("idle", "noop"):
        raise ValueError(f"mode must be 'idle' or 'noop', not {mode!r}")
    result = IdleResult()
    client = ImapClient(host, port, connect_timeout=connect_timeout, read_timeout=read_timeout,
                        tls=tls)
    async with _ending(client, result, stop_timeout):
        await _open(client, rec, user, password, result, auth)
        deadline = time.monotonic() + hold
        if mode == "idle":
            await _hold_idle(client, rec, deadline, idle_rearm, result)
        else:
            await _hold_noop(client, rec, deadline, noop_interval, result)
        await rec.step("LOGOUT", client.logout())
    result.keepalives = client.keepalives
    return result


async def _hold_idle(client: ImapClient, rec: StepRecorder, deadline: float, rearm: float,
                     result: IdleResult) -> None:
    first = True
    while time.monotonic() < deadline:
        await rec.step("IDLE", client.idle_start())
        if not first:
            result.rearms += 1
        first = False
        cycle_end = min(deadline, time.monotonic() + rearm)
        while (left := cycle_end - time.monotonic()) > 0:
            result.pushes += len(await _recorded(rec, "IDLE", client.wait_push(left)))
        client.idle_done()
        await _recorded(rec, "IDLE", client.idle_finish())


async def _hold_noop(client: ImapClient, rec: StepRecorder, deadline: float, interval: float,
                     result: IdleResult) -> None:
    while (left := deadline - time.monotonic()) > 0:
        await _recorded(rec, "NOOP", _sleep_watching(client, min(interval, left)))
        if time.monotonic() >= deadline:
            break
        result.pushes += len(await rec.step("NOOP", client.noop()))
        result.noops += 1


async def _sleep_watching(client: ImapClient, seconds: float) -> None:
    """Sleep, but fail as soon as the server closes the connection."""
    ended = client.protocol.ended
    await asyncio.wait({ended}, timeout=seconds)
    if ended.done():
        ended.result()


async def active_session(host: str, port: int, user: str, password: str, *,
                         rec: StepRecorder, rng: random.Random, actions: int = 3,
                         search: bool = True, flag_changes: bool = True, expunge: bool = False,
                         headers: int = 10, searches: tuple[str, ...] = SEARCHES,
                         think: float = 0.0, connect_timeout: float = 10.0,
                         read_timeout: float = 30.0, stop_timeout: float = 1.0,
                         tls: TlsConfig | None = None, auth: Auth = "login",
                         after_select: AfterSelect | None = None) -> ActiveResult:
    """A mail-reading session: LOGIN, SELECT INBOX, then `actions` rounds of (FETCH the
    headers of the `headers` newest messages, FETCH one whole message, UID SEARCH, UID STORE
    +FLAGS \\Seen or \\Flagged), `think` seconds apart; with `expunge`, one message is marked
    \\Deleted and EXPUNGEd; LOGOUT. `after_select`, when given, replaces what happens between
    SELECT and LOGOUT (`read_mail`): it gets the logged-in client, the recorder, the SELECT
    reply and the result to fill."""
    result = ActiveResult()
    client = ImapClient(host, port, connect_timeout=connect_timeout, read_timeout=read_timeout,
                        tls=tls)
    async with _ending(client, result, stop_timeout):
        info = await _open(client, rec, user, password, result, auth)
        if after_select is not None:
            await after_select(client, rec, info, result)
        else:
            await read_mail(client, rec, rng, info, result, actions=actions, search=search,
                            flag_changes=flag_changes, expunge=expunge, headers=headers,
                            searches=searches, think=think)
        await rec.step("LOGOUT", client.logout())
    return result


async def read_mail(client: ImapClient, rec: StepRecorder, rng: random.Random,
                    info: MailboxInfo, result: ActiveResult, *, actions: int = 3,
                    search: bool = True, flag_changes: bool = True, expunge: bool = False,
                    headers: int = 10, searches: tuple[str, ...] = SEARCHES,
                    think: float = 0.0) -> None:
    """What an active session does between SELECT and LOGOUT (see `active_session`)."""
    for n in range(actions):
        if n and think > 0:
            await _recorded(rec, "NOOP", _sleep_watching(client, think))
        await _read_round(client, rec, rng, info, result, headers=headers,
                          search=search, flag_changes=flag_changes, searches=searches)
    if expunge and info.exists:
        uid = await _random_uid(client, rec, rng, info)
        if uid is not None:
            await rec.step("STORE", client.store(str(uid), "+FLAGS.SILENT", "(\\Deleted)"))
            result.expunged += len(await rec.step("EXPUNGE", client.expunge()))


async def _random_uid(client: ImapClient, rec: StepRecorder, rng: random.Random,
                      info: MailboxInfo) -> int | None:
    seq = rng.randint(1, info.exists)
    got = await rec.step("FETCH", client.fetch(str(seq), "(UID FLAGS)"))
    return got[0].uid if got else None


async def _read_round(client: ImapClient, rec: StepRecorder, rng: random.Random,
                      info: MailboxInfo, result: ActiveResult, *, headers: int, search: bool,
                      flag_changes: bool, searches: tuple[str, ...]) -> None:
    if info.exists:
        first = max(1, info.exists - headers + 1)
        got = await rec.step("FETCH", client.fetch_headers(f"{first}:{info.exists}"))
        result.fetched += len(got)
        result.bytes += sum(len(m.body) for m in got)
        uids = [m.uid for m in got if m.uid is not None]
        if uids:
            uid = rng.choice(uids)
            whole = await rec.step("FETCH", client.fetch_message(str(uid), by_uid=True))
            result.fetched += len(whole)
            result.bytes += sum(len(m.body) for m in whole)
            if flag_changes:
                flag = rng.choice(("\\Seen", "\\Flagged"))
                await rec.step("STORE", client.store(str(uid), "+FLAGS", f"({flag})"))
                result.stored += 1
    if search and searches:
        found = await rec.step("SEARCH", client.search(rng.choice(searches)))
        result.searches += 1
        result.found += len(found)
