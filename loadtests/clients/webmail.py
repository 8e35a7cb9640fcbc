"""Webmail sessions as a browser drives them: requests to build, replies to judge, no I/O.

Two applications: the embedded target's webmail (`EmbeddedWebmail`) and Roundcube
(`Roundcube`). Each is a small flow over a `Transport` — a callable that sends one
`HttpRequest`, applies a pure `Judge` to the `Reply` and raises what the judge returned — so
the caller (the Locust user) does the timing and recording, and tests can drive a flow with a
fake transport. Nothing here imports Locust.

Roundcube, as its browser client does it (1.6):
  GET /                      -> `roundcube_sessid` cookie, login form with `_token`
  POST /?_task=login         -> 302 to /?_task=mail&_token=T (new cookies: keep every one)
  GET /?_task=mail&_token=T  -> page whose `rcmail.set_env({...})` holds `request_token`
  XHR GET  _action=list, POST _action=refresh, with `X-Roundcube-Request: T`
  GET _action=preview&_uid=N&_framed=1; compose -> 302 with _id, POST _action=send (framed)
  GET /?_task=logout&_token=T
An expired session answers HTTP 200 with `session_error(` in the body; a bad login 401.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit

from loadtests.clients.errors import ClientError

__all__ = [
    "XHR",
    "App",
    "EmbeddedWebmail",
    "HttpRequest",
    "Judge",
    "LoginFailed",
    "Reply",
    "Roundcube",
    "ServerError",
    "SessionExpired",
    "Transport",
    "UnexpectedReply",
    "WebmailApp",
    "WebmailError",
    "compose_form",
    "embedded_inbox",
    "hidden_input",
    "is_session_error",
    "judge_status",
    "make_app",
    "rc_env",
    "rc_message_uids",
    "rc_unread_count",
]

App = Literal["embedded", "roundcube"]
XHR = (("X-Requested-With", "XMLHttpRequest"),)
FORM = (("Content-Type", "application/x-www-form-urlencoded"),)


# -- requests and replies -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class HttpRequest:
    """One request: `name` is the step recorded (LOGIN, POLL...), `path` includes the query."""

    name: str
    method: str
    path: str
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes = b""
    location: str | None = None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def form(name: str, path: str, fields: Mapping[str, str | int],
         headers: tuple[tuple[str, str], ...] = ()) -> HttpRequest:
    """A urlencoded POST."""
    body = urlencode({k: str(v) for k, v in fields.items()}).encode()
    return HttpRequest(name, "POST", path, body, FORM + headers)


# -- errors ---------------------------------------------------------------------------------------
class WebmailError(ClientError):
    """A reply the session cannot go on with; carries the step, HTTP status (also `.code`) and a
    snippet of the page (also `.text`)."""

    def __init__(self, step: str, status: int, message: str) -> None:
        super().__init__(message, code=status)
        self.step, self.status, self.message = step, status, message

    def __str__(self) -> str:
        return f"{self.step}: HTTP {self.status}: {self.message}"

    def __reduce__(self) -> tuple[type[WebmailError], tuple[str, int, str]]:
        return type(self), (self.step, self.status, self.message)  # pickles whole


class LoginFailed(WebmailError):
    """The server refused the credentials (or the login form)."""


class SessionExpired(WebmailError):
    """The server no longer knows the session: log in again."""


class ServerError(WebmailError):
    """A 5xx reply."""


class UnexpectedReply(WebmailError):
    """Any other reply the flow did not expect (a 4xx, a page without its token...)."""


Judge = Callable[[Reply], WebmailError | None]
Transport = Callable[[HttpRequest, Judge], Reply]


def _snippet(reply: Reply) -> str:
    return " ".join(reply.text[:120].split())


def judge_status(step: str, reply: Reply, ok: tuple[int, ...] = (200,)) -> WebmailError | None:
    """5xx -> ServerError, a status not in `ok` -> UnexpectedReply, else None."""
    if reply.status >= 500:
        return ServerError(step, reply.status, _snippet(reply))
    if reply.status not in ok:
        return UnexpectedReply(step, reply.status, _snippet(reply))
    return None


# -- parsing --------------------------------------------------------------------------------------
_INPUT = re.compile(r"<input\b[^>]*>", re.I)
_ATTR = re.compile(r'([\w-]+)\s*=\s*"([^"]*)"')


def hidden_input(page: str, name: str) -> str | None:
    """The value of the first `<input name=...>` of that name (a form's CSRF token)."""
    for tag in _INPUT.finditer(page):
        attrs = dict(_ATTR.findall(tag.group(0)))
        if attrs.get("name") == name:
            return html.unescape(attrs.get("value", ""))
    return None


_SET_ENV = re.compile(r"rcmail\.set_env\((\{.*?\})\);", re.S)


def rc_env(page: str) -> dict[str, Any]:
    """Roundcube's `rcmail.set_env({...})` objects of a page, merged."""
    env: dict[str, Any] = {}
    for match in _SET_ENV.finditer(page):
        try:
            env.update(json.loads(match.group(1)))
        except ValueError:
            continue
    return env


def is_session_error(body: str) -> bool:
    """Roundcube's answer to a request in an expired session (HTTP 200, check the body)."""
    return "session_error(" in body


_ROW = re.compile(r"add_message_row\((\d+),")
_UNREAD = re.compile(r'set_unread_count\("INBOX",(\d+)')


def rc_message_uids(exec_js: str) -> list[int]:
    """UIDs of the rows a list/refresh reply adds (its `exec` JavaScript)."""
    return [int(u) for u in _ROW.findall(exec_js)]


def rc_unread_count(exec_js: str) -> int | None:
    match = _UNREAD.search(exec_js)
    return int(match.group(1)) if match else None


def _rc_exec(reply: Reply) -> str:
    try:
        data = json.loads(reply.body)
    except ValueError:
        return ""
    return str(data.get("exec", "")) if isinstance(data, dict) else ""


_FROM_OPTION = re.compile(r'<select name="_from".*?<option value="([^"]*)"', re.S)


def compose_form(page: str) -> tuple[str, str] | None:
    """(compose id, sender identity id) of Roundcube's compose page, or None."""
    compose_id = rc_env(page).get("compose_id") or hidden_input(page, "_id")
    sender = _FROM_OPTION.search(page)
    if not compose_id or sender is None:
        return None
    return str(compose_id), sender.group(1)


_EMBEDDED_ROW = re.compile(r'data-uid="(\d+)"')
_META_CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)"')


