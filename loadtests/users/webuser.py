"""`WebUser`: one iteration is one webmail session of a person in a browser.

Log in (login form with its CSRF token, then the form post that sets the session cookie), open
the inbox, poll for new mail every `poll_interval` until `session_length` has passed (opening a
message with probability `open_message_ratio` and sending one with `send_ratio` per poll), log
out. The requests go through Locust's FastHttpUser client (geventhttpclient); what to send and
how to judge each reply is in `loadtests.clients.webmail` (embedded webmail or Roundcube).

An endpoint with `tls: implicit` is spoken to over HTTPS with the endpoint's TLS context (its
CA file, server name, minimum version; `verify: false` or --insecure turn checking off).

`connection: keep-alive` keeps one persistent connection per session (a pool of one connection,
closed at the end of the session); `close` sends `Connection: close`, so every request is a new
TCP connection, as the seed's WebUser clients. An endpoint given as an IP address is looked up
once per session, not once per connection.

Records: HTTP `LOGIN_PAGE`, `LOGIN`, `INBOX` (+ Roundcube's `LIST`), `POLL`, `MESSAGE`, `SEND`
(+ Roundcube's `COMPOSE`), `LOGOUT`, and one `HTTP session` record. A failed login, an expired
session (the server dropped it), a 5xx or a transport error is recorded on its request; the
user then logs in again (after a pause that doubles up to `poll_interval`) and goes on until
the session's time is up. The `HTTP` session gauge counts a session open from a successful login
to its logout (or the server dropping it).
"""

from __future__ import annotations

import functools
import ipaddress
import ssl
import time
from typing import Any, ClassVar

import gevent
from geventhttpclient.client import HTTPClient, HTTPClientPool
from geventhttpclient.url import URL
from geventhttpclient.useragent import RetriesExceeded
from locust import FastHttpUser

from loadtests.clients.steps import Step
from loadtests.clients.tls import TlsOptions, make_context
from loadtests.clients.webmail import HttpRequest, Judge, Reply, WebmailApp, make_app
from loadtests.schedule.pacing import Token
from loadtests.schedule.sessions import gauge
from loadtests.users.base import ScenarioUser

__all__ = ["WebUser"]

_ANY_STATUS = frozenset(range(100, 600))  # every reply comes back; the flow's judge decides
_CLOSE = (("Connection", "close"),)


class _Clients(HTTPClientPool):
    """geventhttpclient's clients, one per host, each looking an IP-address host up once.

    geventhttpclient resolves the host for every new connection, and gevent sends each lookup
    through its resolver's native thread pool: a round trip between threads that cost about a
    quarter of a request's CPU in close mode, where every request is a new connection. An
    address resolves to itself, so once per client (per session) is enough; a host name is
    still looked up per connection."""

    def get_client(self, url: str | URL) -> HTTPClient:
        if not isinstance(url, URL):
            url = URL(url)
        client = self.clients.get((url.host, url.port))
        if client is None:
            client = super().get_client(url)
            _resolve_once(client)
        return client


def _https_context(options: TlsOptions, cafile: str | None = None,
                   **_: Any) -> ssl.SSLContext:
    """geventhttpclient's context factory: the endpoint's context (it passes its own CA
    bundle as `cafile`, which the endpoint's `ca_file` replaces)."""
    return make_context(options)


def _resolve_once(client: HTTPClient) -> None:
    try:
        ipaddress.ip_address(client.host)
    except ValueError:
        return  # a name
    pool = client._connection_pool  # geventhttpclient has no public hook for the lookup
    addresses = pool._resolve()
    pool._resolve = lambda: addresses  # type: ignore[method-assign]


