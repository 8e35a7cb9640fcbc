"""Delivery tracking by IMAP IDLE against the embedded target: standing sessions on the watched
recipients' INBOX get the server's EXISTS push when local delivery appends a copy, FETCH it,
verify it, and the findings equal the target's own fault counters exactly (lost, corrupt,
duplicate); a session the server drops reconnects and catches up on what came meanwhile. (A
whole run with `find: imap-idle`: tests/test_delivery.py, next to the POP3 one.) Real stack
(`stack` mark): Postfix delivers into the maildirs, Dovecot pushes, every copy is found."""

from __future__ import annotations

import asyncio
import json
import os
import smtplib
import socket
import time
from pathlib import Path

import gevent
import pytest
import yaml
from aio import run_coro
from cli import ROOT, run_cli

from loadtests import bridge
from loadtests.clients.message import build_message, new_message_id
from loadtests.delivery.imap_idle import ImapIdleFinder
from loadtests.delivery.tracker import Tracker
from loadtests.embedded.imap import ImapServer
from loadtests.embedded.mailstore import MailStore, password_for
from loadtests.stack import using
from loadtests.stream import Delivery, Sent

WATCHED = [f"user{n:04d}@example.test" for n in range(1, 6)]


def _send(port: int, rcpt: str) -> Sent:
    mid = new_message_id()
    sent_at = time.time()
    data = build_message(sender="a@mailswarm.test", recipients=[rcpt], size=1500,
                         message_id=mid, sent_at=sent_at)
    with smtplib.SMTP("127.0.0.1", port, local_hostname="t.test", timeout=5) as smtp:
        smtp.sendmail("a@mailswarm.test", [rcpt], data)
    return Sent(sent_at, mid, [rcpt])


def _tracking(target, delete: bool = True) -> tuple[Tracker, ImapIdleFinder, list[Delivery],
                                                   gevent.Greenlet]:
    bridge.start()
    finder = ImapIdleFinder("127.0.0.1", target.ready["imap_port"], password_for("x"),
                            lambda box: box.partition("@")[0], WATCHED, delete=delete,
                            timeout=5)
    records: list[Delivery] = []
    tracker = Tracker(finder, records.append, via="imap-idle")
    runner = gevent.spawn(bridge.run, tracker.run())
    until = time.monotonic() + 10
    while len(finder.ready) < len(WATCHED) and time.monotonic() < until:
        gevent.sleep(0.05)
    assert finder.ready == set(WATCHED), finder.last_error
    return tracker, finder, records, runner


def _settle(tracker: Tracker, runner: gevent.Greenlet, within: float = 10.0) -> None:
    until = time.monotonic() + within
    while tracker.ledger.pending() and time.monotonic() < until:
        gevent.sleep(0.1)
    gevent.sleep(0.5)  # duplicates come right behind their first copy
    tracker.stopping = True
    runner.join(timeout=5)
    assert runner.dead
    tracker.expire()


def test_idle_watchers_report_exactly_the_injected_faults(start_target) -> None:
    target = start_target(smtp_deliver=True, delivery_delay=0.05, messages_per_user=3,
                          drop_one_in=7, corrupt_one_in=5, duplicate_one_in=6)
    tracker, finder, records, runner = _tracking(target)
    port = target.ready["smtp_port"]
    for n in range(60):
        tracker.learn(_send(port, WATCHED[n % len(WATCHED)]))
    tracker.learn(_send(port, "user0100@example.test"))  # not watched: not tracked
    _settle(tracker, runner)
    time.sleep(1.1)  # the target writes its counters once a second
    injected = target.stats().servers["delivery"]
    outcomes = {o: sum(1 for r in records if r.outcome == o)
                for o in ("delivered", "corrupt", "duplicate", "lost")}
    assert injected["accepted"] == 61 and injected["dropped"] >= 8
    assert injected["corrupted"] >= 8 and injected["duplicated"] >= 6
    assert (outcomes["lost"], outcomes["corrupt"], outcomes["duplicate"]) == (
        injected["dropped"], injected["corrupted"], injected["duplicated"])
    assert outcomes["delivered"] + outcomes["corrupt"] + outcomes["lost"] == 60
    # the 61st copy (user0100's) is neither dropped (every 7th) nor duplicated: one more
    assert outcomes["delivered"] + outcomes["corrupt"] + outcomes["duplicate"] + 1 == \
        injected["delivered"]
    assert tracker.ledger.unwatched == 1
    assert all(r.via == "imap-idle" for r in records)
    latencies = [r.latency_s for r in records if r.outcome == "delivered"]
    assert latencies and max(latencies) < 2.0  # pushed, not polled
    assert finder.pushes > 0 and finder.errors == 0
    # `delete`: our copies are expunged, the generated mail stays
    imap = target.stats().servers["imap"]
    assert imap["commands"]["EXPUNGE"] >= 1


