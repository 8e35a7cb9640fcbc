"""The fault matrix: every fault of issue 12's reliability suite against every protocol (SMTP,
POP3, IMAP, HTTP, DNS), each pair either a case here or written down as not applicable with
its reason (`MATRIX`; `test_the_matrix_is_a_full_cross_product` fails on a pair with
neither). Faults come from the embedded target's own options (`fault`, `pop3_fault`,
`imap_fault`, `http_fault`, `dns_fault`/`dns_delay`; `fault_ratio` drops a share of the
connections at accept, or of the DNS queries) or, for a refused connection, from a target
file whose endpoints name a port where nothing listens.

Each case: the run ends within duration + drain + 5 s, the failure is in the summary's
`errors` with its normalised cause (or, for truncation served over TCP, the step succeeds
every time), summary and report exist, and the exit status is README's: 3 (completed, failed
its QoS), or 0 for the one run whose only fault is worked around. One run serves a group of
cases, one per protocol (the embedded target has one fault setting per protocol); the SMTP
scenario sends to its endpoint, the DNS scenario first asks for the MX, so SMTP and DNS
faults share a run. SMTP's reply faults and the late and dropped sessions of a stalled target
are in test_run_faults.py."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cli import run_cli

DURATION, DRAIN = 2.0, 1.0
SLACK = 5.0  # the bound: a run ends within duration + drain + 5 s
START_UP = 10.0  # the CLI's own start (imports, the embedded target) and teardown, wall clock
CLOSED_PORT = 1  # nothing listens there (a privileged port, no service): connections refused

SCENARIOS = {
    "smtp": """
  - name: smtp
    user: smtp
    schedule: {kind: arrival, rate: 8, max_in_flight: 10, max_wait: 500ms}
    smtp: {connect_timeout: 1s, command_timeout: 1s, connect_to: endpoint, mx_lookup: false}
""",
    "dns": """
  - name: dns
    user: smtp
    schedule: {kind: arrival, rate: 8, max_in_flight: 10, max_wait: 500ms}
    smtp: {connect_timeout: 1s, command_timeout: 1s, connect_to: mx}
    dns: {timeout: 1s}
""",
    "pop3": """
  - name: pop3
    user: pop3
    schedule: {kind: arrival, rate: 8, max_in_flight: 10, max_wait: 500ms}
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
    schedule: {kind: arrival, rate: 8, max_in_flight: 10, max_wait: 500ms}
    imap: {connect_timeout: 1s, read_timeout: 1s}
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
REFUSED = "refused"
"""A case's `embedded` for a run against a target file whose every endpoint is CLOSED_PORT."""


@dataclass(frozen=True)
class Case:
    scenario: str  # a key of SCENARIOS
    embedded: str  # the profile's `embedded:` section (flow-style YAML), or REFUSED
    step: tuple[str, str]  # (request type, step name) the fault fails; the type: its protocol
    causes: tuple[tuple[str, ...], ...]  # the normalised causes it may give, each as words
    every: bool = True  # every request of the step fails (else: some, not all)
    fails: bool = True  # the step fails (else: it never fails, the fault is worked around)


RESET_SMTP = (("SMTPConnectError", "reset by peer"), ("SMTPConnectError", "connection lost"))
RESET_POP3 = (("Pop3ServerDisconnected", "reset"), ("Pop3ConnectError", "reset"))
RESET_IMAP = (("ImapDisconnected", "reset"), ("ImapConnectError", "connect call"))
RESET_HTTP = (("ConnectionResetError", "Errno 104"), ("HTTPConnectionClosed", "closed"))
DNS_SILENT = (("DnsTimeout", "no answer", "MX"),)
HTTP_TIMEOUT = (("timed out",),)

