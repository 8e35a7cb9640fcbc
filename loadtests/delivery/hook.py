"""Delivery tracking in a run: what `loadtests.run.core` calls (a few lines there).

`DeliveryHook.for_run` is None unless the profile has a `delivery:` section. It listens for
accepted messages on the run's request events (users in this process) and on the stream writer
(`sent` records — the ones worker processes ship arrive there), runs the tracker on the asyncio
bridge, and after the load waits for the copies still missing, at most `deadline` seconds,
before writing them as `lost`. Once a second it writes the delivery queues it can see (`queue`:
a Postfix queue directory, the embedded target's own queue from its stats file) and, when they
changed, the tracker's failures to look (`tracking`); a tracker that cannot look is said on
stderr as it happens, since the copies it misses will be reported lost.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from gevent.event import Event

from loadtests import bridge
from loadtests.clients.tls import endpoint_tls
from loadtests.delivery.embedded_queue import embedded_queue_counts
from loadtests.delivery.imap_idle import ImapIdleFinder
from loadtests.delivery.maildir import MaildirFinder
from loadtests.delivery.pop3 import Pop3Finder
from loadtests.delivery.queue import postfix_queue_counts
from loadtests.delivery.sent import sent_listener
from loadtests.delivery.settings import DeliverySettings
from loadtests.delivery.tracker import Finder, Tracker, Watcher
from loadtests.profiles import Profile
from loadtests.stream.records import Queue, Record, Sent, Tracking
from loadtests.stream.writer import StreamWriter
from loadtests.targets import Target

__all__ = ["DeliveryHook"]


def _finder(settings: DeliverySettings, target: Target) -> Finder | Watcher:
    if settings.find == "maildir":
        assert settings.maildir is not None, "checked by the settings model"
        return MaildirFinder(settings.maildir)
    name = settings.endpoint_name or settings.find
    endpoint = target.endpoint(name)
    if endpoint is None:
        raise ValueError(f"delivery.endpoint: the target has no endpoint {name!r}")

    def login(box: str) -> str:
        return box.partition("@")[0]

    if settings.find == "imap-idle":
        users = target.users
        watched = [f"{users.name(i)}@{target.domain}".lower()
                   for i in range(min(settings.watch, users.count))]
        return ImapIdleFinder(endpoint.host, endpoint.port, target.secret() or "", login,
                              watched, delete=settings.delete,
                              tls=endpoint_tls(endpoint.host, endpoint.port,
                                               endpoint.tls_options()),
                              connect_concurrency=settings.concurrency)
    return Pop3Finder(endpoint.host, endpoint.port, target.secret() or "", login=login,
                      delete=settings.delete)


class DeliveryHook:
    def __init__(self, settings: DeliverySettings, target: Target, writer: StreamWriter,
                 embedded_stats: Path | None = None) -> None:
        self.settings = settings
        self.embedded_stats = embedded_stats  # the embedded target's stats file, if it runs
        self.tracker = Tracker(_finder(settings, target), writer.write, via=settings.find,
                               poll_interval=settings.poll_interval,
                               concurrency=settings.concurrency)
        self.writer = writer
        writer.taps.append(self._tap)
        self._greenlet: gevent.Greenlet | None = None
        self._sampler: gevent.Greenlet | None = None
        self._health: Tracking | None = None  # the last `tracking` record written

    @classmethod
    def for_run(cls, profile: Profile, target: Target, writer: StreamWriter,
                events: Any, embedded_stats: Path | None = None) -> DeliveryHook | None:
        """The hook of a run whose profile tracks delivery (else None), listening already;
        `embedded_stats`: the stats file of the embedded target the run started."""
        if profile.delivery is None:
            return None
        hook = cls(profile.delivery, target, writer, embedded_stats)
        events.request.add_listener(sent_listener(writer.write, profile.delivery.scenarios))
        return hook

    def _tap(self, record: Record) -> None:
        if type(record) is Sent:
            self.tracker.learn(record)

    def start(self, ready_within: float = 15.0) -> None:
        """Start finding copies (and sampling the queue); with IMAP IDLE, wait up to
        `ready_within` seconds for every watched mailbox's session, so the load does not start
        before its copies can be seen."""
        self._greenlet = gevent.spawn(bridge.run, self.tracker.run())
        self._sampler = gevent.spawn(self._sample)
        finder = self.tracker.finder
        if isinstance(finder, ImapIdleFinder):
            until = time.monotonic() + ready_within
            while len(finder.ready) < len(finder.mailboxes) and time.monotonic() < until:
                gevent.sleep(0.05)
            if len(finder.ready) < len(finder.mailboxes):
                print(f"delivery tracking: imap-idle watches {len(finder.ready)} of "
                      f"{len(finder.mailboxes)} mailboxes after {ready_within:g} s"
                      + (f" ({finder.errors} errors, first: {finder.first_error})"
                         if finder.errors else ""), file=sys.stderr)

    def _sample(self) -> None:
        """Once a second until closed: the queues as `queue` records, the tracker's errors."""
        while not self.tracker.stopping:
            self.sample_once()
            gevent.sleep(1.0)

    def sample_once(self) -> None:
        now = time.time()
        if self.settings.postfix_queue:
            self.writer.write(Queue(now, "postfix",
                                    postfix_queue_counts(self.settings.postfix_queue)))
        if self.embedded_stats is not None:
            counts = embedded_queue_counts(self.embedded_stats)
            if counts is not None:
                self.writer.write(Queue(now, "embedded", counts))
        self._write_health(now)

    def _write_health(self, now: float, final: bool = False) -> None:
        """A `tracking` record when the tracker's errors changed (and at its end, if any)."""
        health = self.tracker.health(now)
        last = self._health
        if health.errors == 0 and last is None:
            return
        if not final and last is not None and (last.errors, last.looked == 0) == (
                health.errors, health.looked == 0):
            return
        if last is None:
            print(f"delivery tracking: {health.via} failed to look: {health.first_error}",
                  file=sys.stderr)
        self.writer.write(health)
        self._health = health

    def wait(self, stop: Event, on_second: Callable[[], None]) -> None:
        """After the load: until every copy is found, the deadline, or a stop request."""
        until = time.monotonic() + self.settings.deadline
        while self.tracker.ledger.pending() and time.monotonic() < until:
            if stop.wait(timeout=min(1.0, max(0.0, until - time.monotonic()))):
                break
            on_second()

    def close(self) -> None:
        """Stop polling; what is still missing is lost."""
        self.tracker.stopping = True
        if self._sampler is not None:
            self._sampler.kill(block=False)
        if self._greenlet is not None:
            self._greenlet.join(timeout=self.settings.poll_interval + 15)
            self._greenlet.kill(block=False)
        if self._tap in self.writer.taps:
            self.writer.taps.remove(self._tap)
        self._write_health(time.time(), final=True)
        self.tracker.expire()

    def pending(self) -> int:
        return self.tracker.ledger.pending()
