"""A scenario's `tls_share`: which sessions use TLS (an even, seeded pick: an exact count), the
plain ones going to an implicit-TLS endpoint's `plain_port` or skipping STARTTLS, and the TLS
version and cipher recorded once per run (`tls` records, summary.json, console)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import yaml
from cli import run_cli

from loadtests.analysis.stream import collect
from loadtests.analysis.summary import tls_summary
from loadtests.clients.tls import picks_tls
from loadtests.profiles import Profile, check_against_target
from loadtests.report.headline import headline
from loadtests.stream import TlsSeen, tls_listener
from loadtests.targets import Target


@pytest.mark.parametrize("share", [0.0, 0.3, 0.5, 0.97, 1.0])
@pytest.mark.parametrize("phase", [0.0, 0.42, 0.999])
def test_the_pick_is_even_and_its_count_exact(share, phase):
    picks = [picks_tls(share, i, phase) for i in range(1000)]
    for n in (1, 7, 10, 333, 1000):
        expected = n if share >= 1 else math.floor(n * share + phase) - math.floor(phase)
        assert sum(picks[:n]) == expected


def test_an_implicit_endpoint_needs_a_plain_port_for_a_share():
    target = Target.model_validate({"endpoints": {
        "imaps": {"protocol": "imap", "port": 993, "tls": "implicit"},
        "imap-starttls": {"protocol": "imap", "port": 143, "tls": "starttls"}}})

    def profile(endpoint: str, share: float) -> Profile:
        return Profile.model_validate({"name": "p", "scenarios": [{
            "name": "s", "user": "imap-active", "endpoint": endpoint, "tls_share": share,
            "schedule": {"kind": "closed", "users": 1}}]})

    assert check_against_target(profile("imap-starttls", 0.3), target) == []
    assert check_against_target(profile("imaps", 1.0), target) == []
    assert "plain_port" in " ".join(check_against_target(profile("imaps", 0.3), target))
    submission = Target.model_validate({"endpoints": {
        "submission": {"protocol": "smtp", "port": 587, "tls": "starttls"}}})
    sub = Profile.model_validate({"name": "p", "scenarios": [{
        "name": "s", "user": "submission", "endpoint": "submission", "tls_share": 0.5,
        "schedule": {"kind": "closed", "users": 1}}]})
    assert "allow_plaintext_auth" in " ".join(check_against_target(sub, submission))
    allowed = submission.model_copy(update={"endpoints": {"submission": submission.endpoints[
        "submission"].model_copy(update={"allow_plaintext_auth": True})}})
    assert check_against_target(sub, allowed) == []


def test_tls_records_once_per_scenario_version_and_cipher():
    out: list[TlsSeen] = []
    listener = tls_listener(out.append)
    tls = {"scenario": "a", "tls_version": "TLSv1.3", "tls_cipher": "TLS_AES_256_GCM_SHA384"}
    for _ in range(3):
        listener(name="TLS", context=tls, start_time=1.0)
        listener(name="CONNECT", context={"scenario": "a"}, start_time=1.0)
    listener(name="TLS", context={**tls, "scenario": "b"}, start_time=2.0)
    listener(name="TLS", context=tls, exception=OSError("x"), start_time=3.0)
    assert [(r.sc, r.version) for r in out] == [("a", "TLSv1.3"), ("b", "TLSv1.3")]
    # two workers' records of the same pair: one line in the summary and the headline
    run = collect([*out, TlsSeen(5.0, "a", "TLSv1.3", "TLS_AES_256_GCM_SHA384", worker="w2")])
    summary = tls_summary(run)
    assert summary == [
        {"scenario": "a", "version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384"},
        {"scenario": "b", "version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384"}]
    figure = next(f for f in headline({"tls": summary}).figures if f.label == "TLS")
    assert figure.value == "TLSv1.3 TLS_AES_256_GCM_SHA384" and "a, b" in figure.note


def _expected_tls(sessions: int, share: float, seed: int, scenario: str) -> int:
    phase = random.Random(f"{seed}/{scenario}/tls").random()
    return math.floor(sessions * share + phase) - math.floor(phase)


def test_a_share_of_sessions_use_tls_against_the_embedded_target(tmp_path: Path):
    seed = 7
    scenarios = [
        {"name": "pop3s", "user": "pop3", "endpoint": "pop3s", "tls_share": 0.3,
         "schedule": {"kind": "arrival", "rate": 20, "max_in_flight": 20}},
        {"name": "imapstarttls", "user": "imap-active", "endpoint": "imap-starttls",
         "tls_share": 0.3, "imap": {"actions": 1},
         "schedule": {"kind": "arrival", "rate": 20, "max_in_flight": 20}},
    ]
    profile = tmp_path / "share.yaml"
    profile.write_text(yaml.safe_dump({"name": "share", "duration": "3s", "drain": "5s",
                                       "seed": seed, "scenarios": scenarios}))
    done = run_cli("run", str(profile), "--out", str(tmp_path / "out"), timeout=150)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    lines = [json.loads(line) for line in
             (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    reqs = [r for r in lines if r["kind"] == "req"]
    for name, starttls in (("pop3s", None), ("imapstarttls", "STARTTLS")):
        mine = [r for r in reqs if r["sc"] == name]
        sessions = sum(r["name"] == "session" for r in mine)
        tls = sum(r["name"] == "TLS" and r["ok"] for r in mine)
        assert sessions >= 40, (name, sessions)
        assert not [r for r in mine if not r["ok"]], name
        assert tls == _expected_tls(sessions, 0.3, seed, name), (name, sessions, tls)
        if starttls:  # the plain sessions skipped STARTTLS
            assert sum(r["name"] == starttls for r in mine) == tls
    # the version and cipher: once per scenario in the stream, in summary.json and the console
    seen = [r for r in lines if r["kind"] == "tls"]
    assert sorted(r["sc"] for r in seen) == ["imapstarttls", "pop3s"]
    assert all(r["version"].startswith("TLSv1.") and r["cipher"] for r in seen)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert {t["scenario"] for t in summary["tls"]} == {"imapstarttls", "pop3s"}
    assert f"TLS: {seen[0]['version']} {seen[0]['cipher']}" in done.stdout
