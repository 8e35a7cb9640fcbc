"""The embedded IMAP4rev1 server: one asyncio coroutine per connection, serving the shared
MailStore (a generated INBOX per user).

    server = ImapServer(store, keepalive_interval=120.0, max_user_connections=10)
    await asyncio.start_server(server.handle, "127.0.0.1", 10143)

Enough of RFC 3501 for the load clients and for aioimaplib: CAPABILITY, LOGIN, SELECT/EXAMINE,
LIST/LSUB, STATUS, NOOP/CHECK, FETCH, SEARCH, STORE, EXPUNGE (and their UID forms), CLOSE,
UNSELECT, IDLE (RFC 2177) with `* OK Still here` keepalives and `* N EXISTS` pushed when mail is
appended to the mailbox (possibly from another thread), LOGOUT. Unknown commands get BAD.
Each connection keeps its own view (sequence number -> UID), updated at NOOP/CHECK/IDLE.

Knobs: `command_delay` before every tagged reply, `autologout` (RFC 3501: at least 30 min; a
client must re-arm IDLE before it), `max_user_connections` (like Dovecot's
mail_max_userip_connections: `NO [LIMIT] ...` then close) and `fault`: "stall" (never greet),
"reset" (TCP reset), "garbage" (non-IMAP greeting), "trickle" (the greeting one byte every
half second), "bye" (`* BYE Connection queue full`) — these on `fault_ratio` of the
connections —, "stall-select" (SELECT/EXAMINE read and never answered), "drop-idle" (close the
connection as soon as IDLE starts), "close-mid-fetch" (close halfway through the first FETCH
answer that carries a literal), "echo" (LOGIN fails with a NO that echoes the command,
password included, as a careless server might).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import random
import ssl
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import NoReturn

from loadtests.counts import SessionCounts
from loadtests.embedded.faults import reset, trickle, until_client_leaves
from loadtests.embedded.imap_proto import (
    SYSTEM_FLAGS,
    FetchItem,
    ImapSyntaxError,
    Token,
    compile_search,
    format_flags,
    literal_size,
    parse_command,
    parse_fetch_items,
    parse_seqset,
    render_fetch,
)
from loadtests.embedded.mailstore import Mailbox, MailStore, Message

__all__ = ["CAPABILITIES", "IMAP_CONNECTION_FIELDS", "IMAP_FAULTS", "ImapServer",
           "ImapServerStats"]

CAPABILITIES = "IMAP4rev1 LITERAL+ IDLE UIDPLUS"
IMAP_FAULTS = ("stall", "reset", "garbage", "trickle", "bye", "stall-select", "drop-idle",
               "close-mid-fetch", "echo")
_GREETING_FAULTS = ("stall", "reset", "garbage", "trickle", "bye")
IMAP_CONNECTION_FIELDS = {"opened": "connections", "open": "open", "peak": "peak_open"}
"""The server's connections as the target's stats file names them."""
_MAX_LITERAL = 1 << 20


@dataclass
class ImapServerStats:
    """Counters of one ImapServer (all its connections, whatever thread serves them)."""

    connections: SessionCounts = field(default_factory=SessionCounts)
    logins: int = 0
    login_failures: int = 0
    limit_rejections: int = 0
    idling: int = 0
    pushes: int = 0
    faults: int = 0
    commands: Counter[str] = field(default_factory=Counter)


class _Closed(Exception):
    """The connection is over (client gone, LOGOUT, autologout, limit)."""


class ImapServer:
    """Serves IMAP from `store`; `handle` is the `asyncio.start_server` callback."""

    def __init__(self, store: MailStore, *, command_delay: float = 0.0,
                 keepalive_interval: float = 120.0, autologout: float = 1800.0,
                 max_user_connections: int | None = None, fault: str | None = None,
                 fault_ratio: float = 1.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        if fault not in (None, "none", *IMAP_FAULTS):
            raise ValueError(f"unknown IMAP fault {fault!r}; known: {', '.join(IMAP_FAULTS)}")
        self.store = store
        self.command_delay = command_delay
        self.keepalive_interval = keepalive_interval
        self.autologout = autologout
        self.max_user_connections = max_user_connections
        self.fault = None if fault == "none" else fault
        self.fault_ratio = fault_ratio
        self._rng = random.Random()
        self.ssl_context = ssl_context  # offers STARTTLS (RFC 3501 6.2.1) when given
        self.stats = ImapServerStats()
        self._lock = threading.Lock()
        self._per_user: Counter[str] = Counter()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection to its end; never raises (except cancellation), always closes."""
        with self._lock:
            self.stats.connections.opening()
        session = _Session(self, reader, writer)
        try:
            if self.fault in _GREETING_FAULTS and self._rng.random() < self.fault_ratio:
                await self._faulty_greeting(reader, writer)
            else:
                await session.run()
        except (_Closed, ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass
        except Exception:  # a bug must cost one connection, never the server
            with contextlib.suppress(Exception):
                writer.write(b"* BYE Internal server error\r\n")
        finally:
            session.release()
            with self._lock:
                self.stats.connections.closed()
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

    async def _faulty_greeting(self, reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter) -> None:
        with self._lock:
            self.stats.faults += 1
        if self.fault == "stall":
            await until_client_leaves(reader)
        elif self.fault == "reset":
            reset(writer.transport)
        elif self.fault == "garbage":
            writer.write(b"\x00\xff garbage, not an IMAP greeting \xfe\r\n")
        elif self.fault == "trickle":
            await trickle(reader, writer, b"* OK mailswarm IMAP ready.\r\n")
        else:
            writer.write(b"* BYE Connection queue full\r\n")

    def claim(self, user: str) -> bool:
        """Count a logged-in connection of `user`; False when over `max_user_connections`."""
        with self._lock:
            if (self.max_user_connections is not None
                    and self._per_user[user] >= self.max_user_connections):
                self.stats.limit_rejections += 1
                return False
            self._per_user[user] += 1
            self.stats.logins += 1
            return True

    def unclaim(self, user: str) -> None:
        with self._lock:
            self._per_user[user] -= 1
            if self._per_user[user] <= 0:
                del self._per_user[user]


Handler = Callable[[str, list[Token], bool], Awaitable[None]]


class _Session:
    """One connection's state: login, selected mailbox and its view (UIDs by sequence)."""

    def __init__(self, server: ImapServer, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.user: str | None = None
        self.box: Mailbox | None = None
        self.readonly = False
        self.view: list[int] = []
        self.wake = asyncio.Event()
        self.current = ""  # the command being served
        self.loop = asyncio.get_running_loop()
        self.tls = writer.get_extra_info("sslcontext") is not None  # an implicit-TLS port
        self.handlers: dict[str, tuple[str, Handler]] = {
            "CAPABILITY": ("any", self.cmd_capability), "NOOP": ("any", self.cmd_noop),
            "LOGOUT": ("any", self.cmd_logout), "LOGIN": ("nonauth", self.cmd_login),
            "STARTTLS": ("nonauth", self.cmd_starttls),
            "AUTHENTICATE": ("nonauth", self.cmd_authenticate),
            "SELECT": ("auth", self.cmd_select), "EXAMINE": ("auth", self.cmd_select),
            "STATUS": ("auth", self.cmd_status), "LIST": ("auth", self.cmd_list),
            "LSUB": ("auth", self.cmd_list), "CHECK": ("selected", self.cmd_noop),
            "FETCH": ("selected", self.cmd_fetch), "SEARCH": ("selected", self.cmd_search),
            "STORE": ("selected", self.cmd_store), "EXPUNGE": ("selected", self.cmd_expunge),
            "CLOSE": ("selected", self.cmd_close), "UNSELECT": ("selected", self.cmd_close),
            "IDLE": ("selected", self.cmd_idle),
        }

    # ---- plumbing ------------------------------------------------------------------------
    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def tagged(self, tag: str, status: str, text: str) -> None:
        if self.server.command_delay > 0:
            await asyncio.sleep(self.server.command_delay)
        await self.send(f"{tag} {status} {text}\r\n".encode())

    async def readline(self) -> bytes:
        """One line (b"" at EOF). A line longer than the reader's limit (64 KiB) is answered
        `* BAD [TOOBIG] Line too long` and the connection closed, as servers do."""
        try:
            return await self.reader.readline()
        except ValueError:  # asyncio's LimitOverrunError, as readline raises it
            await self.refuse(b"* BAD [TOOBIG] Line too long\r\n")

    async def refuse(self, reply: bytes, linger: float = 2.0) -> NoReturn:
        """Send `reply`, our EOF, then drop what the client still sends (at most `linger`
        seconds) before closing: closed with unread input, the socket would send a reset that
        can destroy the reply before the client reads it. Raises _Closed."""
        await self.send(reply)
        with contextlib.suppress(Exception):
            if self.writer.can_write_eof():
                self.writer.write_eof()
            deadline = time.monotonic() + linger
            while await asyncio.wait_for(self.reader.read(1 << 16),
                                         max(0.0, deadline - time.monotonic())):
                pass
        raise _Closed

    async def read_command(self) -> bytes:
        """One whole command line with its literals inline; raises _Closed at EOF/autologout."""
        try:
            line = await asyncio.wait_for(self.readline(), self.server.autologout)
        except TimeoutError:
            await self.send(b"* BYE Autologout; idle for too long\r\n")
            raise _Closed from None
        data = line
        while line and (lit := literal_size(line.rstrip(b"\r\n"))) is not None:
            size, sync = lit
            if size > _MAX_LITERAL:
                await self.refuse(b"* BAD [TOOBIG] Literal too large\r\n")
            if sync:
                await self.send(b"+ Ready for literal data\r\n")
            data += await self.reader.readexactly(size)
            line = await self.readline()
            data += line
        if not line:
            raise _Closed
        return data

    def release(self) -> None:
        self.unselect()
        if self.user is not None:
            self.server.unclaim(self.user)
            self.user = None

    def notify(self, box: Mailbox) -> None:
        """Mailbox listener: may be called from any thread."""
        with contextlib.suppress(RuntimeError):  # this connection's loop is gone
            self.loop.call_soon_threadsafe(self.wake.set)

    def unselect(self) -> None:
        if self.box is not None:
            with self.box.lock, contextlib.suppress(ValueError):
                self.box.listeners.remove(self.notify)
        self.box, self.view = None, []

    def messages(self) -> dict[int, Message]:
        assert self.box is not None
        return {m.uid: m for m in self.box.snapshot()}

    async def sync(self) -> int:
        """Tell the client what changed in the mailbox since its view; returns lines sent."""
        assert self.box is not None
        current = [m.uid for m in self.box.snapshot()]
        alive = set(current)
        out = [b"* %d EXPUNGE\r\n" % (i + 1)
               for i in reversed(range(len(self.view))) if self.view[i] not in alive]
        known = set(self.view)
        new = [u for u in current if u not in known]
        self.view = [u for u in self.view if u in alive] + new
        if new:
            out.append(b"* %d EXISTS\r\n" % len(self.view))
        if out:
            await self.send(b"".join(out))
        return len(out)

    # ---- the loop ------------------------------------------------------------------------
    async def run(self) -> None:
        await self.send(f"* OK [CAPABILITY {self.capabilities()}] mailswarm IMAP ready.\r\n"
                        .encode())
        while True:
            data = await self.read_command()
            try:
                tag, name, args = parse_command(data)
            except ImapSyntaxError as exc:
                await self.send(f"{exc} BAD Error in IMAP command\r\n".encode())
                continue
            uid = False
            if name == "UID" and args and isinstance(args[0], str):
                name, args, uid = "UID " + args[0].upper(), args[1:], True
            self.server.stats.commands[name] += 1
            base = name.removeprefix("UID ")
            entry = self.handlers.get(base)
            if entry is None or (uid and base not in ("FETCH", "SEARCH", "STORE", "EXPUNGE")):
                await self.tagged(tag, "BAD", f"Error in IMAP command {name}: Unknown command.")
                continue
            state, handler = entry
            self.current = base
            if state == "nonauth" and self.user is not None:
                await self.tagged(tag, "BAD", "Already logged in.")
            elif state in ("auth", "selected") and self.user is None:
                await self.tagged(tag, "BAD", "Not logged in.")
            elif state == "selected" and self.box is None:
                await self.tagged(tag, "BAD", "No mailbox selected.")
            else:
                try:
                    await handler(tag, args, uid)
                except ImapSyntaxError as exc:
                    await self.tagged(tag, "BAD", f"Error in IMAP command {name}: {exc}")

    # ---- commands ------------------------------------------------------------------------
    def capabilities(self) -> str:
        """What this connection offers now: STARTTLS before TLS, AUTH=PLAIN before login."""
        caps = CAPABILITIES
        if self.user is None:
            if self.server.ssl_context is not None and not self.tls:
                caps += " STARTTLS"
            caps += " AUTH=PLAIN SASL-IR"
        return caps

    async def cmd_starttls(self, tag: str, args: list[Token], uid: bool) -> None:
        if self.server.ssl_context is None or self.tls:
            await self.tagged(tag, "BAD", "STARTTLS not available.")
            return
        await self.tagged(tag, "OK", "Begin TLS negotiation now.")
        await self.writer.start_tls(self.server.ssl_context)
        self.tls = True

    async def cmd_authenticate(self, tag: str, args: list[Token], uid: bool) -> None:
        """AUTHENTICATE PLAIN, with the initial response (SASL-IR) or after a `+`."""
        if not args or not isinstance(args[0], str) or args[0].upper() != "PLAIN":
            await self.tagged(tag, "NO", "Unsupported authentication mechanism.")
            return
        if len(args) > 1:
            response = str(args[1])
        else:
            await self.send(b"+ \r\n")
            response = (await self.reader.readline()).decode("ascii", "replace").strip()
        try:
            _, login, password = base64.b64decode(response, validate=True).decode().split("\0")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            await self.tagged(tag, "BAD", "Invalid base64 data in continued response.")
            return
        await self._log_in(tag, login, password)

    async def cmd_capability(self, tag: str, args: list[Token], uid: bool) -> None:
        await self.send(f"* CAPABILITY {self.capabilities()}\r\n".encode())
        await self.tagged(tag, "OK", "Capability completed.")

    async def cmd_noop(self, tag: str, args: list[Token], uid: bool) -> None:
        if self.box is not None:
            await self.sync()
        await self.tagged(tag, "OK", "NOOP completed.")

    async def cmd_logout(self, tag: str, args: list[Token], uid: bool) -> None:
        await self.send(b"* BYE Logging out\r\n")
        await self.tagged(tag, "OK", "Logout completed.")
        raise _Closed

    async def cmd_login(self, tag: str, args: list[Token], uid: bool) -> None:
        if len(args) != 2 or not all(isinstance(a, str) for a in args):
            raise ImapSyntaxError("LOGIN needs a user and a password")
        login, password = str(args[0]), str(args[1])
        if self.server.fault == "echo":
            quoted = password.replace("\\", "\\\\").replace('"', '\\"')
            await self.tagged(tag, "NO", f'you said: LOGIN {login} "{quoted}"')
            return
        await self._log_in(tag, login, password)

    async def _log_in(self, tag: str, login: str, password: str) -> None:
        box = self.server.store.authenticate(login, password)
        if box is None:
            with self.server._lock:
                self.server.stats.login_failures += 1
            await self.tagged(tag, "NO", "[AUTHENTICATIONFAILED] Authentication failed.")
            return
        if not self.server.claim(box.user):
            limit = self.server.max_user_connections
            await self.tagged(tag, "NO", "[LIMIT] Maximum number of connections from user+IP "
                              f"exceeded (mail_max_userip_connections={limit})")
            raise _Closed
        self.user = box.user
        await self.tagged(tag, "OK", f"[CAPABILITY {CAPABILITIES}] Logged in")

    async def _inbox(self, tag: str, args: list[Token]) -> Mailbox | None:
        """The user's mailbox when args[0] names INBOX (the only one), else answer NO."""
        if not args or not isinstance(args[0], str):
            raise ImapSyntaxError("mailbox name expected")
        if args[0].upper() != "INBOX":
            await self.tagged(tag, "NO", "[NONEXISTENT] Mailbox doesn't exist: " + args[0])
            return None
        assert self.user is not None
        return self.server.store.get(self.user)

    async def cmd_select(self, tag: str, args: list[Token], uid: bool) -> None:
        if self.server.fault == "stall-select":  # alive, but stuck in the command
            with self.server._lock:
                self.server.stats.faults += 1
            await until_client_leaves(self.reader)
            raise _Closed
        self.unselect()
        box = await self._inbox(tag, args)
        if box is None:
            return
        with box.lock:
            box.listeners.append(self.notify)
            messages = list(box.messages)
            uid_validity, uid_next = box.uid_validity, box.next_uid
        self.box, self.view = box, [m.uid for m in messages]
        self.readonly = self.current == "EXAMINE"
        unseen = next((i + 1 for i, m in enumerate(messages) if "\\Seen" not in m.flags), None)
        lines = [f"* FLAGS ({' '.join(SYSTEM_FLAGS)})",
                 f"* OK [PERMANENTFLAGS ({' '.join(SYSTEM_FLAGS)} \\*)] Flags permitted.",
                 f"* {len(messages)} EXISTS", "* 0 RECENT"]
        if unseen is not None:
            lines.append(f"* OK [UNSEEN {unseen}] First unseen.")
        lines += [f"* OK [UIDVALIDITY {uid_validity}] UIDs valid",
                  f"* OK [UIDNEXT {uid_next}] Predicted next UID"]
        await self.send("".join(x + "\r\n" for x in lines).encode())
        mode = "READ-ONLY" if self.readonly else "READ-WRITE"
        await self.tagged(tag, "OK", f"[{mode}] {'Examine' if self.readonly else 'Select'}"
                          " completed.")

    async def cmd_status(self, tag: str, args: list[Token], uid: bool) -> None:
        if len(args) != 2 or not isinstance(args[1], list):
            raise ImapSyntaxError("STATUS needs a mailbox and an item list")
        box = await self._inbox(tag, args)
        if box is None:
            return
        with box.lock:
            msgs = list(box.messages)
            values = {"MESSAGES": len(msgs), "RECENT": 0, "UIDNEXT": box.next_uid,
                      "UIDVALIDITY": box.uid_validity,
                      "UNSEEN": sum("\\Seen" not in m.flags for m in msgs)}
        out = []
        for item in args[1]:
            key = str(item).upper()
            if key not in values:
                raise ImapSyntaxError(f"unknown status item {item!r}")
            out.append(f"{key} {values[key]}")
        await self.send(f"* STATUS INBOX ({' '.join(out)})\r\n".encode())
        await self.tagged(tag, "OK", "Status completed.")

    async def cmd_list(self, tag: str, args: list[Token], uid: bool) -> None:
        if len(args) != 2:
            raise ImapSyntaxError("LIST needs a reference and a pattern")
        pattern = str(args[1])
        if pattern == "":
            await self.send(b'* LIST (\\Noselect) "/" ""\r\n')
        elif pattern in ("*", "%") or pattern.upper() == "INBOX":
            await self.send(b'* LIST (\\HasNoChildren) "/" INBOX\r\n')
        await self.tagged(tag, "OK", "List completed.")

    def _select_set(self, spec: Token, uid: bool) -> list[tuple[int, int]]:
        """(seq, uid) pairs of the view matching a sequence or UID set."""
        if not isinstance(spec, str):
            raise ImapSyntaxError("sequence set expected")
        if uid:
            test = parse_seqset(spec, max(self.view, default=0))
            return [(i + 1, u) for i, u in enumerate(self.view) if test(u)]
        test = parse_seqset(spec, len(self.view))
        return [(i + 1, u) for i, u in enumerate(self.view) if test(i + 1)]

    async def cmd_fetch(self, tag: str, args: list[Token], uid: bool) -> None:
        if len(args) != 2:
            raise ImapSyntaxError("FETCH needs a set and items")
        items = parse_fetch_items(args[1])
        sets_seen = not self.readonly and any(not i.peek for i in items)
        if sets_seen and not any(i.name == "FLAGS" for i in items):
            items = [*items, FetchItem("FLAGS")]
        by_uid = self.messages()
        assert self.box is not None
        for seq, u in self._select_set(args[0], uid):
            msg = by_uid.get(u)
            if msg is None:
                continue  # expunged by another session; its EXPUNGE comes at the next NOOP
            with self.box.lock:
                if sets_seen:
                    msg.flags.add("\\Seen")
                flags = set(msg.flags)
            answer = render_fetch(seq, msg, items, with_uid=uid, flags=flags)
            if self.server.fault == "close-mid-fetch" and b"}\r\n" in answer:
                with self.server._lock:
                    self.server.stats.faults += 1
                await self.send(answer[:len(answer) // 2])  # cut inside the literal
                self.writer.transport.abort()
                raise _Closed
            await self.send(answer)
        await self.tagged(tag, "OK", "Fetch completed.")

    async def cmd_search(self, tag: str, args: list[Token], uid: bool) -> None:
        pairs = [(i + 1, u) for i, u in enumerate(self.view)]
        match = compile_search(args, len(self.view), lambda s: self.view[s - 1],
                               max(self.view, default=0))
        by_uid = self.messages()
        found = [str(u if uid else seq) for seq, u in pairs
                 if u in by_uid and match(seq, by_uid[u])]
        await self.send(("* SEARCH" + "".join(" " + f for f in found) + "\r\n").encode())
        await self.tagged(tag, "OK", "Search completed.")

    async def cmd_store(self, tag: str, args: list[Token], uid: bool) -> None:
        if len(args) != 3:
            raise ImapSyntaxError("STORE needs a set, an action and flags")
        if self.readonly:
            await self.tagged(tag, "NO", "Mailbox is read-only.")
            return
        action = str(args[1]).upper()
        silent = action.endswith(".SILENT")
        action = action.removesuffix(".SILENT")
        if action not in ("FLAGS", "+FLAGS", "-FLAGS"):
            raise ImapSyntaxError(f"unknown store action {args[1]!r}")
        given = args[2] if isinstance(args[2], list) else [args[2]]
        if not all(isinstance(f, str) and f.isascii() for f in given):  # flags are atoms
            raise ImapSyntaxError("flags must be atoms")
        flags = {str(f) for f in given}
        by_uid = self.messages()
        assert self.box is not None
        out = []
        for seq, u in self._select_set(args[0], uid):
            msg = by_uid.get(u)
            if msg is None:
                continue
            with self.box.lock:
                if action == "FLAGS":
                    msg.flags.clear()
                    msg.flags.update(flags)
                elif action == "+FLAGS":
                    msg.flags.update(flags)
                else:
                    msg.flags.difference_update(flags)
                now = format_flags(msg.flags)
            if not silent:
                uid_part = f"UID {u} " if uid else ""
                out.append(f"* {seq} FETCH ({uid_part}FLAGS {now})\r\n".encode())
        if out:
            await self.send(b"".join(out))
        await self.tagged(tag, "OK", "Store completed.")

    async def _expunge(self, only: set[int] | None, silent: bool) -> None:
        assert self.box is not None
        with self.box.lock:
            doomed = {m.uid for m in self.box.messages if "\\Deleted" in m.flags
                      and (only is None or m.uid in only)}
        if doomed:
            self.box.expunge(doomed)
        out = [b"* %d EXPUNGE\r\n" % (i + 1)
               for i in reversed(range(len(self.view))) if self.view[i] in doomed]
        self.view = [u for u in self.view if u not in doomed]
        if out and not silent:
            await self.send(b"".join(out))

    async def cmd_expunge(self, tag: str, args: list[Token], uid: bool) -> None:
        if self.readonly:
            await self.tagged(tag, "NO", "Mailbox is read-only.")
            return
        only = None
        if uid:
            if len(args) != 1:
                raise ImapSyntaxError("UID EXPUNGE needs a UID set")
            only = {u for _, u in self._select_set(args[0], True)}
        await self._expunge(only, silent=False)
        await self.tagged(tag, "OK", "Expunge completed.")

    async def cmd_close(self, tag: str, args: list[Token], uid: bool) -> None:
        if not self.readonly and self.current == "CLOSE":
            await self._expunge(None, silent=True)
        self.unselect()
        await self.tagged(tag, "OK", f"{self.current.capitalize()} completed.")

    async def cmd_idle(self, tag: str, args: list[Token], uid: bool) -> None:
        await self.send(b"+ idling\r\n")
        if self.server.fault == "drop-idle":
            with self.server._lock:
                self.server.stats.faults += 1
            self.writer.transport.abort()
            raise _Closed
        with self.server._lock:
            self.server.stats.idling += 1
        try:
            await self._idle(tag)
        finally:
            with self.server._lock:
                self.server.stats.idling -= 1

    async def _idle(self, tag: str) -> None:
        started = time.monotonic()
        read = asyncio.ensure_future(self.readline())
        try:
            while True:
                self.wake.clear()
                pushed = await self.sync()
                if pushed:
                    with self.server._lock:
                        self.server.stats.pushes += pushed
                left = self.server.autologout - (time.monotonic() - started)
                if left <= 0:
                    await self.send(b"* BYE Autologout; idle for too long\r\n")
                    raise _Closed
                woke = asyncio.ensure_future(self.wake.wait())
                done, _ = await asyncio.wait(
                    {read, woke}, timeout=min(self.server.keepalive_interval, left),
                    return_when=asyncio.FIRST_COMPLETED)
                woke.cancel()
                if read in done:
                    line = read.result()
                    if not line:
                        raise _Closed
                    if line.strip().upper() == b"DONE":
                        await self.tagged(tag, "OK", "Idle completed.")
                    else:
                        await self.tagged(tag, "BAD", "Expected DONE.")
                    return
                if not done and time.monotonic() - started < self.server.autologout:
                    await self.send(b"* OK Still here\r\n")
        finally:
            read.cancel()