# a reset races with the connect, so it can fail the connect call itself or the read of the
# greeting after it
CASES: dict[str, Case] = {
    # nothing listens: the kernel refuses (TCP) or answers ICMP port unreachable (UDP)
    "smtp-refused": Case("smtp", REFUSED, ("SMTP", "CONNECT"),
                         (("SMTPConnectError", "refused"),)),
    "pop3-refused": Case("pop3", REFUSED, ("POP3", "CONNECT"), (("Pop3ConnectError", "refused"),)),
    "imap-refused": Case("imap-active", REFUSED, ("IMAP", "CONNECT"),
                         (("ImapConnectError", "refused"),)),
    "http-refused": Case("webuser", REFUSED, ("HTTP", "LOGIN_PAGE"),
                         (("ConnectionRefusedError", "refused"),)),
    "dns-refused-port": Case("dns", REFUSED, ("DNS", "MX"),
                             (("DnsTransportError", "errno", "refused"),)),
    "dns-refused": Case("dns", "{dns_fault: closed}", ("DNS", "MX"),
                        (("DnsTransportError", "errno", "refused"),)),
    # accepted, then a TCP reset
    "smtp-reset": Case("smtp", "{fault: reset}", ("SMTP", "CONNECT"), RESET_SMTP),
    "pop3-reset": Case("pop3", "{pop3_fault: reset}", ("POP3", "CONNECT"), RESET_POP3),
    "imap-reset": Case("imap-idle", "{imap_fault: reset}", ("IMAP", "CONNECT"), RESET_IMAP),
    "http-reset": Case("webuser", "{http_fault: reset}", ("HTTP", "LOGIN_PAGE"), RESET_HTTP),
    "dns-truncated-tcp-reset": Case("dns", "{dns_fault: truncate-tcp-reset}", ("DNS", "MX"),
                                    (("DnsTransportError", "TCP to", "reset by peer"),
                                     ("DnsTransportError", "TCP to", "ECONNRESET", "connect"))),
    # accepted, never a word
    "smtp-stall": Case("smtp", "{fault: stall}", ("SMTP", "CONNECT"),
                       (("SMTPConnectTimeoutError", "server ready message"),)),
    "pop3-stall": Case("pop3", "{pop3_fault: stall}", ("POP3", "CONNECT"),
                       (("Pop3ConnectTimeout", "no connection and greeting"),)),
    "imap-stall": Case("imap-idle", "{imap_fault: stall}", ("IMAP", "CONNECT"),
                       (("ImapConnectTimeout",),)),
    "http-stall": Case("webuser", "{http_fault: stall}", ("HTTP", "LOGIN_PAGE"), HTTP_TIMEOUT),
    # greeted, then stuck in a command
    "smtp-stall-mail": Case("smtp", "{fault: stall-mail}", ("SMTP", "MAIL"),
                            (("SMTPReadTimeoutError", "server response"),)),
    "pop3-stall-retr": Case("pop3", "{pop3_fault: stall-retr}", ("POP3", "RETR"),
                            (("Pop3ReadTimeout", "RETR"),)),
    "imap-stall-select": Case("imap-idle", "{imap_fault: stall-select}", ("IMAP", "SELECT"),
                              (("ImapReadTimeout", "SELECT"),)),
    "http-stall-login": Case("webuser", "{http_fault: stall-login}", ("HTTP", "LOGIN"),
                             HTTP_TIMEOUT),
    "dns-never-answers": Case("dns", "{dns_fault: drop}", ("DNS", "MX"), DNS_SILENT),
    "dns-truncated-tcp-stall": Case("dns", "{dns_fault: truncate-tcp-stall}", ("DNS", "MX"),
                                    (("DnsTimeout", "no TCP answer", "MX"),)),
    # bytes that are not the protocol
    "smtp-garbage": Case("smtp", "{fault: garbage}", ("SMTP", "CONNECT"),
                         (("SMTPResponseException", "malformed SMTP response line"),)),
    "pop3-garbage": Case("pop3", "{pop3_fault: garbage}", ("POP3", "CONNECT"),
                         (("Pop3ProtocolError", "not a POP3"),)),
    "imap-garbage": Case("imap-idle", "{imap_fault: garbage}", ("IMAP", "CONNECT"),
                         (("ImapProtocolError", "not an IMAP greeting"),)),
    "http-garbage": Case("webuser", "{http_fault: garbage}", ("HTTP", "LOGIN_PAGE"),
                         (("HTTPParseError", "Expected HTTP/"),)),
    "dns-garbage": Case("dns", "{dns_fault: garbage}", ("DNS", "MX"),
                        (("DnsProtocolError", "malformed answer"),)),
    # the greeting (HTTP: the reply) one byte at a time: alive, too slow for the deadline
    "smtp-trickle": Case("smtp", "{fault: trickle}", ("SMTP", "CONNECT"),
                         (("SMTPConnectTimeoutError", "server ready message"),)),
    "pop3-trickle": Case("pop3", "{pop3_fault: trickle}", ("POP3", "CONNECT"),
                         (("Pop3ConnectTimeout", "no connection and greeting"),)),
    "imap-trickle": Case("imap-idle", "{imap_fault: trickle}", ("IMAP", "CONNECT"),
                         (("ImapConnectTimeout", "greeting"),)),
    "http-trickle": Case("webuser", "{http_fault: trickle}", ("HTTP", "LOGIN_PAGE"),
                         HTTP_TIMEOUT),
    # closed in the middle of a transfer
    "smtp-close-after-354": Case("smtp", "{fault: close-after-354}", ("SMTP", "DATA"),
                                 (("SMTPServerDisconnected", "Unexpected EOF"),
                                  ("SMTPServerDisconnected", "Connection lost"))),
    "pop3-close-mid-retr": Case("pop3", "{pop3_fault: close-mid-retr}", ("POP3", "RETR"),
                                (("Pop3ServerDisconnected", "connection closed",
                                  "multi-line reply"),)),
    "imap-close-mid-fetch": Case("imap-active", "{imap_fault: close-mid-fetch}",
                                 ("IMAP", "FETCH"),
                                 (("ImapDisconnected", "connection closed by the server"),)),
    "http-close-mid-body": Case("webuser", "{http_fault: close-mid-body}", ("HTTP", "INBOX"),
                                (("HTTPParseError", "incomplete response"),)),
    "dns-truncated-tcp-cut": Case("dns", "{dns_fault: truncate-tcp-cut}", ("DNS", "MX"),
                                  (("DnsTransportError", "closed the TCP connection mid-answer"),
                                   )),
    # a share of the connections (DNS: of the queries) dropped, the others served
    "smtp-drop-half": Case("smtp", "{fault: reset, fault_ratio: 0.5}", ("SMTP", "CONNECT"),
                           RESET_SMTP, every=False),
    "pop3-drop-half": Case("pop3", "{pop3_fault: reset, fault_ratio: 0.5}", ("POP3", "CONNECT"),
                           RESET_POP3, every=False),
    "imap-drop-half": Case("imap-active", "{imap_fault: reset, fault_ratio: 0.5}",
                           ("IMAP", "CONNECT"), RESET_IMAP, every=False),
    "http-drop-half": Case("webuser", "{http_fault: reset, fault_ratio: 0.5}",
                           ("HTTP", "LOGIN_PAGE"), RESET_HTTP, every=False),
    "dns-drop-half": Case("dns", "{dns_fault: drop, fault_ratio: 0.5}", ("DNS", "MX"),
                          DNS_SILENT, every=False),
    # answers after 2 s, the client waits 1 s
    "dns-slow": Case("dns", "{dns_delay: 2s}", ("DNS", "MX"), DNS_SILENT),
    # UDP answers carry TC and no records: every MX is answered over TCP, or fails with TCP
    "dns-truncated-tcp": Case("dns", "{dns_fault: truncate}", ("DNS", "MX"), (), fails=False),
    "dns-truncated-no-tcp": Case("dns", "{dns_fault: truncate-no-tcp}", ("DNS", "MX"),
                                 (("DnsTransportError", "TCP to", "connect call failed"),)),
}

