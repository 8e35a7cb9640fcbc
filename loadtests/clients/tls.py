"""TLS for the protocol clients: an endpoint's options -> an `ssl.SSLContext`, readable failures.

`TlsOptions` is what a target file's endpoint says (`tls: none | starttls | implicit`, `verify`,
`ca_file`, `server_name`, `min_version`, a client certificate, `allow_plaintext_auth`).
`TlsConfig(options, resume=...)` builds the context once and, with `resume`, keeps the
`SSLSession`s its endpoint's connections ended with and offers each to one later handshake (TLS
session resumption, as real clients do; asyncio's `start_tls`/`create_connection` take no
session, so the context's `wrap_bio` adds it). `tls_error(exc)` (clients/errors.py) turns an
`ssl` failure into a `TlsError` whose text a person reads ("certificate verify failed:
Hostname mismatch, ...") and whose code is the failure's short name
(`CERTIFICATE_VERIFY_FAILED`), never a traceback. `picks_tls(share, index, phase)` says which
sessions of a scenario use TLS when only a share of them does.
Building a context makes this process's SSL transports share one receive buffer
(clients/tls_buffer.py: asyncio's is 256 KiB per connection; that protocol also keeps its
state in slots, feeds the handshake flight to OpenSSL in slices and has the heap trimmed after
handshakes, clients/tls_trim.py). No Locust here.
"""

from __future__ import annotations

import math
import ssl
from dataclasses import dataclass
from typing import Any, Literal

from loadtests.clients.errors import TlsError, tls_error
from loadtests.clients.tls_buffer import share_receive_buffers

__all__ = ["TLS_VERSIONS", "TlsConfig", "TlsError", "TlsMode", "TlsOptions", "endpoint_tls",
           "make_context", "picks_tls", "tls_error", "tls_info"]

TlsMode = Literal["none", "starttls", "implicit"]

TLS_VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
"""`min_version` values an endpoint may give."""


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """One endpoint's TLS settings, as its target file gives them."""

    mode: TlsMode = "none"
    verify: bool = True
    ca_file: str | None = None
    server_name: str | None = None  # SNI and the name checked (default: the endpoint's host)
    min_version: str | None = None  # a key of TLS_VERSIONS
    client_cert: str | None = None
    client_key: str | None = None
    allow_plaintext_auth: bool = False  # AUTH/LOGIN over an unencrypted connection

    @property
    def enabled(self) -> bool:
        return self.mode != "none"


def make_context(options: TlsOptions) -> ssl.SSLContext:
    """A client context for `options` (trusting `ca_file`, else the system's CAs); the process's
    SSL transports share one receive buffer from then on (clients/tls_buffer.py)."""
    share_receive_buffers()
    context = _resuming_class()(ssl.PROTOCOL_TLS_CLIENT)
    if options.verify:
        if options.ca_file:
            context.load_verify_locations(cafile=options.ca_file)
        else:
            context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if options.min_version:
        context.minimum_version = TLS_VERSIONS[options.min_version]
    if options.client_cert:
        context.load_cert_chain(options.client_cert, options.client_key)
    return context


def _wrap_bio(self: Any, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO,
              server_side: bool = False, server_hostname: str | bytes | None = None,
              session: ssl.SSLSession | None = None) -> ssl.SSLObject:
    base: Any = type(self).__mro__[1]
    pool = self.resume_pool
    if session is None and pool:
        session = pool.pop()
    sslobj: ssl.SSLObject = base.wrap_bio(self, incoming, outgoing, server_side,
                                          server_hostname, session)
    return sslobj


_RESUMING: dict[type, type] = {}
_POOL_MAX = 4096  # sessions kept per endpoint for resumption


def _resuming_class() -> type[ssl.SSLContext]:
    """`ssl.SSLContext` as it is now (gevent's after monkey-patching, which asyncio's checks
    then expect) whose `wrap_bio` offers a session from `resume_pool` (when it is a list)."""
    base = ssl.SSLContext
    cls = _RESUMING.get(base)
    if cls is None:
        cls = _RESUMING[base] = type("ResumingContext", (base,),
                                     {"resume_pool": None, "wrap_bio": _wrap_bio})
    return cls


class TlsConfig:
    """The context of one endpoint (built once) and, with `resume`, the TLS sessions its
    connections ended with, each offered once to a later connection (TLS 1.3 tickets are
    single-use: a session shared by concurrent connections would resume only one of them)."""

    def __init__(self, options: TlsOptions, *, resume: bool = False) -> None:
        self.options = options
        self.resume = resume
        self.context: ssl.SSLContext = make_context(options)
        self._pool: list[ssl.SSLSession] = []
        if resume:
            self.context.resume_pool = self._pool  # type: ignore[attr-defined]

    @property
    def mode(self) -> TlsMode:
        return self.options.mode

    def server_hostname(self, host: str) -> str:
        """The name sent as SNI and checked against the certificate."""
        return self.options.server_name or host.strip("[]")

    def remember(self, transport: Any) -> None:
        """Keep the transport's TLS session for a later handshake (when resuming); call it
        when the session is over, right before closing the connection."""
        if not self.resume:
            return
        sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
        session = getattr(sslobj, "session", None)
        if session is None or not session.has_ticket or len(self._pool) >= _POOL_MAX:
            return
        self._pool.append(session)


def tls_info(transport: Any) -> dict[str, Any] | None:
    """`{"version", "cipher", "resumed"}` of a TLS transport, None for a plain one."""
    sslobj = transport.get_extra_info("ssl_object") if transport is not None else None
    if sslobj is None:
        return None
    cipher = sslobj.cipher()
    return {"version": sslobj.version(), "cipher": cipher[0] if cipher else None,
            "resumed": bool(sslobj.session_reused)}


_CONFIGS: dict[tuple[str, int, TlsOptions, bool], TlsConfig] = {}


def endpoint_tls(host: str, port: int, options: TlsOptions, *,
                 resume: bool = False) -> TlsConfig | None:
    """The one `TlsConfig` of an endpoint in this process (None without TLS): its context is
    built once and, with `resume`, its sessions are resumed across all its users."""
    if not options.enabled:
        return None
    key = (host, port, options, resume)
    config = _CONFIGS.get(key)
    if config is None:
        config = _CONFIGS[key] = TlsConfig(options, resume=resume)
    return config


def picks_tls(share: float, index: int, phase: float = 0.0) -> bool:
    """Whether the `index`-th session (0, 1, ...) uses TLS when a `share` (0..1) of them do:
    spread evenly, so of the first N sessions floor(N * share + phase) use TLS (`phase` in
    [0, 1), from the run's seed, shifts which ones)."""
    if share >= 1.0:
        return True
    return math.floor((index + 1) * share + phase) > math.floor(index * share + phase)
