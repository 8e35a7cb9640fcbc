"""The embedded target's webmail (aiohttp): the pages a browser session of a webmail client uses.

    GET  /login              login form; its hidden `csrf_token` is bound to a `mailswarm_login`
                             cookie (HMAC, nothing kept per visitor)
    POST /login              user, password, csrf_token -> 303 /inbox + `mailswarm_session`
                             cookie; 401 bad credentials, 403 bad token
    GET  /inbox              the user's messages (`data-uid`), a per-session
                             `<meta name="csrf-token">`
    GET  /message/{uid}      one message (marks it seen)
    GET  /api/poll?since=N   JSON {unread, total, last_uid, new: [uids > N]}
    POST /send               csrf_token, to, subject, body -> appended to the recipient's mailbox
    POST /logout             csrf_token -> session gone, 303 /login

Sessions live in memory and expire after `session_timeout` idle seconds; an expired or unknown
session gets 401 on /api/* and XHR posts, a 303 to /login on pages. Keep-alive is honoured for
`keepalive_timeout` idle seconds, `Connection: close` closes after the reply. Counters (requests,
logins, sessions open/peak/expired, open connections and their peak sampled each second) are
kept in a dict the caller may pass in (`counters=`), e.g. for `TargetStats.servers["http"]`.

Run alone (tests, benchmarks): `python -m loadtests.embedded.web --port 0` prints a ready line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import html
import json
import os
import random
import resource
import secrets
import signal
import socket
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from loadtests.counts import SessionCounts
from loadtests.embedded.config import EmbeddedSettings
from loadtests.embedded.faults import connection_fault
from loadtests.embedded.mailstore import Mailbox, MailStore
from loadtests.embedded.stats import TargetStats

__all__ = ["REQUEST_FAULTS", "WEB_CONNECTION_FIELDS", "WEB_SESSION_FIELDS", "WebmailServer",
           "start_web"]

REQUEST_FAULTS = ("stall-login", "close-mid-body")
"""`http_fault`s the webmail plays inside a request (the others are connection faults)."""
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

WEB_SESSION_FIELDS = {"opened": "logins", "open": "sessions_open", "peak": "sessions_peak",
                      "dropped": "sessions_expired"}
WEB_CONNECTION_FIELDS = {"open": "connections_open", "peak": "connections_peak"}
"""The server's sessions and connections as the target's stats file names them."""

SESSION_COOKIE = "mailswarm_session"
LOGIN_COOKIE = "mailswarm_login"
DEFAULT_SESSION_TIMEOUT = 1800.0
DEFAULT_KEEPALIVE_TIMEOUT = 75.0  # nginx's default: longer than a 60 s poll
SEEN = "\\Seen"


@dataclass
class WebSession:
    sid: str
    user: str
    box: Mailbox
    csrf: str
    last_seen: float = field(default_factory=time.monotonic)


def _page(title: str, body: str, status: int = 200) -> web.Response:
    text = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title></head>\n<body>\n{body}\n</body></html>\n")
    return web.Response(text=text, status=status, content_type="text/html")


def _login_form(token: str, note: str = "") -> str:
    return (f"<h1>mailswarm webmail</h1>{note}\n<form method=\"post\" action=\"/login\">\n"
            f"<input type=\"hidden\" name=\"csrf_token\" value=\"{token}\">\n"
            "<input name=\"user\"> <input type=\"password\" name=\"password\">\n"
            "<button>Log in</button>\n</form>")


def _subject(data: bytes) -> str:
    head = data.split(b"\r\n\r\n", 1)[0]
    return str(BytesHeaderParser().parsebytes(head).get("Subject", "(no subject)"))


class WebmailServer:
    """The application and its sessions; `app()` builds the aiohttp Application."""

    def __init__(self, store: MailStore, *, session_timeout: float = DEFAULT_SESSION_TIMEOUT,
                 counters: dict[str, int] | None = None,
                 sender_domain: str = "mailswarm.test") -> None:
        self.store = store
        self.session_timeout = session_timeout
        self.sessions: dict[str, WebSession] = {}
        self.secret = secrets.token_bytes(32)
        self.sender_domain = sender_domain
        self.counters: dict[str, int] = counters if counters is not None else {}
        self.counters.update({"requests": 0, "login_failures": 0, "csrf_failures": 0,
                              "logouts": 0, "messages_sent": 0})
        self.session_counts = SessionCounts()  # logged-in sessions; expired ones are dropped
        self.connection_counts = SessionCounts()  # open HTTP connections, sampled
        self.publish()

    def publish(self) -> None:
        """Copy the session and connection counts into `counters`, under their stats names."""
        self.counters.update(self.session_counts.as_dict(WEB_SESSION_FIELDS))
        self.counters.update(self.connection_counts.as_dict(WEB_CONNECTION_FIELDS))

    # -- sessions ----------------------------------------------------------------------------
    def _login_token(self, nonce: str) -> str:
        return hmac.new(self.secret, nonce.encode(), hashlib.sha256).hexdigest()[:32]

    def _session(self, request: web.Request) -> WebSession | None:
        sid = request.cookies.get(SESSION_COOKIE)
        session = self.sessions.get(sid) if sid else None
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_seen > self.session_timeout:
            self._expire(session.sid)
            return None
        session.last_seen = now
        return session

    def _expire(self, sid: str) -> None:
        if self.sessions.pop(sid, None) is not None:
            self.session_counts.closed()
            self.session_counts.dropped += 1
            self.publish()

    def sweep(self) -> int:
        """Drop sessions idle longer than the timeout; returns how many went."""
        limit = time.monotonic() - self.session_timeout
        stale = [s.sid for s in self.sessions.values() if s.last_seen < limit]
        for sid in stale:
            self._expire(sid)
        return len(stale)

    def drop_sessions(self) -> int:
        """Forget every session at once (as a server restart would)."""
        count = len(self.sessions)
        for sid in list(self.sessions):
            self._expire(sid)
        return count

    @staticmethod
    def _expired(request: web.Request) -> web.Response:
        if request.path.startswith("/api/") or request.method == "POST":
            return web.json_response({"error": "session expired"}, status=401)
        raise web.HTTPSeeOther("/login?expired=1")

    # -- handlers --------------------------------------------------------------------------------
    async def login_page(self, request: web.Request) -> web.Response:
        nonce = secrets.token_urlsafe(16)
        note = "<p class=\"error\">Session expired.</p>" if "expired" in request.query else ""
        response = _page("Log in", _login_form(self._login_token(nonce), note))
        response.set_cookie(LOGIN_COOKIE, nonce, httponly=True, path="/")
        return response

    async def login(self, request: web.Request) -> web.Response:
        data = await request.post()
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if not nonce or not hmac.compare_digest(str(data.get("csrf_token", "")),
                                                self._login_token(nonce)):
            self.counters["csrf_failures"] += 1
            return _page("Forbidden", "<p>bad or missing csrf_token</p>", status=403)
        user, password = str(data.get("user", "")), str(data.get("password", ""))
        box = self.store.authenticate(user, password)
        if box is None:
            self.counters["login_failures"] += 1
            return _page("Log in", _login_form(self._login_token(nonce),
                                               "<p class=\"error\">Login failed.</p>"), 401)
        session = WebSession(secrets.token_urlsafe(24), box.user, box, secrets.token_hex(16))
        self.sessions[session.sid] = session
        self.session_counts.opening()
        self.publish()
        response = web.HTTPSeeOther("/inbox")
        response.set_cookie(SESSION_COOKIE, session.sid, httponly=True, path="/")
        response.del_cookie(LOGIN_COOKIE, path="/")
        raise response

    async def inbox(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if session is None:
            return self._expired(request)
        rows = "\n".join(
            f"<li class=\"{'seen' if SEEN in m.flags else 'unseen'}\" data-uid=\"{m.uid}\">"
            f"<a href=\"/message/{m.uid}\">{html.escape(_subject(m.data))}</a> "
            f"<span class=\"size\">{m.size}</span></li>"
            for m in reversed(session.box.snapshot()))
        head = f"<meta name=\"csrf-token\" content=\"{session.csrf}\">"
        return _page(f"Inbox of {session.user}",
                     f"{head}\n<h1>Inbox</h1>\n<ul id=\"messages\">\n{rows}\n</ul>")

    async def message(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if session is None:
            return self._expired(request)
        uid = int(request.match_info["uid"])
        with session.box.lock:
            found = next((m for m in session.box.messages if m.uid == uid), None)
            if found is not None:
                found.flags.add(SEEN)
        if found is None:
            raise web.HTTPNotFound(text=f"no message {uid}")
        text = found.data.decode("utf-8", "replace")
        return _page(_subject(found.data), f"<pre>{html.escape(text)}</pre>")

    async def poll(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if session is None:
            return self._expired(request)
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            since = 0
        messages = session.box.snapshot()
        return web.json_response({
            "unread": sum(1 for m in messages if SEEN not in m.flags),
            "total": len(messages),
            "last_uid": max((m.uid for m in messages), default=0),
            "new": [m.uid for m in messages if m.uid > since],
        })

    async def send(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if session is None:
            return self._expired(request)
        data = await request.post()
        if not hmac.compare_digest(str(data.get("csrf_token", "")), session.csrf):
            self.counters["csrf_failures"] += 1
            return web.json_response({"error": "bad csrf_token"}, status=403)
        to = str(data.get("to", ""))
        box = self.store.get(to)
        if box is None:
            return web.json_response({"error": f"unknown recipient {to!r}"}, status=400)
        message = (f"From: <{session.user}@{self.store.domain}>\r\nTo: <{to}>\r\n"
                   f"Subject: {str(data.get('subject', ''))[:200]}\r\n"
                   f"Message-ID: <{secrets.token_hex(8)}@{self.sender_domain}>\r\n\r\n"
                   f"{data.get('body', '')}\r\n").encode()
        uid = box.append(message).uid
        self.counters["messages_sent"] += 1
        return web.json_response({"sent": True, "uid": uid})

    async def logout(self, request: web.Request) -> web.Response:
        session = self._session(request)
        if session is not None:
            data = await request.post()
            if not hmac.compare_digest(str(data.get("csrf_token", "")), session.csrf):
                self.counters["csrf_failures"] += 1
                return _page("Forbidden", "<p>bad or missing csrf_token</p>", status=403)
            self.sessions.pop(session.sid, None)
            self.counters["logouts"] += 1
            self.session_counts.closed()
            self.publish()
        response = web.HTTPSeeOther("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        raise response

    async def root(self, request: web.Request) -> web.Response:
        raise web.HTTPSeeOther("/inbox" if self._session(request) else "/login")

    @web.middleware
    async def _count(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
        self.counters["requests"] += 1
        return await handler(request)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._count])
        app.add_routes([
            web.get("/", self.root), web.get("/login", self.login_page),
            web.post("/login", self.login), web.get("/inbox", self.inbox),
            web.get(r"/message/{uid:\d+}", self.message), web.get("/api/poll", self.poll),
            web.post("/send", self.send), web.post("/logout", self.logout),
        ])
        return app


async def _housekeeping(server: WebmailServer, runner: web.AppRunner) -> None:
    """Once a second: drop idle sessions, sample open connections."""
    while True:
        server.sweep()
        web_server = runner.server
        server.connection_counts.now_open(
            len(web_server.connections) if web_server is not None else 0)
        server.publish()
        await asyncio.sleep(1.0)


async def start_web(settings: EmbeddedSettings, store: MailStore, host: str, port: int, *,
                    counters: dict[str, int] | None = None,
                    session_timeout: float | None = None,
                    keepalive_timeout: float | None = None,
                    ssl_context: ssl.SSLContext | None = None,
                    ) -> tuple[int, Callable[[], Awaitable[None]]]:
    """Serve the webmail on host:port (0: any free port) on the running loop.

    Returns (the bound port, an async stop). `counters`, when given, is the dict the server
    keeps its counters in (updated in place; copy it into the target's stats).
    `session_timeout` / `keepalive_timeout` default to the settings' `web_session_timeout` /
    `web_keepalive_timeout` when it has them, else 1800 s and 75 s. The listen backlog is
    `settings.backlog`. With `ssl_context` it serves HTTPS.
    """
    if session_timeout is None:
        session_timeout = float(getattr(settings, "web_session_timeout", DEFAULT_SESSION_TIMEOUT))
    if keepalive_timeout is None:
        keepalive_timeout = float(getattr(settings, "web_keepalive_timeout",
                                          DEFAULT_KEEPALIVE_TIMEOUT))
    server = WebmailServer(store, session_timeout=session_timeout, counters=counters)
    fault = str(getattr(settings, "http_fault", "none"))
    stopping = asyncio.Event()  # ends the stalls of `http_fault: stall-login`
    app = server.app()
    if fault in REQUEST_FAULTS:
        app.middlewares.append(_request_fault(fault, stopping))
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           keepalive_timeout=keepalive_timeout)
    await runner.setup()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        await runner.cleanup()
        raise
    faulty: asyncio.Server | None = None
    if fault == "none" or fault in REQUEST_FAULTS:
        site = web.SockSite(runner, sock, backlog=settings.backlog, ssl_context=ssl_context)
        await site.start()
    else:  # `fault_ratio` of the connections get the fault, the others the webmail
        faulty = await asyncio.get_running_loop().create_server(
            _faulty_factory(fault, settings.fault_ratio, runner.server), sock=sock,
            backlog=settings.backlog, ssl=ssl_context)
    bound = sock.getsockname()[1]
    keeper = asyncio.get_running_loop().create_task(_housekeeping(server, runner))

    async def stop() -> None:
        stopping.set()
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        if faulty is not None:
            faulty.close()
        await runner.cleanup()

    return bound, stop


def _request_fault(fault: str, stopping: asyncio.Event) -> Middleware:
    """`http_fault` in the middle of a session, on every connection: "stall-login" reads the
    login form's post and never answers it (until the server stops), "close-mid-body" sends
    the inbox page's headers and half its body, then closes the connection."""

    @web.middleware
    async def fault_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if fault == "stall-login" and request.method == "POST" and request.path == "/login":
            await stopping.wait()
            raise web.HTTPServiceUnavailable  # the client is long gone
        response = await handler(request)
        if (fault == "close-mid-body" and request.path == "/inbox"
                and isinstance(response, web.Response) and response.body):
            body = bytes(response.body)  # type: ignore[arg-type]  # the page: bytes
            cut = web.StreamResponse(status=response.status)
            cut.content_type, cut.content_length = response.content_type, len(body)
            await cut.prepare(request)
            await cut.write(body[:len(body) // 2])
            if request.transport is not None:
                request.transport.abort()
            return cut
        return response

    return fault_middleware


def _faulty_factory(fault: str, ratio: float,
                    healthy: Callable[[], asyncio.BaseProtocol] | None,
                    ) -> Callable[[], asyncio.BaseProtocol]:
    """Protocol factory: `fault` on `ratio` of the connections, else aiohttp's handler."""
    rng = random.Random()
    reply = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
             b"Connection: close\r\n\r\n")

    def make() -> asyncio.BaseProtocol:
        if healthy is not None and rng.random() >= ratio:
            return healthy()
        protocol = connection_fault(
            fault, garbage=b"\x00\xff garbage, not an HTTP reply \xfe\r\n\r\n", greeting=reply)
        assert protocol is not None  # http_fault names connection-level faults only
        return protocol

    return make


# -- standalone -----------------------------------------------------------------------------------
async def _serve_alone(args: argparse.Namespace) -> None:
    settings = EmbeddedSettings(host=args.host, users=args.users,
                                messages_per_user=args.messages_per_user, backlog=args.backlog)
    store = MailStore(settings.domain, settings.users, settings.messages_per_user,
                      settings.message_size)
    stats = TargetStats()
    counters: dict[str, int] = {}
    stats_fd = os.open(args.stats_file, os.O_RDWR | os.O_CREAT, 0o644) if args.stats_file else -1
    port, stop = await start_web(settings, store, args.host, args.port, counters=counters,
                                 session_timeout=args.session_timeout,
                                 keepalive_timeout=args.keepalive_timeout)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    ready: dict[str, Any] = {"ready": True, "pid": os.getpid(), "host": args.host,
                             "http_port": port, "domain": settings.domain,
                             "users": settings.users}
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    try:
        while not done.is_set():
            if stats_fd >= 0:
                stats.servers["http"] = dict(counters)
                stats.write(stats_fd)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 1.0)
    finally:
        await stop()
        if stats_fd >= 0:
            stats.servers["http"] = dict(counters)
            stats.write(stats_fd)
            os.close(stats_fd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.embedded.web", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--messages-per-user", type=int, default=5)
    parser.add_argument("--backlog", type=int, default=1024)
    parser.add_argument("--session-timeout", type=float, default=DEFAULT_SESSION_TIMEOUT)
    parser.add_argument("--keepalive-timeout", type=float, default=DEFAULT_KEEPALIVE_TIMEOUT)
    parser.add_argument("--stats-file", type=Path)
    parser.add_argument("--die-with-parent", action="store_true")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # thousands of keep-alive sessions hold a connection each
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.die_with_parent:
        from loadtests.embedded.server import die_with_parent
        die_with_parent()
    try:
        asyncio.run(_serve_alone(args))
    except OSError as exc:
        print(f"webmail: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
