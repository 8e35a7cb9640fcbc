"""Delivery tracking: the ledger's bookkeeping (pure), the summary and QoS checks of delivery
records, and a short run against the embedded target with injected delivery faults whose own
counters the run's findings must equal exactly."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import gevent
import pytest
import yaml
from aio import run_coro
from cli import ROOT, run_cli

from loadtests import bridge
from loadtests.analysis.delivery import delivery_checks, delivery_summary
from loadtests.analysis.stream import RunRecords, load_records
from loadtests.clients.message import Verdict, build_message
from loadtests.configfile import ConfigError
from loadtests.console import format_summary
from loadtests.delivery.hook import DeliveryHook
from loadtests.delivery.ledger import Ledger
from loadtests.delivery.maildir import MaildirFinder
from loadtests.delivery.pop3 import Pop3Finder
from loadtests.delivery.queue import postfix_queue_counts
from loadtests.delivery.sent import sent_listener
from loadtests.delivery.settings import DeliverySettings
from loadtests.delivery.tracker import Tracker
from loadtests.embedded.delivery import corrupt_copy
from loadtests.profiles import Profile, check_against_target, load_profile
from loadtests.report.headline import headline
from loadtests.stream import (
    RESULTS_FILE,
    Delivery,
    End,
    Header,
    Queue,
    Sent,
    StreamWriter,
    Tracking,
)
from loadtests.targets import Endpoint, Target

T0 = 1_800_000_000.0


def test_ledger_outcomes() -> None:
    ledger = Ledger()
    assert ledger.learn(Sent(T0, "<a>", ["User1@x.test", "user2@x.test"])) == []
    assert ledger.pending() == 2 and sorted(ledger.mailboxes_due()) == ["user1@x.test",
                                                                       "user2@x.test"]
    ok = ledger.found("user1@x.test", Verdict("<a>", T0 + 0.001), T0 + 1.5)
    assert ok is not None and ok.outcome == "delivered" and ok.latency_s == 1.499
    dup = ledger.found("user1@x.test", Verdict("<a>", T0), T0 + 2)
    assert dup is not None and dup.outcome == "duplicate"
    bad = ledger.found("user2@x.test", Verdict("<a>", T0, "body"), T0 + 1)
    assert bad is not None and (bad.outcome, bad.part) == ("corrupt", "body")
    assert ledger.found("user2@x.test", Verdict("<older>", None), T0) is None  # not ours
    assert ledger.pending() == 0 and ledger.expire(T0 + 9) == []


def test_found_before_learnt_and_lost() -> None:
    ledger = Ledger()
    assert ledger.found("u@x", Verdict("<b>", T0), T0 + 1) is None  # its `sent` comes later
    settled = ledger.learn(Sent(T0, "<b>", ["u@x"]))
    assert [r.outcome for r in settled] == ["delivered"]
    ledger.learn(Sent(T0, "<c>", ["u@x", "v@x"]))
    lost = ledger.expire(T0 + 200)
    assert sorted((r.rcpt, r.outcome) for r in lost) == [("u@x", "lost"), ("v@x", "lost")]


def test_sent_listener_takes_successful_data_steps_only() -> None:
    got: list[Sent] = []
    listen = sent_listener(got.append, ["smtp"])
    ctx = {"scenario": "smtp", "message_id": "<m>", "rcpt": ["u@x"]}
    listen(request_type="SMTP", name="DATA", exception=None, context=ctx, start_time=T0)
    listen(request_type="SMTP", name="DATA", exception=OSError("x"), context=ctx)
    listen(request_type="SMTP", name="RCPT", context=ctx)
    listen(request_type="SMTP", name="DATA", context={**ctx, "scenario": "other"})
    assert got == [Sent(T0, "<m>", ["u@x"], "smtp")]


def test_summary_and_qos_checks() -> None:
    run = RunRecords(header=Header(T0, profile={"delivery": {"qos_within": 1.0}}))
    run.sent = [Sent(T0, f"<{i}>", ["u@x"]) for i in range(20)]
    run.deliveries = [Delivery(T0, f"<{i}>", "u@x", "delivered", 0.1 * i) for i in range(19)]
    run.deliveries.append(Delivery(T0, "<19>", "u@x", "lost"))
    d = delivery_summary(run)
    assert d is not None and (d["tracked"], d["delivered"], d["lost"]) == (20, 19, 1)
    assert d["share_within"] == 55.0 and d["latency_s"]["max"] == 1.8  # 0.0 .. 1.0: 11 of 20
    checks = delivery_checks({"delivery": d})
    assert [c["pass"] for c in checks] == [False, False]
    assert delivery_summary(RunRecords()) is None and delivery_checks({}) == []


@pytest.mark.parametrize("find", ["pop3", "imap-idle"])
def test_a_run_reports_exactly_the_injected_faults(tmp_path: Path, find: str) -> None:
    """POP3 polling, or IDLE sessions on all 200 users' INBOX (every copy watched)."""
    data = yaml.safe_load((ROOT / "profiles" / "smtp-delivery.yaml").read_text())
    data["embedded"]["duplicate_one_in"] = 300
    if find == "imap-idle":
        data["delivery"] = {"find": "imap-idle", "watch": 200, "deadline": "5s"}
    profile = tmp_path / "delivery.yaml"
    profile.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    done = run_cli("run", str(profile), "--out", str(out), "--quiet", timeout=120)
    assert done.returncode == 3, done.stderr[-2000:]  # the QoS verdict fails
    summary = json.loads((out / "summary.json").read_text())
    injected = summary["embedded_target"]["servers"]["delivery"]
    found = summary["delivery"]
    assert injected["dropped"] >= 9 and injected["corrupted"] >= 4  # ~1000 copies
    assert (found["lost"], found["corrupt"], found["duplicate"]) == (
        injected["dropped"], injected["corrupted"], injected["duplicated"])
    assert found["delivered"] + found["corrupt"] + found["lost"] == found["copies"] == \
        injected["accepted"]
    assert found["latency_s"]["max"] < 5
    failed = [c["name"] for c in summary["qos"]["checks"] if not c["pass"]]
    assert failed == ["delivery lost or corrupt"]


