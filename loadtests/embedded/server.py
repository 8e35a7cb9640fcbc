"""Runs the embedded target's servers in this process until SIGTERM or SIGINT.

When ready it prints one JSON line to stdout: `{"ready": true, "pid": ..., "host": ...,
"smtp_port": ..., "dns_port": ...}`; while running it rewrites `--stats-file` every second.

With `tls` (the default) it first makes its test CA and server certificate into `tls_dir`
(embedded/tls.py), offers STARTTLS on SMTP, POP3 and IMAP, listens for SMTP submission
(STARTTLS + AUTH), SMTPS, IMAPS, POP3S and HTTPS, and names the CA file in its ready line
(`ca_file`) and those ports (`submission_port`, `smtps_port`, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import resource
import signal
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import TypedDict

from loadtests.counts import SessionCounts
from loadtests.embedded.config import EmbeddedSettings
from loadtests.embedded.delivery import LocalDelivery
from loadtests.embedded.dns import serve_dns
from loadtests.embedded.imap import IMAP_CONNECTION_FIELDS, ImapServer
from loadtests.embedded.listener import LISTENER_FIELDS, Listener, start_listener
from loadtests.embedded.mailstore import MailStore
from loadtests.embedded.pop3 import POP3_CONNECTION_FIELDS, Pop3Server
from loadtests.embedded.smtp import SmtpServerFactory
from loadtests.embedded.stats import TargetStats
from loadtests.embedded.tls import SmtpAuthenticator, server_tls
from loadtests.embedded.web import start_web

__all__ = ["die_with_parent", "serve"]


def die_with_parent() -> None:
    """Ask Linux to send us SIGTERM when the process that started us dies (even by SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def serve(settings: EmbeddedSettings, stats_file: Path | None = None,
                tls_dir: Path | None = None) -> None:
    loop = asyncio.get_running_loop()
    tls_context, ca_file, scratch = None, None, None
    if settings.tls:
        if tls_dir is None:
            scratch = tempfile.TemporaryDirectory(prefix="mailswarm-tls-")
            tls_dir = Path(scratch.name)
        tls_context, ca_file = server_tls(tls_dir, settings.tls_certificate)
    stats_fd = os.open(stats_file, os.O_RDWR | os.O_CREAT, 0o644) if stats_file else -1
    if settings.nofile_limit:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (settings.nofile_limit, hard))
    stats = TargetStats()
    store = MailStore(settings.domain, settings.users, settings.messages_per_user,
                      settings.message_size)
    delivery = LocalDelivery(
        store, delay=settings.delivery_delay, drop_one_in=settings.drop_one_in,
        corrupt_one_in=settings.corrupt_one_in, duplicate_one_in=settings.duplicate_one_in,
    ) if settings.smtp_deliver else None
    smtp = await loop.create_server(
        SmtpServerFactory(settings, stats, delivery, tls_context=tls_context),
        settings.host, settings.smtp_port, backlog=settings.backlog)
    servers = [smtp]
    tls_ports: dict[str, int] = {}
    if tls_context is not None:
        authenticator = SmtpAuthenticator(store)
        for role, port, ssl_arg in (("submission", settings.submission_port, None),
                                    ("smtps", settings.smtps_port, tls_context)):
            server = await loop.create_server(
                SmtpServerFactory(settings, stats, delivery, role=role, tls_context=tls_context,
                                  authenticator=authenticator),
                settings.host, port, backlog=settings.backlog, ssl=ssl_arg)
            servers.append(server)
            tls_ports[f"{role}_port"] = server.sockets[0].getsockname()[1]
    dns_port, udp, tcp = await serve_dns(settings, stats)
    web_counters: dict[str, int] = {}
    http_port, stop_web = await start_web(settings, store, settings.host, settings.http_port,
                                          counters=web_counters)
    pop3_server = Pop3Server(store, hostname=f"mail.{settings.domain}",
                             command_delay=settings.command_delay, fault=settings.pop3_fault,
                             fault_ratio=settings.fault_ratio, ssl_context=tls_context)
    imap_server = ImapServer(
        store, command_delay=settings.command_delay, keepalive_interval=settings.imap_keepalive,
        max_user_connections=settings.imap_max_user_connections,
        fault=None if settings.imap_fault == "none" else settings.imap_fault,
        fault_ratio=settings.fault_ratio, ssl_context=tls_context)
    listeners = [
        await start_listener("pop3", pop3_server.handle, settings.host, settings.pop3_port,
                             refusal=b"-ERR [SYS/TEMP] too many connections, try later\r\n",
                             **_listener_options(settings)),
        await start_listener("imap", imap_server.handle, settings.host, settings.imap_port,
                             refusal=b"* BYE Connection queue full\r\n",
                             **_listener_options(settings)),
    ]
    stop_https = None
    if tls_context is not None and settings.mode == "event":
        listeners += [
            await start_listener("pop3s", pop3_server.handle, settings.host,
                                 settings.pop3s_port, ssl=tls_context,
                                 refusal=b"-ERR [SYS/TEMP] too many connections, try later\r\n",
                                 **_listener_options(settings)),
            await start_listener("imaps", imap_server.handle, settings.host,
                                 settings.imaps_port, ssl=tls_context,
                                 refusal=b"* BYE Connection queue full\r\n",
                                 **_listener_options(settings)),
        ]
    if tls_context is not None:
        tls_ports["https_port"], stop_https = await start_web(
            settings, store, settings.host, settings.https_port, counters=web_counters,
            ssl_context=tls_context)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready = {
        "ready": True, "pid": os.getpid(), "host": settings.host,
        "smtp_port": smtp.sockets[0].getsockname()[1], "dns_port": dns_port,
        **{f"{lis.name}_port": lis.port for lis in listeners}, "http_port": http_port,
        "domain": settings.domain, "users": settings.users, **tls_ports,
        "ca_file": str(ca_file) if ca_file else None,
    }
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    try:
        while not stop.is_set():
            if stats_fd >= 0:
                _collect(stats, listeners, pop3_server, imap_server, web_counters, delivery)
                stats.write(stats_fd)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
    finally:
        for server in servers:
            server.close()
        tcp.close()
        udp.close()
        for lis in listeners:
            lis.close()
        await stop_web()
        if stop_https is not None:
            await stop_https()
        if scratch is not None:
            scratch.cleanup()
        if stats_fd >= 0:
            _collect(stats, listeners, pop3_server, imap_server, web_counters, delivery)
            stats.write(stats_fd)
            os.close(stats_fd)