class WebUser(FastHttpUser, ScenarioUser):
    abstract = True
    kind = "webuser"
    concurrency = 1  # one connection per user: keep-alive holds exactly one per session
    max_retries = 0
    max_redirects = 0  # redirects are steps of the flow (login -> inbox), never followed

    protocol: ClassVar[str] = "HTTP"

    def __init__(self, environment: Any) -> None:
        cls = type(self)
        endpoint = cls.target.endpoint(cls.scenario.endpoint or "http")
        assert endpoint is not None, "checked against the profile before the run"
        web = cls.scenario.web
        if endpoint.tls == "none":
            self.host = f"http://{endpoint.address}"
        else:  # HTTPS: the endpoint's context (its CA, name, minimum version) on every connect
            self.host = f"https://{endpoint.address}"
            options = endpoint.tls_options()
            self.insecure = not options.verify
            self.ssl_context_factory = functools.partial(_https_context, options)
        self.network_timeout = self.connection_timeout = web.request_timeout
        super().__init__(environment)
        agent = self.client.client
        # per agent (one per user); geventhttpclient declares it a ClassVar
        agent.valid_response_codes = _ANY_STATUS  # type: ignore[misc]
        agent.clientpool = _Clients(**agent.clientpool.client_args)
        self._agent = agent
        self._base = self.host
        self._extra_headers = _CLOSE if web.connection == "close" else ()

    # -- one request -----------------------------------------------------------------------
    def exchange(self, request: HttpRequest, judge: Judge) -> Reply:
        """Send one request, judge the reply, record it; raises what the judge found (or the
        transport error)."""
        headers = dict(request.headers + self._extra_headers) if (
            request.headers or self._extra_headers) else None
        started = time.time()
        t0 = time.perf_counter()
        error: BaseException | None = None
        reply = None
        limit = self.network_timeout
        try:
            # request_timeout bounds the whole exchange, not each read: a reply trickled a byte
            # at a time is cut too (the connection is dropped with it)
            late = TimeoutError(f"timed out: no complete reply within {limit:g} s")
            with gevent.Timeout(limit, late):
                response = self._agent.urlopen(self._base + request.path,
                                               method=request.method, headers=headers,
                                               payload=request.body, max_redirects=0)
                location = response.headers.getlist("location")  # get(): a list when repeated
                reply = Reply(response.status_code, response.content,
                              location[0] if location else None)
            error = judge(reply)
        except Exception as exc:  # socket errors: recorded, never raised to Locust
            error = _last_try(exc)
            if isinstance(error, TimeoutError):  # the connection may still get the late reply
                self._end_connections()
        ms = (time.perf_counter() - t0) * 1000
        self.fire(Step(self.protocol, request.name, started, ms,
                       len(reply.body) if reply is not None else 0, error))
        if error is not None:
            raise error
        assert reply is not None
        return reply

    # -- one session ----------------------------------------------------------------------------
    def _credentials(self) -> tuple[str, str]:
        users = self.target.users
        user = users.name(self.number % users.count)
        return user, self.target.secret() or ""  # one shared password, as the target file says

    def _recipient(self) -> str:
        users = self.target.users
        return f"{users.name(self.rng.randrange(users.count))}@{self.target.domain}"

    def _new_browser(self) -> WebmailApp:
        self.client.cookiejar.clear()
        return make_app(self.scenario.web.app, self.exchange)

    def _end_connections(self) -> None:
        self._agent.clientpool.close()  # keep-alive: the session's connection goes with it

    def iteration(self, token: Token | None) -> None:
        web = self.scenario.web
        started_wall, started_mono = time.time(), time.monotonic()
        deadline = started_mono + web.session_length
        user, password = self._credentials()
        first_error: BaseException | None = None
        pause = min(0.5, web.poll_interval)
        try:
            while time.monotonic() < deadline:
                app = self._new_browser()
                try:
                    self._logged_in_session(app, user, password, deadline)
                    break  # logged out normally
                except Exception as exc:  # recorded on its request already
                    first_error = first_error or exc
                    # a person logs in again; a short pause, doubling, keeps a server that
                    # refuses every login from being hammered
                    gevent.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                    pause = min(pause * 2, web.poll_interval)
        finally:
            self._end_connections()
        self.fire_session(self.protocol, token, started_wall, started_mono, first_error)

    def _logged_in_session(self, app: WebmailApp, user: str, password: str,
                           deadline: float) -> None:
        web = self.scenario.web
        app.login(user, password)
        gauge.opening(self.protocol)
        failed = False
        try:
            app.open_inbox()
            next_poll = time.monotonic() + web.poll_interval
            while next_poll <= deadline:
                gevent.sleep(max(0.0, next_poll - time.monotonic()))
                app.poll()
                if app.uids and self.rng.random() < web.open_message_ratio:
                    app.open_message(self.rng.choice(app.uids))
                if self.rng.random() < web.send_ratio:
                    app.send(self._recipient(), f"mailswarm {self.number}",
                             "sent by mailswarm's WebUser\n")
                next_poll += web.poll_interval
            gevent.sleep(max(0.0, deadline - time.monotonic()))
            app.logout()
        except Exception:
            failed = True  # the server dropped the session or failed a request in it
            raise
        finally:  # a session cut short by the end of the run is closed, not dropped
            gauge.closed(self.protocol)
            if failed:
                gauge.dropped(self.protocol)


def _last_try(exc: Exception) -> BaseException:
    """The error of the request's (only: `max_retries = 0`) try: geventhttpclient wraps it in
    RetriesExceeded ("URL ...: 0, original=timed out ..."), which says nothing a reader needs."""
    original = getattr(exc, "original", None) if isinstance(exc, RetriesExceeded) else None
    return original if isinstance(original, BaseException) else exc