PROTOCOLS = ("SMTP", "POP3", "IMAP", "HTTP", "DNS")
FAULTS = ("refused", "reset", "stall-before-greeting", "stall-mid-command", "garbage-greeting",
          "trickled-greeting", "close-mid-transfer", "drop-share", "slow-dns", "dns-truncation")
NO_GREETING_DNS = ("DNS has no greeting: the client asks first, and the answer is one datagram "
                   "(or one length-prefixed TCP message)")
ONLY_DNS = "a fault of the DNS server; the SMTP scenario's MX lookup is the DNS row"
MATRIX: dict[tuple[str, str], tuple[str, ...] | str] = {
    ("SMTP", "refused"): ("smtp-refused",),
    ("POP3", "refused"): ("pop3-refused",),
    ("IMAP", "refused"): ("imap-refused",),
    ("HTTP", "refused"): ("http-refused",),
    ("DNS", "refused"): ("dns-refused-port", "dns-refused"),
    ("SMTP", "reset"): ("smtp-reset",),
    ("POP3", "reset"): ("pop3-reset",),
    ("IMAP", "reset"): ("imap-reset",),
    ("HTTP", "reset"): ("http-reset",),
    # UDP has no connection to reset: the TCP connection a truncated answer makes the client open
    ("DNS", "reset"): ("dns-truncated-tcp-reset",),
    ("SMTP", "stall-before-greeting"): ("smtp-stall",),
    ("POP3", "stall-before-greeting"): ("pop3-stall",),
    ("IMAP", "stall-before-greeting"): ("imap-stall",),
    # HTTP has no greeting either, but a server silent after accept is the same to a client
    ("HTTP", "stall-before-greeting"): ("http-stall",),
    ("DNS", "stall-before-greeting"): NO_GREETING_DNS + ": a silent server is stall-mid-command",
    ("SMTP", "stall-mid-command"): ("smtp-stall-mail",),
    ("POP3", "stall-mid-command"): ("pop3-stall-retr",),
    ("IMAP", "stall-mid-command"): ("imap-stall-select",),
    ("HTTP", "stall-mid-command"): ("http-stall-login",),
    ("DNS", "stall-mid-command"): ("dns-never-answers", "dns-truncated-tcp-stall"),
    ("SMTP", "garbage-greeting"): ("smtp-garbage",),
    ("POP3", "garbage-greeting"): ("pop3-garbage",),
    ("IMAP", "garbage-greeting"): ("imap-garbage",),
    ("HTTP", "garbage-greeting"): ("http-garbage",),  # the reply to the first request
    ("DNS", "garbage-greeting"): ("dns-garbage",),  # the answer
    ("SMTP", "trickled-greeting"): ("smtp-trickle",),
    ("POP3", "trickled-greeting"): ("pop3-trickle",),
    ("IMAP", "trickled-greeting"): ("imap-trickle",),
    ("HTTP", "trickled-greeting"): ("http-trickle",),  # the reply to the first request
    ("DNS", "trickled-greeting"): NO_GREETING_DNS + ": a late answer is slow-dns",
    ("SMTP", "close-mid-transfer"): ("smtp-close-after-354",),
    ("POP3", "close-mid-transfer"): ("pop3-close-mid-retr",),
    ("IMAP", "close-mid-transfer"): ("imap-close-mid-fetch",),
    ("HTTP", "close-mid-transfer"): ("http-close-mid-body",),
    ("DNS", "close-mid-transfer"): ("dns-truncated-tcp-cut",),
    ("SMTP", "drop-share"): ("smtp-drop-half",),
    ("POP3", "drop-share"): ("pop3-drop-half",),
    ("IMAP", "drop-share"): ("imap-drop-half",),
    ("HTTP", "drop-share"): ("http-drop-half",),
    ("DNS", "drop-share"): ("dns-drop-half",),  # of the queries: UDP has no connections
    ("SMTP", "slow-dns"): ONLY_DNS,
    ("POP3", "slow-dns"): ONLY_DNS,
    ("IMAP", "slow-dns"): ONLY_DNS,
    ("HTTP", "slow-dns"): ONLY_DNS,
    ("DNS", "slow-dns"): ("dns-slow",),
    ("SMTP", "dns-truncation"): ONLY_DNS,
    ("POP3", "dns-truncation"): ONLY_DNS,
    ("IMAP", "dns-truncation"): ONLY_DNS,
    ("HTTP", "dns-truncation"): ONLY_DNS,
    ("DNS", "dns-truncation"): ("dns-truncated-tcp", "dns-truncated-no-tcp"),
}
# one run each; a group has one case per protocol and one `fault_ratio`
GROUPS: tuple[tuple[str, ...], ...] = (
    ("smtp-refused", "pop3-refused", "imap-refused", "http-refused", "dns-refused-port"),
    ("smtp-reset", "pop3-reset", "imap-reset", "http-reset", "dns-truncated-tcp-reset"),
    ("smtp-stall", "pop3-stall", "imap-stall", "http-stall", "dns-never-answers"),
    ("smtp-stall-mail", "pop3-stall-retr", "imap-stall-select", "http-stall-login",
     "dns-truncated-tcp-stall"),
    ("smtp-garbage", "pop3-garbage", "imap-garbage", "http-garbage", "dns-garbage"),
    ("smtp-trickle", "pop3-trickle", "imap-trickle", "http-trickle", "dns-slow"),
    ("smtp-close-after-354", "pop3-close-mid-retr", "imap-close-mid-fetch",
     "http-close-mid-body", "dns-truncated-tcp-cut"),
    ("smtp-drop-half", "pop3-drop-half", "imap-drop-half", "http-drop-half", "dns-drop-half"),
    ("dns-refused",),
    ("dns-truncated-tcp",),
    ("dns-truncated-no-tcp",),
)
KNOWN_BUGS: dict[str, str] = {}  # case -> why it fails today (an xfail, strict)


