"""The fault matrix: POP3, IMAP, SMTP, DNS and HTTP against the embedded target's own faults
(`pop3_fault`, `imap_fault`, `fault`, `dns_fault`/`dns_delay`, `http_fault`; `fault_ratio`
drops a share of the connections at accept): a connection reset after accept, a server that
never greets or answers, a garbage greeting or answer, a greeting trickled one byte at a time
(alive, but too slow for the client's deadline), a connection closed after DATA's 354 or in the
middle of a RETR or FETCH literal, slow, silent and garbage DNS, a DNS port where nothing
listens, DNS answers truncated on UDP (TC) so that the client must ask again over TCP, and the
same with TCP refused. Each case: the run ends within duration + drain + 5 s, the failure is in
the summary's `errors` with its normalised cause (or, for truncation served over TCP, the step
succeeds every time), summary and report exist, exit status 3 (the run completed and failed its
QoS). To keep the file short, one run serves a group of cases, at most one per protocol (the
embedded target has one fault setting per protocol). SMTP's reply faults, stalls and
unreachable targets are in test_run_faults.py."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cli import run_cli

DURATION, DRAIN = 2.0, 1.0
SLACK = 5.0  # the bound: a run ends within duration + drain + 5 s
START_UP = 10.0  # the CLI's own start (imports, the embedded target) and teardown, wall clock

SCENARIOS = {
    "pop3": """
  - name: pop3
    user: pop3
    schedule: {kind: arrival, rate: 5, max_in_flight: 10, max_wait: 500ms}
    pop3: {connect_timeout: 1s, read_timeout: 1s}
""",
    "imap-idle": """
  - name: imap
    user: imap-idle
    schedule: {kind: closed, users: 5, spawn_rate: 50}
    imap: {hold: 1h, connect_timeout: 1s, read_timeout: 1s, reconnect: {first: 200ms, max: 1s}}
""",
    "imap-active": """
  - name: imap-active
    user: imap-active
    schedule: {kind: arrival, rate: 5, max_in_flight: 10, max_wait: 500ms}
    imap: {connect_timeout: 1s, read_timeout: 1s}
""",
    "smtp": """
  - name: smtp
    user: smtp
    schedule: {kind: arrival, rate: 5, max_in_flight: 10, max_wait: 500ms}
    smtp: {connect_timeout: 1s, command_timeout: 1s}
    dns: {timeout: 1s}
""",
    "webuser": """
  - name: web
    user: webuser
    schedule: {kind: closed, users: 5, spawn_rate: 50}
    web: {request_timeout: 1s, session_length: 2s, poll_interval: 1s}