def test_a_dropped_session_reconnects_and_catches_up() -> None:
    """The server ends every IDLE after 0.3 s (autologout): the watchers keep reconnecting
    (0.5 s back-off), so copies keep arriving while they are away; each is found once, from the
    UID the watcher expected next."""
    store = MailStore(users=10, messages_per_user=2)
    server = ImapServer(store, autologout=0.3)

    async def main() -> tuple[list[Delivery], ImapIdleFinder]:
        listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = listening.sockets[0].getsockname()[1]
        finder = ImapIdleFinder("127.0.0.1", port, password_for("x"),
                                lambda box: box.partition("@")[0], WATCHED[:2], delete=False,
                                timeout=5)
        records: list[Delivery] = []
        tracker = Tracker(finder, records.append, via="imap-idle")
        task = asyncio.ensure_future(tracker.run())
        while len(finder.ready) < 2:
            await asyncio.sleep(0.02)
        for n in range(16):
            box, mid = WATCHED[n % 2], new_message_id()
            tracker.learn(Sent(time.time(), mid, [box]))
            mailbox = store.get(box)
            assert mailbox is not None
            mailbox.append(build_message(sender="a@mailswarm.test", recipients=[box],
                                         size=1200, message_id=mid))
            await asyncio.sleep(0.25)
        for _ in range(100):
            if not tracker.ledger.pending():
                break
            await asyncio.sleep(0.05)
        tracker.stopping = True
        await asyncio.wait_for(task, 5)
        tracker.expire()
        listening.close()
        return records, finder

    records, finder = run_coro(main())
    assert [r.outcome for r in records] == ["delivered"] * 16
    assert finder.reconnects >= 3 and "Autologout" in (finder.last_error or "")
    assert finder.pushes < 16  # the others were found by catching up after a reconnect


def test_a_dead_endpoint_gets_one_probe_at_a_time_and_everyone_gets_in_once_it_is_up() -> None:
    """50 watched mailboxes, nothing listening for 3 s: after the first round of refusals one
    session probes with back-off (not 50 each with its own); once a server listens, every
    watcher gets in."""
    boxes = [f"user{n:04d}@example.test" for n in range(1, 51)]
    store = MailStore(users=60, messages_per_user=1)
    server = ImapServer(store)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # a port nothing listens on, for now

    async def main() -> tuple[int, ImapIdleFinder]:
        finder = ImapIdleFinder("127.0.0.1", port, password_for("x"),
                                lambda box: box.partition("@")[0], boxes, timeout=2)
        stop = False
        task = asyncio.ensure_future(finder.watch(lambda *_: None, lambda: stop))
        await asyncio.sleep(3.0)
        refused = finder.errors
        listening = await asyncio.start_server(server.handle, "127.0.0.1", port)
        for _ in range(200):
            if len(finder.ready) == len(boxes):
                break
            await asyncio.sleep(0.05)
        stop = True
        await asyncio.wait_for(task, 5)
        listening.close()
        return refused, finder

    refused, finder = run_coro(main())
    assert "Errno 111" in (finder.first_error or ""), finder.first_error
    # the first round (one per mailbox) and then a probe at 0.5, 1 and 2 s, not 50 x 3 more
    assert len(boxes) <= refused <= len(boxes) + 5, refused
    assert finder.ready == set(boxes)


@pytest.mark.stack
@pytest.mark.skipif(os.geteuid() != 0, reason="the real stack needs root (apt, daemons)")
def test_smtp_50mps_through_postfix_into_dovecot_tracked_by_idle(tmp_path: Path) -> None:
    """The seed's 50 msg/s SMTP case (15 s) through Postfix into the maildirs Dovecot serves,
    tracked by IDLE sessions on all 100 recipients' INBOX (the target file's users): every
    accepted message is pushed, fetched and verified, with its latency percentiles; the Postfix
    queue is sampled."""
    with using(["unbound", "postfix", "dovecot"]) as cfg:  # waits while another holds it
        target = yaml.safe_load((ROOT / "profiles/targets/stack.yaml").read_text())
        target["users"]["count"] = 100
        target_file = tmp_path / "stack-100.yaml"
        target_file.write_text(yaml.safe_dump(target))
        profile = yaml.safe_load((ROOT / "profiles/smtp-50mps.yaml").read_text())
        profile.update(duration="15s", drain="5s", delivery={
            "find": "imap-idle", "watch": 100, "deadline": "30s",
            "postfix_queue": str(cfg.run_dir / "postfix/queue")})
        profile_file = tmp_path / "smtp-50mps-idle.yaml"
        profile_file.write_text(yaml.safe_dump(profile))
        out = tmp_path / "out"
        done = run_cli("run", str(profile_file), "--target", str(target_file), "--out",
                       str(out), "--quiet", timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    data = next(r for r in summary["requests"] if (r["type"], r["name"]) == ("SMTP", "DATA"))
    accepted = data["count"] - data["failures"]
    d = summary["delivery"]
    print(json.dumps({"accepted": accepted, **{k: d[k] for k in (
        "copies", "tracked", "delivered", "corrupt", "duplicate", "lost", "latency_s",
        "share_within", "queue_peak")}}))
    assert accepted >= 700
    assert d["copies"] == d["tracked"] == d["delivered"] == accepted
    assert (d["corrupt"], d["duplicate"], d["lost"]) == (0, 0, 0)
    assert set(d["latency_s"]) == {"p50", "p95", "p99", "max"} and d["latency_s"]["max"] < 30
    assert d["share_within"] == 100.0 and d["queue_peak"] is not None
    assert all(c["pass"] for c in summary["qos"]["checks"] if c["kind"] == "delivery")
