"""WebUser end to end through `mailswarm run`, against the embedded webmail run alone
(`python -m loadtests.embedded.web`) and named in a target file: both connection modes, sessions
dropped by the server, 5xx replies, a refused port, and 3,000 sessions in close mode; and one
WebUser in this process against a recording HTTP server (what goes on the wire per request)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gevent.socket
import pytest
from cli import run_cli
from gevent.server import StreamServer
from locust.env import Environment
from test_webmail_server import Webmail, start_webmail

from loadtests.clients.webmail import HttpRequest, judge_status
from loadtests.embedded import EmbeddedSettings, EmbeddedTarget
from loadtests.embedded.mailstore import password_for
from loadtests.profiles import Scenario
from loadtests.stream import Req, read_stream
from loadtests.targets import Target
from loadtests.users.base import user_class_for
from loadtests.users.webuser import WebUser


def target_file(path: Path, port: int) -> Path:
    """A target file for the embedded webmail on `port`, with its (shared) password."""
    data = {"name": "webmail", "domain": "example.test", "password": password_for("user0001"),
            "endpoints": {"http": {"protocol": "http", "host": "127.0.0.1", "port": port}}}
    path.write_text(json.dumps(data))
    return path


def profile_file(path: Path, *, users: int, duration: str, spawn_rate: int = 100,
                 **web: Any) -> Path:
    settings = {"app": "embedded", "connection": "close", "session_length": "4s",
                "poll_interval": "1s", "open_message_ratio": 0.5, "send_ratio": 0.2, **web}
    path.write_text(json.dumps({
        "name": path.stem, "duration": duration, "drain": "5s", "seed": 3,
        "scenarios": [{"name": "web", "user": "webuser",
                       "schedule": {"kind": "closed", "users": users, "spawn_rate": spawn_rate},
                       "web": settings}]}))
    return path


def run_against(server_port: int, tmp: Path, expect: int = 0, **profile: Any) -> dict[str, Any]:
    """Run against a webmail on `server_port`; `expect` 3 where failures are the point (the
    run completes, and fails its QoS)."""
    tmp.mkdir(parents=True, exist_ok=True)
    out = tmp / "out"
    result = run_cli("run", str(profile_file(tmp / "web.json", **profile)),
                     "--target", str(target_file(tmp / "target.json", server_port)),
                     "--out", str(out), "--quiet", timeout=180)
    assert result.returncode == expect, result.stderr[-3000:] + result.stdout[-2000:]
    return json.loads((out / "summary.json").read_text())


def by_name(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in summary["requests"] if r["type"] == "HTTP"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Webmail]:
    s = start_webmail(tmp_path / "server")
    yield s
    s.stop()


@pytest.mark.parametrize("mode", ["close", "keep-alive"])
def test_sessions_in_both_modes(server: Webmail, tmp_path: Path, mode: str) -> None:
    summary = run_against(server.port, tmp_path, users=30, duration="6s", connection=mode)
    reqs = by_name(summary)
    assert {"LOGIN_PAGE", "LOGIN", "INBOX", "POLL", "MESSAGE", "SEND", "LOGOUT",
            "session"} <= set(reqs)
    assert all(r["failures"] == 0 for r in reqs.values()), reqs
    assert reqs["session"]["count"] == reqs["LOGOUT"]["count"] >= 30
    assert reqs["POLL"]["count"] >= 30 * 3
    assert summary["sessions"]["HTTP"]["peak"] == 30
    assert summary["sessions"]["HTTP"]["dropped"] == 0
    time.sleep(1.2)  # the server writes its counters every second
    counters = server.counters()
    assert counters["logins"] == reqs["LOGIN"]["count"]
    assert counters["logouts"] == reqs["LOGOUT"]["count"]
    http = summary["http"]  # the run's own monitor: client-side connections each second
    assert http["peak_sessions"] == 30
    if mode == "keep-alive":  # one connection held per session
        assert counters["connections_peak"] >= 30
        assert http["peak_connections"] >= 30
        assert http["held_connections_max"] >= 28, http  # while all 30 were open
    else:
        assert counters["connections_peak"] < 30
        assert http["time_wait_peak"] > 0  # (few sessions: see the 3,000 test for the ratio)


def test_sessions_dropped_by_the_server_log_in_again(tmp_path: Path) -> None:
    server = start_webmail(tmp_path / "server", "--session-timeout", "1")
    try:
        summary = run_against(server.port, tmp_path, expect=3, users=10, duration="7s",
                              session_length="5s", poll_interval="2s", send_ratio=0,
                              open_message_ratio=0)
    finally:
        server.stop()
    reqs = by_name(summary)
    # every poll comes after more than the idle timeout: the session is gone
    assert reqs["POLL"]["failures"] == reqs["POLL"]["count"] >= 10
    assert reqs["LOGIN"]["failures"] == 0
    assert reqs["LOGIN"]["count"] >= 2 * reqs["session"]["count"]  # logged in again
    assert reqs["session"]["failures"] == reqs["session"]["count"] >= 10
    assert summary["sessions"]["HTTP"]["dropped"] >= 10
    records = list(read_stream(tmp_path / "out" / "results.jsonl"))
    errors = {r.err.split(":")[0] for r in records if type(r) is Req and r.name == "POLL"}
    assert errors == {"SessionExpired"}, errors


_ERROR_SERVER = textwrap.dedent("""
    import http.server, sys
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(503); self.send_header("Content-Length", "4"); self.end_headers()
            self.wfile.write(b"busy")
        def log_message(self, *a): pass
    s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    print(s.server_address[1], flush=True)
    s.serve_forever()