""",
}
PROFILE = """
name: fault-matrix
duration: {duration}s
drain: {drain}s
scenarios:{scenario}
embedded: {embedded}
"""


@dataclass(frozen=True)
class Case:
    scenario: str  # a key of SCENARIOS
    embedded: str  # the profile's `embedded:` section (flow-style YAML)
    step: tuple[str, str]  # (request type, step name) the fault fails
    causes: tuple[tuple[str, ...], ...]  # the normalised causes it may give, each as words
    every: bool = True  # every request of the step fails (else: some, not all)
    fails: bool = True  # the step fails (else: it never fails, the fault is worked around)


RESET_POP3 = (("Pop3ServerDisconnected", "reset"), ("Pop3ConnectError", "reset"))
DNS_SILENT = (("DnsTimeout", "no answer", "MX"),)
DNS_REFUSED = ("DnsTransportError", "errno", "refused")
HTTP_RESET = (("ConnectionResetError", "Errno 104"), ("HTTPConnectionClosed", "closed"))

# a reset races with the connect, so it can fail the connect call itself or the read of the
# greeting after it
CASES: dict[str, Case] = {
    "pop3-reset": Case("pop3", "{pop3_fault: reset}", ("POP3", "CONNECT"), RESET_POP3),
    "pop3-stall": Case("pop3", "{pop3_fault: stall}", ("POP3", "CONNECT"),
                       (("Pop3ConnectTimeout", "no connection and greeting"),)),
    "pop3-garbage": Case("pop3", "{pop3_fault: garbage}", ("POP3", "CONNECT"),
                         (("Pop3ProtocolError", "not a POP3"),)),
    "pop3-trickle": Case("pop3", "{pop3_fault: trickle}", ("POP3", "CONNECT"),
                         (("Pop3ConnectTimeout", "no connection and greeting"),)),
    "pop3-close-mid-retr": Case("pop3", "{pop3_fault: close-mid-retr}", ("POP3", "RETR"),
                                (("Pop3ServerDisconnected", "connection closed",
                                  "multi-line reply"),)),
    "pop3-drop-half": Case("pop3", "{pop3_fault: reset, fault_ratio: 0.5}", ("POP3", "CONNECT"),
                           RESET_POP3, every=False),
    "imap-reset": Case("imap-idle", "{imap_fault: reset}", ("IMAP", "CONNECT"),
                       (("ImapDisconnected", "reset"), ("ImapConnectError", "connect call"))),
    "imap-stall": Case("imap-idle", "{imap_fault: stall}", ("IMAP", "CONNECT"),
                       (("ImapConnectTimeout",),)),
    "imap-garbage": Case("imap-idle", "{imap_fault: garbage}", ("IMAP", "CONNECT"),
                         (("ImapProtocolError", "not an IMAP greeting"),)),
    "imap-trickle": Case("imap-idle", "{imap_fault: trickle}", ("IMAP", "CONNECT"),
                         (("ImapConnectTimeout", "greeting"),)),
    "imap-close-mid-fetch": Case("imap-active", "{imap_fault: close-mid-fetch}",
                                 ("IMAP", "FETCH"),
                                 (("ImapDisconnected", "connection closed by the server"),)),
    "smtp-trickle": Case("smtp", "{fault: trickle}", ("SMTP", "CONNECT"),
                         (("SMTPConnectTimeoutError", "server ready message"),)),
    "smtp-close-after-354": Case("smtp", "{fault: close-after-354}", ("SMTP", "DATA"),
                                 (("SMTPServerDisconnected", "Unexpected EOF"),
                                  ("SMTPServerDisconnected", "Connection lost"))),
    "dns-never-answers": Case("smtp", "{dns_fault: drop}", ("DNS", "MX"), DNS_SILENT),
    "dns-slow": Case("smtp", "{dns_delay: 2s}", ("DNS", "MX"), DNS_SILENT),  # timeout 1 s
    "dns-garbage": Case("smtp", "{dns_fault: garbage}", ("DNS", "MX"),
                        (("DnsProtocolError", "malformed answer"),)),
    # nothing listens on the DNS port: ICMP port unreachable on the connected UDP socket
    "dns-refused": Case("smtp", "{dns_fault: closed}", ("DNS", "MX"), (DNS_REFUSED,)),
    # UDP answers carry TC and no records: every MX is answered over TCP, or fails with TCP
    "dns-truncated-tcp": Case("smtp", "{dns_fault: truncate}", ("DNS", "MX"), (), fails=False),
    "dns-truncated-no-tcp": Case("smtp", "{dns_fault: truncate-no-tcp}", ("DNS", "MX"),
                                 (("DnsTransportError", "TCP to", "connect call failed"),)),
    "http-reset": Case("webuser", "{http_fault: reset}", ("HTTP", "LOGIN_PAGE"), HTTP_RESET),
    "http-stall": Case("webuser", "{http_fault: stall}", ("HTTP", "LOGIN_PAGE"),
                       (("timed out",),)),
    "http-garbage": Case("webuser", "{http_fault: garbage}", ("HTTP", "LOGIN_PAGE"),
                         (("HTTPParseError", "Expected HTTP/"),)),
    "http-trickle": Case("webuser", "{http_fault: trickle}", ("HTTP", "LOGIN_PAGE"),
                         (("timed out",),)),
    "http-drop-half": Case("webuser", "{http_fault: reset, fault_ratio: 0.5}",
                           ("HTTP", "LOGIN_PAGE"), HTTP_RESET, every=False),
}
# one run each; a group has one case per protocol and agrees on `fault_ratio`
GROUPS: tuple[tuple[str, ...], ...] = (
    ("pop3-reset", "imap-reset", "smtp-trickle", "http-reset"),
    ("pop3-stall", "imap-stall", "smtp-close-after-354", "http-stall"),
    ("pop3-garbage", "imap-garbage", "dns-never-answers", "http-garbage"),
    ("pop3-trickle", "imap-trickle", "dns-slow", "http-trickle"),
    ("pop3-close-mid-retr", "imap-close-mid-fetch", "dns-garbage"),
    ("pop3-drop-half", "http-drop-half", "dns-truncated-tcp"),
    ("dns-refused",),
    ("dns-truncated-no-tcp",),
)
KNOWN_BUGS: dict[str, str] = {}  # case -> why it fails today (an xfail, strict)


def _stream_span(stream: Path) -> float:
    """Seconds from the stream's first record to its end record."""
    lines = stream.read_text().splitlines()
    first, last = json.loads(lines[0]), json.loads(lines[-1])
    assert last["kind"] == "end"
    return float(last["ts"]) - float(first["ts"])


