"""Delivery tracking against the real stack (issue 14): the seed's 50 msg/s SMTP case through
Postfix into the maildirs, every accepted copy found, verified and timed; copies the test
removes from their maildir before the tracker looks are reported lost; the hashed maildir layout
is the same path for Postfix (writes) and Dovecot (serves); Postfix runs with the delivery
concurrency options (S8) in effect.

One stack start-up (unbound, postfix, dovecot) for the module; ~65 s in all.
"""

from __future__ import annotations

import json
import os
import smtplib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cli import run_cli

from loadtests.clients.message import build_message, new_message_id
from loadtests.stack import DOMAIN, PASSWORD, PORTS, StackConfig, up, using

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(os.geteuid() != 0, reason="the real stack needs root (apt, daemons)"),
]

ROOT = Path(__file__).resolve().parent.parent
PROFILE = ROOT / "profiles/smtp-50mps-delivery.yaml"
VICTIMS = [f"user{n:04d}" for n in range(1, 21)]  # 2% of the 1,000 recipients


@pytest.fixture(scope="module")
def stack() -> Iterator[StackConfig]:
    with using(["unbound", "postfix", "dovecot"]) as cfg:
        yield cfg


def run(tmp_path: Path, profile: Path, duration: str) -> tuple[int, dict, str]:
    out = tmp_path / "out"
    result = run_cli("run", str(profile), "--target", "profiles/targets/stack.yaml",
                     "--duration", duration, "--out", str(out), "--quiet", timeout=300)
    assert (out / "summary.json").is_file(), result.stderr[-3000:]
    return result.returncode, json.loads((out / "summary.json").read_text()), result.stderr


def accepted(summary: dict) -> int:
    data = next(r for r in summary["requests"] if (r["type"], r["name"]) == ("SMTP", "DATA"))
    return int(data["count"] - data["failures"])


def failed_checks(summary: dict) -> list[str]:
    return [c["name"] for c in summary["qos"]["checks"] if not c["pass"]]


def test_every_accepted_message_is_delivered_and_verified(stack, tmp_path):
    code, s, err = run(tmp_path, PROFILE, "20s")
    d = s["delivery"]
    n = accepted(s)
    assert n >= 950, err[-2000:]  # 50/s for 20 s
    assert d["sent"] == n and d["copies"] == n
    assert (d["delivered"], d["lost"], d["corrupt"], d["duplicate"]) == (n, 0, 0, 0)
    lat = d["latency_s"]
    assert lat is not None and 0 <= lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"] < 60
    assert d["share_within"] == 100.0
    assert d["queue_peak"]["postfix"]["total"] >= 0
    assert not [c for c in failed_checks(s) if c.startswith("delivery")]
    assert code in (0, 3) and (code == 0) == (not failed_checks(s)), err[-2000:]


class Remover(threading.Thread):
    """Deletes every file that appears in the victims' maildirs (new/ and cur/), every 5 ms."""

    def __init__(self, cfg: StackConfig) -> None:
        super().__init__(daemon=True)
        self.dirs = [cfg.maildir(u) / sub for u in VICTIMS for sub in ("new", "cur")]
        self.removed: list[str] = []
        self.stop = threading.Event()

    def sweep(self) -> list[str]:
        gone = []
        for folder in self.dirs:
            for entry in os.scandir(folder) if folder.is_dir() else ():
                os.unlink(entry.path)
                gone.append(entry.name)
        return gone

    def run(self) -> None:
        while not self.stop.wait(0.005):
            self.removed += self.sweep()


def test_a_copy_removed_before_the_tracker_sees_it_is_lost(stack, tmp_path):
    # The tracker's rounds come 15 s apart (the first at the start, when nothing is due), so
    # during the 10 s of load it never looks: the remover always gets there first. Every other
    # copy is found in the round at ~15 s; the victims' are lost when the 8 s deadline after
    # the load's end passes. Latency is the file's time, so the long interval does not skew it.
    data = yaml.safe_load(PROFILE.read_text())
    data["delivery"].update(poll_interval="15s", deadline="8s")
    profile = tmp_path / "removed.yaml"
    profile.write_text(yaml.safe_dump(data))
    remover = Remover(stack)
    remover.sweep()  # older mail of earlier runs is not ours to count
    remover.start()
    try:
        code, s, err = run(tmp_path, profile, "10s")
    finally:
        remover.stop.set()
        remover.join()
    d = s["delivery"]
    n = accepted(s)
    assert n >= 450, err[-2000:]
    assert len(remover.removed) >= 1  # ~10 expected: 2% of ~500 recipients
    assert d["lost"] == len(remover.removed)
    assert d["delivered"] == n - len(remover.removed) and d["corrupt"] == 0
    assert "delivery lost or corrupt" in failed_checks(s) and code == 3


def test_hashed_layout_postfix_delivers_where_dovecot_serves(stack, tmp_path):
    import poplib

    cfg = StackConfig(layout="hashed")
    up(["postfix", "dovecot"], config=cfg)
    user = "user0123"
    assert cfg.maildir(user) == cfg.mail_dir / DOMAIN / "23" / "01" / user
    assert (cfg.mail_dir / DOMAIN / "00" / "10" / "user1000" / "new").is_dir()  # provisioned
    mid = new_message_id()
    rcpt = f"{user}@{DOMAIN}"
    with smtplib.SMTP("127.0.0.1", PORTS["smtp"], timeout=10) as smtp:
        smtp.sendmail("sender@mailswarm.test", [rcpt],
                      build_message(sender="sender@mailswarm.test", recipients=[rcpt],
                                    size=1024, message_id=mid))
    deadline = time.monotonic() + 20
    while not list((cfg.maildir(user) / "new").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list((cfg.maildir(user) / "new").iterdir()), "Postfix did not deliver in 20 s"
    pop = poplib.POP3("127.0.0.1", PORTS["pop3"], timeout=10)
    try:
        pop.user(user)
        pop.pass_(PASSWORD)
        bodies = [b"\n".join(pop.retr(i + 1)[1]) for i in range(pop.stat()[0])]
    finally:
        pop.quit()
    assert any(mid.encode() in body for body in bodies)


def test_postfix_runs_with_the_delivery_concurrency_options(stack):
    import subprocess

    from loadtests.stack.settings import DeliveryConcurrency

    cfg = StackConfig(delivery=DeliveryConcurrency(destination_limit=1, processes=2))
    states = up(["postfix"], config=cfg)
    assert states["postfix"].running and PORTS["smtp"] in states["postfix"].listening
    conf = str(cfg.run_dir / "postfix/conf")
    limit = subprocess.run(["postconf", "-c", conf, "-h", "virtual_destination_concurrency_limit"],
                           capture_output=True, text=True, check=True).stdout.strip()
    virtual = subprocess.run(["postconf", "-c", conf, "-M", "virtual/unix"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert limit == "1" and virtual[6] == "2", (limit, virtual)