def test_maildir_tracking_finds_verifies_and_loses(tmp_path: Path) -> None:
    """A copy delivered, one corrupt, one removed before the tracker saw it (lost), one moved
    new/ -> cur/ after it was seen (not seen twice)."""

    t0 = time.time() - 60  # the files' times must be in the past
    records: list[Delivery] = []
    tracker = Tracker(MaildirFinder(str(tmp_path / "{domain}" / "{local}")), records.append,
                      via="maildir")
    new = tmp_path / "example.test" / "user0001" / "new"
    new.mkdir(parents=True)
    for n in range(3):
        mid = f"<m{n}@mailswarm.test>"
        tracker.learn(Sent(t0, mid, ["user0001@example.test"]))
        data = build_message(sender="a@x.test", recipients=["user0001@example.test"],
                             size=1024, message_id=mid, sent_at=t0)
        (new / f"{n}.M1P1.host").write_bytes(corrupt_copy(data) if n == 1 else data)
        os.utime(new / f"{n}.M1P1.host", (t0 + 2, t0 + 2))
    (new / "2.M1P1.host").unlink()  # removed before the tracker looked
    run_coro(tracker.poll_once())
    (new.parent / "cur").mkdir()
    (new / "0.M1P1.host").rename(new.parent / "cur" / "0.M1P1.host:2,S")
    run_coro(tracker.poll_once())
    assert tracker.expire() == 1
    got = sorted((r.id, r.outcome, r.latency_s) for r in records)
    assert got == [("<m0@mailswarm.test>", "delivered", 2.0),
                   ("<m1@mailswarm.test>", "corrupt", 2.0),
                   ("<m2@mailswarm.test>", "lost", None)]


def test_postfix_queue_counts_and_their_peaks(tmp_path: Path) -> None:
    for rel in ("active/A/1F2E", "active/B/3C4D", "deferred/0/7/77AB", "incoming/9"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"qf")
    counts = postfix_queue_counts(str(tmp_path))
    assert counts == {"incoming": 1, "active": 2, "deferred": 1, "maildrop": 0}
    run = RunRecords(header=Header(T0, profile={"delivery": {}}))
    run.queues = [Queue(T0, "postfix", counts), Queue(T0 + 1, "postfix", {"active": 5})]
    d = delivery_summary(run)
    assert d is not None and d["queue_peak"] == {"postfix": {
        "incoming": 1, "active": 5, "deferred": 1, "maildrop": 0, "total": 5}}


_TRACKED = """\
name: tracked
scenarios:
  - {name: mail, user: smtp, schedule: {kind: closed, users: 1}}
  - {name: reader, user: pop3, schedule: {kind: closed, users: 1}}
delivery:
  scenarios: [mail, nosuch, reader, 7]
  find: imap-idle
  watch: 0
embedded:
  drop_one_in: 5
  corrupt_one_in: 0
"""


def test_profile_delivery_mistakes_are_named_at_once(tmp_path: Path) -> None:
    """Every bad `delivery:` field in one message, exit 2, before any traffic: scenarios that
    do not exist or send no mail, a bad value, local-delivery faults without smtp_deliver, and
    (against the embedded target) smtp_deliver left implicit."""
    profile = tmp_path / "tracked.yaml"
    profile.write_text(_TRACKED)
    done = run_cli("run", str(profile), "--out", str(tmp_path / "out"), timeout=60)
    assert done.returncode == 2, done.stderr
    for expected in (
            "delivery.scenarios[1]: 'nosuch' is not a scenario of this profile "
            "(scenarios: mail, reader)",
            "delivery.scenarios[2]: 'reader' is a pop3 scenario; only smtp and submission",
            "delivery.scenarios[3]: Input should be a valid string",
            "delivery.watch: Input should be greater than or equal to 1",
            "embedded.drop_one_in: acts only with `smtp_deliver: true`"):
        assert expected in done.stderr, done.stderr
    assert "mailswarm run: 5 problems" in done.stderr and "nothing was sent" in done.stderr
    assert "corrupt_one_in" not in done.stderr and not (tmp_path / "out").exists()
    profile.write_text(_TRACKED.replace("[mail, nosuch, reader, 7]", "[mail]")
                       .replace("watch: 0", "watch: 5").replace("drop_one_in: 5", "users: 10"))
    done = run_cli("run", str(profile), "--out", str(tmp_path / "out"), timeout=60)
    assert done.returncode == 2 and "embedded.smtp_deliver: required when the profile tracks " \
        "delivery" in done.stderr, done.stderr
    assert "delivery.scenarios" not in done.stderr