def _last_requests(stream: Path, count: int = 5) -> list[str]:
    """The stream's last request records (what ran late), for a failure's message."""
    return [line for line in stream.read_text().splitlines() if '"kind":"req"' in line][-count:]


def test_every_case_is_in_one_group() -> None:
    grouped = [name for group in GROUPS for name in group]
    assert sorted(grouped) == sorted(CASES)
    for group in GROUPS:
        protocols = [CASES[name].step[0] for name in group]
        protocols = ["SMTP" if p == "DNS" else p for p in protocols]  # DNS rides on SMTP
        assert len(set(protocols)) == len(protocols), group
        # `fault_ratio` does not apply to DNS faults: a DNS case may join any group
        ratios = {yaml.safe_load(CASES[name].embedded).get("fault_ratio") for name in group
                  if CASES[name].step[0] != "DNS"}
        assert len(ratios) <= 1, group


def _step_outcomes(stream: Path, step: tuple[str, str]) -> list[bool]:
    """The `ok` of every request record of `step` in the stream, in order."""
    records = (json.loads(line) for line in stream.read_text().splitlines()
               if '"kind":"req"' in line)
    return [r["ok"] for r in records if (r["type"], r["name"]) == step]


def _check(name: str, summary: dict) -> None:
    """The case's step failed as the fault makes it fail, with one of its causes."""
    c = CASES[name]
    step = next((r for r in summary["requests"] if (r["type"], r["name"]) == c.step), None)
    assert step is not None, (name, summary["requests"])
    if not c.fails:  # the fault is worked around: the step ran and never failed
        assert step["count"] > 0 and step["failures"] == 0, (name, step)
        assert not [e for e in summary["errors"] if (e["type"], e["name"]) == c.step], name
        return
    if c.every:  # every request of the step hit the fault
        assert step["failures"] == step["count"] > 0, (name, step)
    else:  # a share of the connections was dropped, the others served
        assert 0 < step["failures"] < step["count"], (name, step)
    errors = [e for e in summary["errors"] if (e["type"], e["name"]) == c.step]
    # one group per cause, however the timings, addresses and ports of the texts differ
    assert len(errors) <= len(c.causes), (name, errors)
    for error in errors:
        cause = error["cause"].lower()
        assert any(all(w.lower() in cause for w in words) for words in c.causes), \
            (name, error["cause"])
    assert sum(e["count"] for e in errors) == step["failures"], (name, errors)


@pytest.mark.parametrize("group", [
    pytest.param(group, id="+".join(group), marks=[
        pytest.mark.xfail(reason=KNOWN_BUGS[name], strict=True)
        for name in group if name in KNOWN_BUGS]) for group in GROUPS])
def test_faults_are_recorded_and_the_run_ends_on_time(tmp_path: Path,
                                                      group: tuple[str, ...]) -> None:
    embedded: dict[str, object] = {}
    for name in group:
        embedded.update(yaml.safe_load(CASES[name].embedded))
    scenarios = "".join(dict.fromkeys(SCENARIOS[CASES[name].scenario] for name in group))
    profile = tmp_path / "profile.yaml"
    profile.write_text(PROFILE.format(duration=DURATION, drain=DRAIN, scenario=scenarios,
                                      embedded=json.dumps(embedded)))  # JSON is YAML
    out = tmp_path / "out"
    t0 = time.monotonic()
    result = run_cli("run", str(profile), "--out", str(out), "--quiet", timeout=60)
    elapsed = time.monotonic() - t0
    assert result.returncode == 3, result.stderr[-2000:]  # completed, QoS failed
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    span = _stream_span(out / "results.jsonl")
    assert span <= DURATION + DRAIN + SLACK, (span, _last_requests(out / "results.jsonl"))
    assert elapsed <= DURATION + DRAIN + SLACK + START_UP
    assert (out / "report.html").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["end"] == "completed"
    assert summary["qos"]["pass"] is False
    for name in group:
        _check(name, summary)
        if not CASES[name].fails:  # the stream itself: successful steps, none failed
            outcomes = _step_outcomes(out / "results.jsonl", CASES[name].step)
            assert outcomes and all(outcomes), (name, outcomes.count(False), len(outcomes))