def test_the_matrix_is_a_full_cross_product() -> None:
    """Every (protocol, fault) pair has cases of that protocol, or a reason why none applies;
    every case is in the matrix once."""
    assert set(MATRIX) <= {(p, f) for p in PROTOCOLS for f in FAULTS}, "unknown pairs"
    missing = [(p, f) for p in PROTOCOLS for f in FAULTS if not MATRIX.get((p, f))]
    assert not missing, f"pairs with neither a case nor a reason: {missing}"
    placed: list[str] = []
    for (protocol, fault), entry in MATRIX.items():
        if isinstance(entry, str):  # not applicable: the reason is a sentence
            assert len(entry.split()) >= 5, (protocol, fault, entry)
            continue
        for name in entry:
            assert name in CASES, (protocol, fault, name)
            assert CASES[name].step[0] == protocol, (protocol, fault, name)
        placed += entry
    assert sorted(placed) == sorted(CASES), "a case is in no cell, or in two"


def test_every_case_is_in_one_group() -> None:
    grouped = [name for group in GROUPS for name in group]
    assert sorted(grouped) == sorted(CASES)
    for group in GROUPS:
        protocols = [CASES[name].step[0] for name in group]
        assert len(set(protocols)) == len(protocols), group
        # a refused run has no embedded target: its cases are all refused ones
        assert len({CASES[name].embedded == REFUSED for name in group}) == 1, group
        ratios = {_embedded(CASES[name]).get("fault_ratio", 1.0) for name in group}
        assert len(ratios) == 1, group