def embedded_inbox(page: str) -> tuple[str | None, list[int]]:
    """(session CSRF token, message UIDs) of the embedded webmail's inbox page."""
    token = _META_CSRF.search(page)
    return (token.group(1) if token else None), [int(u) for u in _EMBEDDED_ROW.findall(page)]


# -- flows ----------------------------------------------------------------------------------------
@dataclass
class WebmailApp:
    """One browser session of an application: cookies live in the transport, state here."""

    transport: Transport
    uids: list[int] = field(default_factory=list)
    unread: int | None = None

    def login(self, user: str, password: str) -> None:
        raise NotImplementedError

    def open_inbox(self) -> None:
        raise NotImplementedError

    def poll(self) -> None:
        raise NotImplementedError

    def open_message(self, uid: int) -> None:
        raise NotImplementedError

    def send(self, to: str, subject: str, text: str) -> None:
        raise NotImplementedError

    def logout(self) -> None:
        raise NotImplementedError

    def _login_token(self, path: str, field: str) -> str:
        """GET the login page, return its form's CSRF token."""
        page = self.transport(HttpRequest("LOGIN_PAGE", "GET", path),
                              lambda r: judge_status("LOGIN_PAGE", r))
        token = hidden_input(page.text, field)
        if token is None:
            raise UnexpectedReply("LOGIN_PAGE", page.status, f"no {field} in the login form")
        return token

    @staticmethod
    def _judge_login(redirects: tuple[int, ...], to: str) -> Judge:
        """Logged in = a redirect to `to`; 5xx a ServerError; anything else LoginFailed."""
        def judge(reply: Reply) -> WebmailError | None:
            if reply.status >= 500:
                return ServerError("LOGIN", reply.status, _snippet(reply))
            if reply.status in redirects and to in (reply.location or ""):
                return None
            return LoginFailed("LOGIN", reply.status, reply.location or _snippet(reply))
        return judge

    def _remember(self, uids: list[int]) -> None:
        known = set(self.uids)
        self.uids.extend(u for u in uids if u not in known)


