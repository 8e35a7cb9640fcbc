"""Runs the embedded target's servers in this process until SIGTERM or SIGINT.

When ready it prints one JSON line to stdout: `{"ready": true, "pid": ..., "host": ...,
"smtp_port": ..., "dns_port": ...}`; while running it rewrites `--stats-file` every second.
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
from loadtests.embedded.web import start_web

__all__ = ["die_with_parent", "serve"]


def die_with_parent() -> None:
    """Ask Linux to send us SIGTERM when the process that started us dies (even by SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def serve(settings: EmbeddedSettings, stats_file: Path | None = None) -> None:
    loop = asyncio.get_running_loop()
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
        SmtpServerFactory(settings, stats, delivery),
        settings.host, settings.smtp_port, backlog=settings.backlog)
    dns_port, udp, tcp = await serve_dns(settings, stats)
    web_counters: dict[str, int] = {}
    http_port, stop_web = await start_web(settings, store, settings.host, settings.http_port,
                                          counters=web_counters)
    pop3_server = Pop3Server(store, hostname=f"mail.{settings.domain}",
                             command_delay=settings.command_delay, fault=settings.pop3_fault)
    imap_server = ImapServer(
        store, command_delay=settings.command_delay, keepalive_interval=settings.imap_keepalive,
        max_user_connections=settings.imap_max_user_connections,
        fault=None if settings.imap_fault == "none" else settings.imap_fault)
    listeners = [
        await start_listener("pop3", pop3_server.handle, settings.host, settings.pop3_port,
                             refusal=b"-ERR [SYS/TEMP] too many connections, try later\r\n",
                             **_listener_options(settings)),
        await start_listener("imap", imap_server.handle, settings.host, settings.imap_port,
                             refusal=b"* BYE Connection queue full\r\n",
                             **_listener_options(settings)),
    ]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready = {
        "ready": True, "pid": os.getpid(), "host": settings.host,
        "smtp_port": smtp.sockets[0].getsockname()[1], "dns_port": dns_port,
        **{f"{lis.name}_port": lis.port for lis in listeners}, "http_port": http_port,
        "domain": settings.domain, "users": settings.users,
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
        smtp.close()
        tcp.close()
        udp.close()
        for lis in listeners:
            lis.close()
        await stop_web()
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