""")


def test_5xx_and_refused_connections_are_failures_with_backoff(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _ERROR_SERVER], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        summary = run_against(port, tmp_path / "5xx", expect=3, users=5, duration="4s")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(5)
    page = by_name(summary)["LOGIN_PAGE"]
    assert page["failures"] == page["count"]
    assert page["count"] <= 5 * 6  # pauses of 0.5, 1, 1, ... s between logins, not a tight loop
    records = list(read_stream(tmp_path / "5xx" / "out" / "results.jsonl"))
    assert {r.err.split(":")[0] for r in records if type(r) is Req
            and r.name == "LOGIN_PAGE"} == {"ServerError"}
    summary = run_against(port, tmp_path / "refused", expect=3, users=5,
                          duration="3s")  # now closed
    page = by_name(summary)["LOGIN_PAGE"]
    assert page["failures"] == page["count"] > 0


def test_three_thousand_sessions_on_few_connections_in_close_mode(server: Webmail,
                                                                  tmp_path: Path) -> None:
    """The seed: 3,000 open sessions, a new connection per request, few open at any time."""
    summary = run_against(server.port, tmp_path, users=3000, spawn_rate=100, duration="8s",
                          session_length="60s", poll_interval="20s", open_message_ratio=0.2,
                          send_ratio=0)
    reqs = by_name(summary)
    assert summary["sessions"]["HTTP"]["peak"] == 3000
    assert reqs["LOGIN"]["count"] == 3000 and reqs["LOGIN"]["failures"] == 0
    assert all(r["failures"] == 0 for r in reqs.values()), reqs
    time.sleep(1.2)
    counters = server.counters()
    assert counters["sessions_peak"] == 3000
    assert counters["connections_peak"] < 300, counters  # well below the session count
    http = summary["http"]
    assert http["peak_sessions"] == 3000 and http["peak_connections"] < 300, http
    assert http["held_samples"] >= 5 and http["held_connections_max"] < 300, http
    assert http["time_wait_peak"] > 1000  # every request left a TIME_WAIT socket behind


def test_the_embedded_target_serves_webmail_when_wired(tmp_path: Path) -> None:
    """Once the embedded target starts the webmail (an `http` endpoint), `mailswarm run`
    without a target file runs WebUsers against it."""
    with EmbeddedTarget(EmbeddedSettings(), tmp_path / "target") as target:
        wired = target.target.endpoint("http") is not None
    if not wired:
        pytest.skip("the embedded target has no http endpoint yet")
    out = tmp_path / "out"
    profile = profile_file(tmp_path / "web.json", users=10, duration="3s")
    result = run_cli("run", str(profile), "--out", str(out), "--quiet", timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert by_name(summary)["LOGIN"]["failures"] == 0
    assert summary["sessions"]["HTTP"]["peak"] == 10


class Recorder:
    """An HTTP server in this process: each connection's request heads; the first reply sets a
    cookie; keeps the connection open unless the request says `Connection: close`."""

    def __init__(self) -> None:
        self.connections: list[list[str]] = []
        self.server = StreamServer(("127.0.0.1", 0), self.handle)
        self.server.start()

    def handle(self, sock: Any, _: Any) -> None:
        heads: list[str] = []
        self.connections.append(heads)
        data = b""
        while True:
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                data += chunk
            head, data = data.split(b"\r\n\r\n", 1)
            heads.append(head.decode().lower())
            close = "connection: close" in heads[-1]
            extra = "set-cookie: sid=s1\r\n" if sum(map(len, self.connections)) == 1 else ""
            extra += "connection: close\r\n" if close else ""
            sock.sendall(f"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n{extra}\r\nok".encode())
            if close:
                sock.close()
                return


@pytest.mark.parametrize("mode", ["close", "keep-alive"])
def test_one_webuser_on_the_wire(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Close mode: each request its own connection with `Connection: close`; keep-alive: one
    connection per session; cookies kept either way; an IP address looked up once per session,
    not once per connection (gevent's resolver costs a thread round trip each time)."""
    lookups: list[Any] = []
    real_getaddrinfo = gevent.socket.getaddrinfo
    monkeypatch.setattr(gevent.socket, "getaddrinfo",
                        lambda *a: lookups.append(a) or real_getaddrinfo(*a))
    recorder = Recorder()
    try:
        scenario = Scenario.model_validate({
            "name": "wire", "user": "webuser", "schedule": {"kind": "closed", "users": 1},
            "web": {"connection": mode}})
        target = Target(endpoints={"http": {"protocol": "http", "host": "127.0.0.1",
                                            "port": recorder.server.server_port}})
        cls = user_class_for(scenario, target, pacer=None, allow_remote=False, seed=1)
        user = cls(Environment(user_classes=[cls]))
        assert isinstance(user, WebUser)
        for session in range(2):
            for _ in range(3):
                reply = user.exchange(HttpRequest("PAGE", "GET", "/"),
                                      lambda r: judge_status("PAGE", r))
                assert reply.body == b"ok"
            user._end_connections()
            assert len(lookups) == session + 1
    finally:
        recorder.server.stop()
    heads = [h for conn in recorder.connections for h in conn]
    assert len(heads) == 6
    assert "cookie: sid=s1" not in heads[0] and all("cookie: sid=s1" in h for h in heads[1:])
    if mode == "close":
        assert [len(c) for c in recorder.connections] == [1] * 6
        assert all("connection: close" in h for h in heads)
    else:
        assert [len(c) for c in recorder.connections] == [3, 3]
        assert not any("connection: close" in h for h in heads)