@dataclass
class EmbeddedWebmail(WebmailApp):
    """The embedded target's webmail (loadtests/embedded/web.py): a CSRF token on the login form
    and one per session on the inbox page; an expired session gets 401 (XHR) or a redirect to
    /login (pages)."""

    csrf: str | None = None
    last_uid: int = 0

    @staticmethod
    def _judge_page(step: str, ok: tuple[int, ...] = (200,)) -> Judge:
        def judge(reply: Reply) -> WebmailError | None:
            if reply.status == 401 or (reply.status in (302, 303)
                                       and "/login" in (reply.location or "")):
                return SessionExpired(step, reply.status, reply.location or _snippet(reply))
            return judge_status(step, reply, ok)
        return judge

    def login(self, user: str, password: str) -> None:
        token = self._login_token("/login", "csrf_token")
        self.transport(form("LOGIN", "/login", {"user": user, "password": password,
                                                "csrf_token": token}),
                       self._judge_login((302, 303), "/inbox"))

    def open_inbox(self) -> None:
        page = self.transport(HttpRequest("INBOX", "GET", "/inbox"), self._judge_page("INBOX"))
        self.csrf, uids = embedded_inbox(page.text)
        if self.csrf is None:
            raise UnexpectedReply("INBOX", page.status, "no csrf-token in the inbox page")
        self._remember(uids)
        self.last_uid = max(self.uids, default=0)

    def poll(self) -> None:
        reply = self.transport(HttpRequest("POLL", "GET", f"/api/poll?since={self.last_uid}",
                                           headers=XHR), self._judge_page("POLL"))
        try:
            data = json.loads(reply.body)
        except ValueError:
            raise UnexpectedReply("POLL", reply.status, _snippet(reply)) from None
        self.unread = int(data.get("unread", 0))
        self._remember([int(u) for u in data.get("new", [])])
        self.last_uid = max(self.last_uid, int(data.get("last_uid", 0)))

    def open_message(self, uid: int) -> None:
        self.transport(HttpRequest("MESSAGE", "GET", f"/message/{uid}"),
                       self._judge_page("MESSAGE"))

    def send(self, to: str, subject: str, text: str) -> None:
        self.transport(form("SEND", "/send", {"csrf_token": self.csrf or "", "to": to,
                                              "subject": subject, "body": text}, XHR),
                       self._judge_page("SEND"))

    def logout(self) -> None:
        self.transport(form("LOGOUT", "/logout", {"csrf_token": self.csrf or ""}),
                       lambda r: judge_status("LOGOUT", r, (200, 302, 303)))


