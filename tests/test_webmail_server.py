"""The embedded webmail (loadtests/embedded/web.py), run alone in its own process and driven by a
plain HTTP client: login with CSRF, inbox, message, poll, send, logout, idle expiry,
keep-alive and `Connection: close`."""

from __future__ import annotations

import contextlib
import http.client
import http.cookiejar
import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from loadtests.clients.webmail import embedded_inbox, hidden_input

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Webmail:
    """A running standalone webmail process."""

    process: subprocess.Popen[bytes]
    port: int
    stats_file: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def counters(self) -> dict[str, Any]:
        return json.loads(self.stats_file.read_text())["servers"]["http"]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stdout is not None:
            self.process.stdout.close()


def start_webmail(workdir: Path, *args: str) -> Webmail:
    """`python -m loadtests.embedded.web --port 0 ...`, waiting for its ready line."""
    workdir.mkdir(parents=True, exist_ok=True)
    stats = workdir / "web-stats.json"
    with (workdir / "web.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "loadtests.embedded.web", "--port", "0", "--stats-file",
             str(stats), "--die-with-parent", *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
    assert proc.stdout is not None
    line = b""
    deadline = time.monotonic() + 20
    waiting = select.poll()  # not select(): this process may already hold fds past 1023
    waiting.register(proc.stdout, select.POLLIN)
    while not line.endswith(b"\n") and time.monotonic() < deadline:
        if waiting.poll(200):
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            line += chunk
    try:
        ready = json.loads(line)
    except ValueError:
        proc.kill()
        proc.wait()
        raise RuntimeError((workdir / "web.log").read_text()[-2000:]) from None
    return Webmail(proc, ready["http_port"], stats)


@pytest.fixture(scope="module")
def webmail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webmail]:
    server = start_webmail(tmp_path_factory.mktemp("webmail"), "--session-timeout", "2")
    yield server
    server.stop()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Browser:
    def __init__(self, server: Webmail) -> None:
        self.server = server
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar),
                                                  _NoRedirect())

    def request(self, path: str, data: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, str, str | None]:
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        req = urllib.request.Request(self.server.url(path), body, headers or {})
        try:
            with self.opener.open(req, timeout=10) as resp:
                return resp.status, resp.read().decode(), resp.headers.get("Location")
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(), err.headers.get("Location")

    def login(self, user: str = "user0001", password: str = "mailswarm-test") -> int:
        _, page, _ = self.request("/login")
        token = hidden_input(page, "csrf_token")
        assert token
        status, _, location = self.request("/login", {"user": user, "password": password,
                                                      "csrf_token": token})
        if status == 303:
            assert location == "/inbox"
        return status


def test_session_from_login_to_logout(webmail: Webmail) -> None:
    b = Browser(webmail)
    assert b.login("user0007") == 303
    assert "mailswarm_session" in {c.name for c in b.jar}
    status, page, _ = b.request("/inbox")
    csrf, uids = embedded_inbox(page)
    assert status == 200 and csrf and uids == [5, 4, 3, 2, 1]
    status, body, _ = b.request("/api/poll?since=3")
    assert status == 200 and json.loads(body) == {"unread": 5, "total": 5, "last_uid": 5,
                                                  "new": [4, 5]}
    status, page, _ = b.request("/message/2")
    assert status == 200 and "test message 2 for user0007" in page
    assert json.loads(b.request("/api/poll")[1])["unread"] == 4
    assert b.request("/message/99")[0] == 404
    status, body, _ = b.request("/send", {"csrf_token": csrf, "to": "user0008@example.test",
                                          "subject": "hello", "body": "text"})
    assert status == 200 and json.loads(body) == {"sent": True, "uid": 6}
    other = Browser(webmail)
    other.login("user0008")
    assert json.loads(other.request("/api/poll?since=5")[1])["new"] == [6]
    assert "hello" in other.request("/message/6")[1]
    assert b.request("/logout", {"csrf_token": csrf})[:3:2] == (303, "/login")
    assert b.request("/api/poll")[0] == 401  # logged out: the session is gone
    assert b.request("/inbox")[::2] == (303, "/login?expired=1")


def test_login_refusals(webmail: Webmail) -> None:
    b = Browser(webmail)
    assert b.login(password="wrong") == 401
    assert b.login(user="nobody") == 401
    assert b.login(user="user9999") == 401  # beyond the population
    status, _, _ = b.request("/login", {"user": "user0001", "password": "mailswarm-test",
                                        "csrf_token": "forged"})
    assert status == 403
    assert Browser(webmail).request("/login", {"user": "user0001", "password": "x"})[0] == 403


def test_send_needs_the_session_token(webmail: Webmail) -> None:
    b = Browser(webmail)
    b.login()
    status, _, _ = b.request("/send", {"csrf_token": "x", "to": "user0002", "subject": "s"})
    assert status == 403


def test_idle_sessions_expire(webmail: Webmail) -> None:
    b = Browser(webmail)
    b.login("user0011")
    assert b.request("/api/poll")[0] == 200
    time.sleep(3.5)  # the module's server expires sessions idle for 2 s
    status, body, _ = b.request("/api/poll", headers={"X-Requested-With": "XMLHttpRequest"})
    assert status == 401 and json.loads(body) == {"error": "session expired"}
    assert b.login("user0011") == 303  # and a new login works
    assert b.request("/api/poll")[0] == 200
    time.sleep(1.2)
    counters = webmail.counters()
    assert counters["sessions_expired"] >= 1 and counters["logins"] >= 2


def _get(conn: http.client.HTTPConnection, path: str,
         headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    conn.request("GET", path, headers=headers or {})
    resp = conn.getresponse()
    resp.read()
    return resp


def test_keep_alive_reuses_the_connection_and_close_ends_it(webmail: Webmail) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", webmail.port, timeout=5)
    with contextlib.closing(conn):
        assert _get(conn, "/login").status == 200
        sock = conn.sock
        assert _get(conn, "/login").status == 200
        assert conn.sock is sock  # same TCP connection
        resp = _get(conn, "/login", {"Connection": "close"})
        assert resp.status == 200 and resp.headers.get("Connection", "").lower() == "close"
        assert conn.sock is None or conn.sock.recv(1) == b""  # the server closed it