class _ListenerOptions(TypedDict):
    mode: str
    max_connections: int
    thread_limit: int
    thread_stack_size: int
    backlog: int


def _listener_options(settings: EmbeddedSettings) -> _ListenerOptions:
    return {"mode": settings.mode, "max_connections": settings.max_connections,
            "thread_limit": settings.thread_limit,
            "thread_stack_size": settings.thread_stack_size, "backlog": settings.backlog}


def _collect(stats: TargetStats, listeners: list[Listener], pop3: Pop3Server,
             imap: ImapServer, web: dict[str, int], delivery: LocalDelivery | None) -> None:
    stats.listeners = {lis.name: lis.counters.as_dict(LISTENER_FIELDS) for lis in listeners}
    stats.servers = {"pop3": _counters(pop3.counters, POP3_CONNECTION_FIELDS),
                     "imap": _counters(imap.stats, IMAP_CONNECTION_FIELDS), "http": dict(web)}
    if delivery is not None:  # local delivery's own counts: the reference for tracking tests
        stats.servers["delivery"] = delivery.counters.as_dict()


def _counters(obj: object, connection_fields: Mapping[str, str]) -> dict[str, object]:
    """A server's public counters (not its locks), plain enough for JSON; its connections
    (`SessionCounts`) as `connection_fields` names them."""
    out: dict[str, object] = {}
    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if f.name.startswith("_"):
            continue
        if isinstance(value, SessionCounts):
            out.update(value.as_dict(connection_fields))
        else:
            out[f.name] = dict(value) if isinstance(value, dict) else value
    return out