def _ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Roundcube(WebmailApp):
    """Roundcube 1.6 (elastic skin) as its JavaScript client drives it."""

    token: str | None = None
    timezone: str = "UTC"

    @staticmethod
    def _judge(step: str, ok: tuple[int, ...] = (200,)) -> Judge:
        def judge(reply: Reply) -> WebmailError | None:
            if reply.status == 200 and is_session_error(reply.text):
                return SessionExpired(step, reply.status, "session_error")
            if reply.status in (302, 303) and "_task=login" in (reply.location or ""):
                return SessionExpired(step, reply.status, reply.location or "")
            return judge_status(step, reply, ok)
        return judge

    def _xhr(self) -> tuple[tuple[str, str], ...]:
        return (("X-Roundcube-Request", self.token or ""), *XHR)

    def login(self, user: str, password: str) -> None:
        token = self._login_token("/", "_token")
        reply = self.transport(form("LOGIN", "/?_task=login", {
            "_token": token, "_task": "login", "_action": "login", "_timezone": self.timezone,
            "_url": "", "_user": user, "_pass": password}), self._judge_login((302,), "_task=mail"))
        self.token = parse_qs(urlsplit(reply.location or "").query).get("_token", [None])[0]

    def open_inbox(self) -> None:
        path = f"/?_task=mail&_token={self.token}" if self.token else "/?_task=mail"
        page = self.transport(HttpRequest("INBOX", "GET", path), self._judge("INBOX"))
        token = rc_env(page.text).get("request_token")
        if not token:
            raise UnexpectedReply("INBOX", page.status, "no request_token in the mail page")
        self.token = str(token)
        now = _ms()
        query = urlencode({"_task": "mail", "_action": "list", "_refresh": 1,
                           "_layout": "widescreen", "_mbox": "INBOX", "_page": "",
                           "_remote": 1, "_unlock": f"loading{now}", "_": now})
        reply = self.transport(HttpRequest("LIST", "GET", f"/?{query}", headers=self._xhr()),
                               self._judge("LIST"))
        js = _rc_exec(reply)
        self._remember(rc_message_uids(js))
        self.unread = rc_unread_count(js)

    def poll(self) -> None:
        now = _ms()
        reply = self.transport(form("POLL", "/?_task=mail&_action=refresh", {
            "_mbox": "INBOX", "_folderlist": 1, "_list": 1,
            "_uids": ",".join(map(str, self.uids)), "_last": now // 1000, "_remote": 1,
            "_unlock": f"loading{now}"}, self._xhr()), self._judge("POLL"))
        js = _rc_exec(reply)
        self._remember(rc_message_uids(js))
        self.unread = rc_unread_count(js) if "set_unread_count" in js else self.unread

    def open_message(self, uid: int) -> None:
        query = urlencode({"_task": "mail", "_action": "preview", "_uid": uid, "_mbox": "INBOX",
                           "_framed": 1})
        self.transport(HttpRequest("MESSAGE", "GET", f"/?{query}"), self._judge("MESSAGE"))

    def send(self, to: str, subject: str, text: str) -> None:
        start = self.transport(HttpRequest("COMPOSE", "GET", "/?_task=mail&_action=compose"),
                               self._judge("COMPOSE", (302,)))
        location = start.location or ""
        path = urlsplit(location)
        page = self.transport(HttpRequest("COMPOSE", "GET", f"/?{path.query}"),
                              self._judge("COMPOSE"))
        found = compose_form(page.text)
        if found is None:
            raise UnexpectedReply("COMPOSE", page.status, "no compose id or identity")
        compose_id, sender = found

        def judge(reply: Reply) -> WebmailError | None:
            error = self._judge("SEND")(reply)
            if error is None and "sent_successfully(" not in reply.text:
                return UnexpectedReply("SEND", reply.status, "no sent_successfully in the reply")
            return error

        self.transport(form("SEND", f"/?_task=mail&_unlock=loading{_ms()}&_framed=1", {
            "_token": self.token or "", "_task": "mail", "_action": "send", "_id": compose_id,
            "_attachments": "", "_from": sender, "_to": to, "_cc": "", "_bcc": "",
            "_replyto": "", "_followupto": "", "_subject": subject, "editorSelector": "plain",
            "_priority": 0, "_store_target": "", "_draft_saveid": "", "_draft": "",
            "_is_html": 0, "_framed": 1, "_message": text}), judge)

    def logout(self) -> None:
        self.transport(HttpRequest("LOGOUT", "GET", f"/?_task=logout&_token={self.token}"),
                       lambda r: judge_status("LOGOUT", r, (200, 302)))


def make_app(app: App, transport: Transport) -> WebmailApp:
    return Roundcube(transport) if app == "roundcube" else EmbeddedWebmail(transport)
