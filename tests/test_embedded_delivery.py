"""The embedded target's local delivery: accepted mail reaches the mailboxes POP3 serves, after
the delay, with exactly the injected drops, corruptions and duplicates, counted by itself."""

from __future__ import annotations

import asyncio
import json
import poplib
import smtplib
import statistics
import time
from pathlib import Path

import yaml
from aio import run_coro
from cli import ROOT, run_cli

from loadtests.analysis.stream import load_records
from loadtests.clients.message import build_message, new_message_id, verify
from loadtests.delivery.embedded_queue import embedded_queue_counts
from loadtests.embedded.delivery import LocalDelivery, corrupt_copy
from loadtests.embedded.mailstore import MailStore


def _msg(rcpt: str = "user0001@example.test") -> bytes:
    return build_message(sender="a@mailswarm.test", recipients=[rcpt], size=1024,
                         message_id=new_message_id())


def test_faults_are_exact_and_counted() -> None:
    store = MailStore(users=10, messages_per_user=0)
    delivery = LocalDelivery(store, drop_one_in=10, corrupt_one_in=20, duplicate_one_in=25)
    for i in range(200):
        delivery.accept([f"user{i % 10 + 1:04d}@example.test"], _msg())
    c = delivery.counters
    assert (c.accepted, c.dropped, c.corrupted, c.duplicated) == (200, 20, 9, 7)
    copies = [m.data for n in range(1, 11) for m in store.get(f"user{n:04d}").snapshot()]
    assert len(copies) == c.delivered == 180 + 7
    verdicts = [verify(data) for data in copies]
    corrupt = [v for v in verdicts if not v.ok]
    assert all(v.corrupt == "body" for v in corrupt)
    assert len({v.message_id for v in corrupt}) == 9
    assert len(verdicts) - len({v.message_id for v in verdicts}) == 7  # duplicated ids


def test_delivery_waits_for_the_delay() -> None:
    store = MailStore(users=1, messages_per_user=0)

    async def main() -> tuple[int, int, int]:
        delivery = LocalDelivery(store, delay=0.2)
        delivery.accept(["user0001"], _msg())
        before = len(store.get("user0001").messages), delivery.counters.queue
        await asyncio.sleep(0.3)
        return *before, len(store.get("user0001").messages)

    assert run_coro(main()) == (0, 1, 1)


def test_corrupt_copy_changes_one_byte() -> None:
    data = _msg()
    bad = corrupt_copy(data)
    assert len(bad) == len(data) and sum(a != b for a, b in zip(data, bad, strict=True)) == 1
    assert corrupt_copy(b"Subject: x\r\n\r\n") != b"Subject: x\r\n\r\n"


def test_the_target_delivers_into_what_pop3_serves(start_target) -> None:
    target = start_target(smtp_deliver=True, delivery_delay=0.1, messages_per_user=0,
                          drop_one_in=2)
    with smtplib.SMTP("127.0.0.1", target.ready["smtp_port"], local_hostname="t.test",
                      timeout=5) as smtp:
        for _ in range(4):
            smtp.sendmail("a@mailswarm.test", ["user0007@example.test"],
                          _msg("user0007@example.test"))
    time.sleep(1.3)  # the delay, and the stats written every second
    pop = poplib.POP3("127.0.0.1", target.ready["pop3_port"], timeout=5)
    pop.user("user0007")
    pop.pass_("mailswarm-test")
    count, _ = pop.stat()
    retrieved = b"\r\n".join(pop.retr(1)[1]) + b"\r\n"
    pop.quit()
    assert count == 2 and verify(retrieved).ok
    counters = target.stats().servers["delivery"]
    assert counters["dropped"] == 2 and counters["delivered"] == 2 and counters["queue"] == 0


def test_a_default_run_samples_the_embedded_queue(tmp_path: Path) -> None:
    """50 msg/s delivered after 2 s: the target holds ~100 copies while the load runs; the run
    samples that counter each second into `queue` records (source `embedded`), the summary has
    its peak and the report's Delivery chart its line."""
    data = yaml.safe_load((ROOT / "profiles" / "smtp-delivery.yaml").read_text())
    data.update(duration="8s", drain="3s")
    data["embedded"].update(delivery_delay="2s", drop_one_in=0, corrupt_one_in=0)
    data["delivery"]["deadline"] = "10s"
    profile = tmp_path / "queue.yaml"
    profile.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    done = run_cli("run", str(profile), "--out", str(out), "--quiet", timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    run = load_records(out)
    starts = [p.ts for p in run.phases if p.name == "load_start"]
    assert starts and run.end is not None and run.end.load_end is not None
    steady = [q.counts["waiting"] for q in run.queues if q.source == "embedded"
              and starts[0] + 3 <= q.ts <= run.end.load_end]
    assert len(steady) >= 4, run.queues
    assert 80 <= statistics.median(steady) <= 120, steady
    after = [q.counts["waiting"] for q in run.queues if q.source == "embedded"
             and q.ts > run.end.load_end + 1.5]
    assert after and after[-1] < 50, after  # no arrivals since: the queue drains
    summary = json.loads((out / "summary.json").read_text())
    assert 90 <= summary["delivery"]["queue_peak"]["embedded"]["waiting"] <= 130
    assert summary["delivery"]["lost"] == 0 and summary["delivery"]["tracking"] is None
    assert "embedded queue" in (out / "report.html").read_text()


def test_the_embedded_queue_counter_is_read_from_the_stats_file(tmp_path: Path) -> None:
    stats = tmp_path / "stats.json"
    assert embedded_queue_counts(stats) is None  # not written yet
    stats.write_text(json.dumps({"servers": {"delivery": {"queue": 7, "accepted": 9}}}))
    assert embedded_queue_counts(stats) == {"waiting": 7}
    stats.write_text(json.dumps({"servers": {"pop3": {}}}))  # a target that does not deliver
    assert embedded_queue_counts(stats) is None
    stats.write_text('{"servers": {"delivery": {"queue": 7}}}}')  # caught half-rewritten
    assert embedded_queue_counts(stats) is None