def _embedded(case: Case) -> dict[str, object]:
    return {} if case.embedded == REFUSED else yaml.safe_load(case.embedded)


def _refused_target(path: Path) -> Path:
    """A target file whose every endpoint is CLOSED_PORT on loopback."""
    endpoints = {p: {"port": CLOSED_PORT, **({} if p == "dns" else {"allow_plaintext_auth": True})}
                 for p in ("smtp", "pop3", "imap", "http", "dns")}
    path.write_text(json.dumps({"name": "refused", "domain": "example.test",
                                "password": "matrix-test", "endpoints": endpoints}))
    return path


def _stream_span(stream: Path) -> float:
    """Seconds from the stream's first record to its end record."""
    lines = stream.read_text().splitlines()
    first, last = json.loads(lines[0]), json.loads(lines[-1])
    assert last["kind"] == "end"
    return float(last["ts"]) - float(first["ts"])


def _last_requests(stream: Path, count: int = 5) -> list[str]:
    """The stream's last request records (what ran late), for a failure's message."""
    return [line for line in stream.read_text().splitlines() if '"kind":"req"' in line][-count:]


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
    errors = [e for e in summary["errors"] if (e["type"], e["name"]) == c.step]
    if not c.fails:  # the fault is worked around: the step ran and never failed
        assert step["count"] > 0 and step["failures"] == 0, (name, step)
        assert not errors, (name, errors)
        return
    if c.every:  # every request of the step hit the fault
        assert step["failures"] == step["count"] > 0, (name, step, errors)
    else:  # a share of the connections was dropped, the others served
        assert 0 < step["failures"] < step["count"], (name, step, errors)
    # one group per cause, however the timings, addresses and ports of the texts differ
    assert len(errors) <= len(c.causes), (name, errors)
    for error in errors:
        assert not re.search(r"\b127\b", error["cause"]), ("an address in the cause", error)
        # the error itself, not a library's wrapper of it ("RetriesExceeded: URL ...")
        assert "RetriesExceeded" not in error["cause"], error
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
        embedded.update(_embedded(CASES[name]))
    scenarios = "".join(dict.fromkeys(SCENARIOS[CASES[name].scenario] for name in group))
    profile = tmp_path / "profile.yaml"
    profile.write_text(PROFILE.format(duration=DURATION, drain=DRAIN, scenario=scenarios,
                                      embedded=json.dumps(embedded)))  # JSON is YAML
    out = tmp_path / "out"
    target = (["--target", str(_refused_target(tmp_path / "target.yaml"))]
              if CASES[group[0]].embedded == REFUSED else [])
    t0 = time.monotonic()
    result = run_cli("run", str(profile), *target, "--out", str(out), "--quiet", timeout=60)
    elapsed = time.monotonic() - t0
    fails = any(CASES[name].fails for name in group)
    # README's exit status: 3 completed and failed its QoS, 0 completed and passed it
    assert result.returncode == (3 if fails else 0), result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    span = _stream_span(out / "results.jsonl")
    assert span <= DURATION + DRAIN + SLACK, (span, _last_requests(out / "results.jsonl"))
    assert elapsed <= DURATION + DRAIN + SLACK + START_UP
    assert (out / "report.html").stat().st_size > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["end"] == "completed"
    assert summary["qos"]["pass"] is not fails
    for name in group:
        _check(name, summary)
        if not CASES[name].fails:  # the stream itself: successful steps, none failed
            outcomes = _step_outcomes(out / "results.jsonl", CASES[name].step)
            assert outcomes and all(outcomes), (name, outcomes.count(False), len(outcomes))