def test_delivery_needs_a_mail_sending_scenario_and_its_endpoint(tmp_path: Path) -> None:
    data = {"name": "p", "scenarios": [{"name": "r", "user": "pop3",
                                        "schedule": {"kind": "closed", "users": 1}}],
            "delivery": {"find": "imap-idle"}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as bad:
        load_profile(path)
    assert bad.value.problems == [
        "delivery: no scenario sends mail (user: smtp or submission), so there is nothing to "
        "track"]
    profile = Profile.model_validate(data)
    assert profile.delivery is not None
    only_pop3 = Target(endpoints={"pop3": Endpoint(protocol="pop3", port=110)})
    assert check_against_target(profile, only_pop3)[-1] == \
        "delivery.endpoint: the target has no endpoint 'imap'"
    named = profile.model_copy(update={"delivery": profile.delivery.model_copy(
        update={"endpoint": "pop3"})})
    assert check_against_target(named, only_pop3)[-1] == \
        "delivery.endpoint: 'pop3' is pop3, find: imap-idle needs imap"


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed again)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_tracker_that_cannot_connect_is_said_not_taken_for_lost_mail(tmp_path: Path) -> None:
    """IMAP IDLE pointed at a closed loopback port: the run's hook writes `tracking` records
    (errors, the first cause), the summary's delivery section carries them, and the headline and
    console say the copies reported lost may not be lost."""
    port = _closed_port()
    target = Target(endpoints={"imap": Endpoint(protocol="imap", port=port)})
    settings = DeliverySettings(find="imap-idle", watch=2, deadline=0)
    writer = StreamWriter(tmp_path / RESULTS_FILE)
    writer.write(Header(time.time(), profile={"delivery": settings.model_dump(mode="json")}))
    bridge.start()
    hook = DeliveryHook(settings, target, writer)
    started = time.monotonic()
    hook.start(ready_within=1.0)
    assert time.monotonic() - started < 3
    for n in range(5):
        writer.write(Sent(time.time(), f"<m{n}@mailswarm.test>", ["user0001@example.test"]))
    gevent.sleep(1.2)  # a sample: the errors so far
    hook.close()  # the 5 copies are lost
    writer.write(End(time.time()))
    writer.close()
    run = load_records(tmp_path)
    assert run.trackings and all(t.via == "imap-idle" and t.looked == 0 for t in run.trackings)
    first = run.trackings[0]
    assert first.errors >= 1 and f"127.0.0.1:{port}" in (first.first_error or "")
    d = delivery_summary(run)
    assert d is not None and d["lost"] == 5
    tracking = d["tracking"]["imap-idle"]
    assert tracking["errors"] >= 2 and tracking["looked"] == 0  # it kept trying
    assert tracking["first_error"] == first.first_error
    warnings = headline({"end": "completed", "delivery": d}).warnings
    assert [w for w in warnings if w.startswith("delivery tracking failed: imap-idle never "
                                                f"looked ({tracking['errors']} errors, first: ")
            and f"127.0.0.1:{port}" in w
            and w.endswith("— 5 copies reported lost may not be lost")], warnings
    console = format_summary({"end": "completed", "delivery": d, "qos": {"checks": []}})
    assert f"tracker imap-idle: {tracking['errors']} errors, 0 looks ok; first: " in console


def test_a_tracker_that_never_failed_has_no_tracking_section() -> None:
    run = RunRecords(header=Header(T0, profile={"delivery": {}}))
    run.trackings = [Tracking(T0, "pop3", 0, 10)]
    summary = delivery_summary(run)
    assert summary is not None and summary["tracking"] is None


def test_pop3_poll_errors_are_counted_with_their_first_cause() -> None:
    port = _closed_port()
    tracker = Tracker(Pop3Finder("127.0.0.1", port, "pw", login=lambda box: box), [].append)
    tracker.learn(Sent(T0, "<a>", ["u@x.test"]))
    run_coro(tracker.poll_once())
    run_coro(tracker.poll_once())
    health = tracker.health(T0)
    assert (health.via, health.errors, health.looked) == ("pop3", 2, 0)
    assert f"127.0.0.1:{port}" in (health.first_error or "")
