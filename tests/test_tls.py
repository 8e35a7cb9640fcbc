"""TLS and authentication against the embedded target: every client over STARTTLS and implicit
TLS with the target's CA verified, certificate failures recorded with readable causes, AUTH
refused in the clear, verification off said everywhere, and no credential in any output."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import subprocess
from asyncio import sslproto
from pathlib import Path

import pytest
import yaml
from cli import ROOT, start_cli

from loadtests import bridge
from loadtests.clients.errors import describe, redact
from loadtests.clients.imap import active_session
from loadtests.clients.imap_client import ImapClient
from loadtests.clients.pop3 import check_mail
from loadtests.clients.smtp import AuthNotAllowed, Envelope, SmtpAuth, SmtpOptions, send_session
from loadtests.clients.steps import StepRecorder
from loadtests.clients.tls import TlsConfig, endpoint_tls
from loadtests.clients.tls_buffer import SharedBufferSSLProtocol
from loadtests.embedded.mailstore import password_for
from loadtests.report.headline import headline
from loadtests.stream.records import Header
from loadtests.targets import Endpoint, Target, load_target

USER = "user0001"
PASSWORD = password_for(USER)
RCPT = "user0002@example.test"


@pytest.fixture(autouse=True)
def _bridge() -> None:
    bridge.start()


def tls_of(endpoint: Endpoint, **options: object) -> TlsConfig:
    config = endpoint_tls(endpoint.host, endpoint.port,
                          endpoint.model_copy(update=options).tls_options())
    assert config is not None
    return config


def smtp(endpoint: Endpoint, auth: SmtpAuth | None = None, **options: object) -> StepRecorder:
    rec = StepRecorder("SMTP")
    bridge.run(send_session(endpoint.host, endpoint.port, [Envelope([RCPT], 1000)],
                            SmtpOptions("me@example.test", connect_timeout=5,
                                        command_timeout=5,
                                        tls=tls_of(endpoint, **options) if endpoint.tls != "none"
                                        else None), rec, auth), timeout=20)
    return rec


def names(rec: StepRecorder) -> list[str]:
    return [s.name for s in rec.steps]


def failure(rec: StepRecorder) -> str:
    error = next(s.error for s in rec.steps if s.error is not None)
    return str(describe(error))


# --- every client, both ways, verified --------------------------------------------------------

def test_tls_connections_share_one_receive_buffer_and_read_intact(embedded):
    ep = embedded.target.endpoints["imaps"]
    tls = tls_of(ep)  # building a context installs the shared-buffer SSL protocol
    assert sslproto.SSLProtocol is SharedBufferSSLProtocol

    async def two() -> list[object]:
        clients = [ImapClient(ep.host, ep.port, connect_timeout=5, read_timeout=5, tls=tls)
                   for _ in range(2)]
        try:
            for client in clients:
                await client.connect()
            # nothing decoded is kept per connection; asked for, it is made from the SSL object
            transport = clients[0].transport
            assert transport is not None
            kept = transport._ssl_protocol._extra  # type: ignore[attr-defined]
            assert not {"peercert", "cipher", "compression"} & set(kept)
            assert "subjectAltName" in transport.get_extra_info("peercert")
            assert transport.get_extra_info("cipher")[1] in ("TLSv1.2", "TLSv1.3")
            assert transport.get_extra_info("compression") is None
            return [c.transport._ssl_protocol for c in clients]  # type: ignore[union-attr]
        finally:
            for client in clients:
                client.close()

    first, second = bridge.run(two(), timeout=20)
    assert len(first._ssl_buffer) == 0 and len(second._ssl_buffer) == 0  # none of their own
    assert first._ssl_buffer_view is second._ssl_buffer_view  # the thread's one buffer
    assert len(first._ssl_buffer_view) == first.max_size == 256 * 1024  # reads stay 256 KiB
    assert first._write_backlog == []  # a list, not asyncio's deque
    # every attribute asyncio set went into a slot: the instance dicts stayed empty
    assert vars(first) == {} and vars(first._app_transport) == {}

    # concurrent sessions retrieving every message: the bytes arrive intact through it
    pop3s = embedded.target.endpoints["pop3s"]

    async def retrieve(user: str) -> object:
        return await check_mail(pop3s.host, pop3s.port, user, password_for(user),
                                rec=StepRecorder("POP3"), retrieve="all", tls=tls_of(pop3s),
                                connect_timeout=5, read_timeout=10)

    async def many() -> list[object]:
        return list(await asyncio.gather(*(retrieve(f"user{n:04d}") for n in range(1, 9))))

    results = bridge.run(many(), timeout=60)
    assert all(r.error is None and r.retrieved == r.count > 0 for r in results)  # type: ignore[attr-defined]

def test_smtp_starttls_auth_plain_and_login(embedded):
    ep = embedded.target.endpoints["submission"]
    for mechanism in ("plain", "login"):
        rec = smtp(ep, SmtpAuth(USER, PASSWORD, mechanism))  # type: ignore[arg-type]
        assert not rec.failed, failure(rec)
        assert names(rec) == ["CONNECT", "EHLO", "STARTTLS", "TLS", "EHLO", "AUTH", "MAIL",
                              "RCPT", "DATA", "QUIT"]
        tls = rec.steps[3].info
        assert tls is not None and tls["version"].startswith("TLSv1.") and tls["cipher"]


def test_smtps_implicit_tls_with_auth(embedded):
    rec = smtp(embedded.target.endpoints["smtps"], SmtpAuth(USER, PASSWORD))
    assert not rec.failed, failure(rec)
    assert names(rec)[:4] == ["CONNECT", "TLS", "EHLO", "AUTH"]
    connect, tls = rec.steps[0], rec.steps[1]
    assert 0 < tls.ms <= connect.ms  # the handshake is inside CONNECT
    assert tls.info is not None and tls.info["version"]


def test_submission_refuses_a_wrong_password(embedded):
    rec = smtp(embedded.target.endpoints["submission"], SmtpAuth(USER, "wrong"))
    assert rec.steps[-1].name == "AUTH" and "535" in failure(rec)


def test_auth_is_refused_over_a_plain_connection_unless_allowed(embedded):
    ep = embedded.target.endpoints["smtp"]
    rec = smtp(ep, SmtpAuth(USER, PASSWORD))
    assert names(rec)[-1] == "AUTH"
    assert isinstance(rec.steps[-1].error, AuthNotAllowed)
    assert "not encrypted" in failure(rec)
    allowed = smtp(ep, SmtpAuth(USER, PASSWORD, allow_plaintext=True))
    # sent this time; the embedded MX port offers no AUTH without TLS (538), as aiosmtpd does
    assert names(allowed)[-1] == "AUTH" and "538" in failure(allowed)


@pytest.mark.parametrize("name", ["pop3-starttls", "pop3s"])
@pytest.mark.parametrize("auth", ["user", "plain", "apop"])
def test_pop3_over_tls(embedded, name, auth):
    ep = embedded.target.endpoints[name]
    rec = StepRecorder("POP3")
    result = bridge.run(check_mail(ep.host, ep.port, USER, PASSWORD, rec=rec, tls=tls_of(ep),
                                   auth=auth, connect_timeout=5, read_timeout=5), timeout=20)
    assert result.ok, failure(rec)
    expected = ["CONNECT", "STLS", "TLS"] if name == "pop3-starttls" else ["CONNECT", "TLS"]
    assert names(rec)[:len(expected)] == expected
    assert {"user": "PASS", "plain": "AUTH", "apop": "APOP"}[auth] in names(rec)
    assert result.retrieved > 0


@pytest.mark.parametrize("name", ["imap-starttls", "imaps"])
@pytest.mark.parametrize("auth", ["login", "plain"])
def test_imap_over_tls(embedded, name, auth):
    ep = embedded.target.endpoints[name]
    rec = StepRecorder("IMAP")
    for _ in range(3):  # a few sessions in a row: each one must hold its connection
        result = bridge.run(active_session(
            ep.host, ep.port, USER, PASSWORD, rec=rec, rng=random.Random(1), actions=1,
            tls=tls_of(ep), auth=auth, connect_timeout=5, read_timeout=5), timeout=20)
        assert not (result.failed or result.dropped), failure(rec)
    expected = ["CONNECT", "STARTTLS", "TLS"] if name == "imap-starttls" else ["CONNECT", "TLS"]
    assert names(rec)[:len(expected)] == expected
    assert ("AUTHENTICATE" if auth == "plain" else "LOGIN") in names(rec)


def test_tls_sessions_are_resumed_when_asked(embedded):
    ep = embedded.target.endpoints["smtp-starttls"]
    config = TlsConfig(ep.tls_options(), resume=True)
    resumed = []
    for _ in range(3):
        rec = StepRecorder("SMTP")
        bridge.run(send_session(ep.host, ep.port, [Envelope([RCPT], 500)],
                                SmtpOptions("me@example.test", tls=config), rec), timeout=20)
        assert not rec.failed, failure(rec)
        resumed.append(next(s.info for s in rec.steps if s.name == "TLS")["resumed"])
    assert resumed[0] is False and any(resumed[1:])


# --- certificates that do not verify ----------------------------------------------------------

@pytest.mark.parametrize("certificate, cause", [
    ("wrong-name", "certificate verify failed: IP address mismatch"),
    ("expired", "certificate verify failed: certificate has expired"),
    ("untrusted", "certificate verify failed: unable to get local issuer certificate"),
])
def test_certificate_failures_are_recorded_with_their_cause(start_target, certificate, cause):
    target = start_target(tls_certificate=certificate).target
    starttls = smtp(target.endpoints["smtp-starttls"])
    assert names(starttls) == ["CONNECT", "EHLO", "STARTTLS", "TLS"]
    assert cause in failure(starttls) and "_ssl.c" not in failure(starttls)
    assert describe(starttls.steps[-1].error).code == "CERTIFICATE_VERIFY_FAILED"
    for name in ("smtps", "pop3s", "imaps"):
        ep = target.endpoints[name]
        if ep.protocol == "smtp":
            rec = smtp(ep)
        elif ep.protocol == "pop3":
            rec = StepRecorder("POP3")
            bridge.run(check_mail(ep.host, ep.port, USER, PASSWORD, rec=rec, tls=tls_of(ep)))
        else:
            rec = StepRecorder("IMAP")
            bridge.run(active_session(ep.host, ep.port, USER, PASSWORD, rec=rec,
                                      rng=random.Random(1), tls=tls_of(ep)))
        assert names(rec) == ["CONNECT"], name
        assert cause in failure(rec), name
    if certificate == "wrong-name":  # by name rather than by address
        named = smtp(target.endpoints["smtp-starttls"], server_name="mail.example.test")
        assert "certificate verify failed: Hostname mismatch" in failure(named)
    insecure = smtp(target.endpoints["smtp-starttls"], verify=False)
    assert not insecure.failed, failure(insecure)


# --- redaction --------------------------------------------------------------------------------

def test_redact_blanks_every_form_of_the_secret():
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    exc = redact(OSError(f"server said: AUTH PLAIN {plain} / {PASSWORD}"), (PASSWORD, plain))
    text = str(describe(exc))
    assert PASSWORD not in text and plain not in text and "[REDACTED]" in text


def test_an_echoing_server_does_not_leak_the_auth_string(start_target):
    ep = start_target(auth_fault="echo").target.endpoints["submission"]
    rec = smtp(ep, SmtpAuth(USER, PASSWORD))
    text = failure(rec)
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    assert "535" in text and "[REDACTED]" in text
    assert plain not in text and plain.rstrip("=") not in text and PASSWORD not in text


# --- target files, --insecure, the header and the headline ------------------------------------

def test_endpoint_tls_options_in_target_files(tmp_path):
    (tmp_path / "pki").mkdir()
    path = tmp_path / "target.yaml"
    path.write_text(yaml.safe_dump({"endpoints": {
        "submission": {"protocol": "smtp", "port": 587, "tls": "starttls",
                       "ca_file": "pki/ca.pem", "min_version": "TLSv1.2"},
        "imaps": {"protocol": "imap", "port": 993, "tls": "implicit", "verify": False},
        "imap": {"port": 143}}}))
    target = load_target(path)
    sub = target.endpoints["submission"]
    assert sub.ca_file == tmp_path / "pki" / "ca.pem" and sub.verify
    assert sub.tls_options().min_version == "TLSv1.2"
    assert target.endpoints["imap"].tls == "none"
    assert target.tls_verify_off() == ["imaps"]
    assert sorted(target.insecure().tls_verify_off()) == ["imaps", "submission"]
    assert target.public()["endpoints"]["imaps"] == {
        "protocol": "imap", "address": "127.0.0.1:993", "tls": "implicit", "verify": False}
    for bad in ({"protocol": "http", "port": 443, "tls": "starttls"},
                {"protocol": "dns", "port": 53, "tls": "implicit"},
                {"protocol": "smtp", "port": 25, "client_key": "k.pem"},
                {"protocol": "smtp", "port": 25, "min_version": "SSLv3"}):
        with pytest.raises(ValueError):
            Target.model_validate({"endpoints": {"x": bad}})


def test_header_and_headline_say_verification_was_off():
    target = Target.model_validate({"endpoints": {
        "smtps": {"protocol": "smtp", "port": 465, "tls": "implicit", "verify": False},
        "smtp": {"port": 25}}})
    assert Header(target=target.public()).tls_verify_off == ["smtps"]
    assert Header(target=target.model_copy(update={"endpoints": {
        "smtp": target.endpoints["smtp"]}}).public()).tls_verify_off == []
    warnings = headline({"target": target.public(), "requests": [], "qos": {}}).warnings
    assert any(w.startswith("TLS verification off for smtps") for w in warnings)


# --- whole runs -------------------------------------------------------------------------------

def _profile(folder: Path, name: str, embedded: dict[str, object]) -> Path:
    data = yaml.safe_load((ROOT / "profiles" / "submission-tls.yaml").read_text())
    data.update(duration="3s", drain="3s", embedded=embedded)
    for sc in data["scenarios"]:
        sc["schedule"].update(rate=4)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_runs_verify_fail_with_exit_3_say_insecure_and_never_show_credentials(tmp_path):
    jobs = {
        "expired": (_profile(tmp_path, "expired", {"tls_certificate": "expired"}), ()),
        "insecure": (_profile(tmp_path, "insecure", {"tls_certificate": "expired"}),
                     ("--insecure",)),
        "echo": (_profile(tmp_path, "echo", {"auth_fault": "echo"}), ()),
    }
    procs = {name: start_cli("run", str(profile), "--out", str(tmp_path / name), "--quiet",
                             *flags, stderr=subprocess.STDOUT)
             for name, (profile, flags) in jobs.items()}
    console = {name: proc.communicate(timeout=150)[0] for name, proc in procs.items()}
    codes = {name: proc.returncode for name, proc in procs.items()}

    # a certificate that does not verify: recorded failures with the cause, exit status 3
    assert codes["expired"] == 3, console["expired"][-2000:]
    summary = json.loads((tmp_path / "expired" / "summary.json").read_text())
    causes = " ".join(str(e.get("cause") or e["error"]) for e in summary["errors"])
    assert "certificate has expired" in causes
    assert "Traceback" not in console["expired"]

    # --insecure: it passes, and the console, the stream's header, summary and report say so
    assert codes["insecure"] == 0, console["insecure"][-2000:]
    assert "TLS verification off for" in console["insecure"]
    out = tmp_path / "insecure"
    header = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert "submission" in header["tls_verify_off"] and "smtps" in header["tls_verify_off"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["target"]["endpoints"]["submission"]["verify"] is False
    assert "TLS verification off" in (out / "report.html").read_text()
    steps = {(r["type"], r["name"]) for r in summary["requests"]}
    assert {("SMTP", "TLS"), ("SMTP", "AUTH"), ("SMTP", "STARTTLS")} <= steps

    # a server echoing the AUTH line: neither the password nor the AUTH strings anywhere
    assert codes["echo"] == 3
    plain = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
    login = base64.b64encode(PASSWORD.encode()).decode()
    secrets = {PASSWORD, plain, plain.rstrip("="), login, login.rstrip("=")}
    for name in jobs:
        files = [p for p in (tmp_path / name).rglob("*")
                 if p.is_file() and p.suffix in (".jsonl", ".json", ".html", ".csv")]
        assert any(p.name == "results.jsonl" for p in files)
        for path in files:
            text = path.read_text(errors="replace")
            leaked = [s for s in secrets if s in text]
            assert not leaked, f"{path} shows a credential"
        assert not [s for s in secrets if s in console[name]], f"{name}: console"
    echo_summary = (tmp_path / "echo" / "summary.json").read_text()
    assert "[REDACTED]" in echo_summary


def test_webuser_over_https_verified_and_a_failing_certificate(tmp_path):
    def profile(name: str, embedded: dict[str, object]) -> Path:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({
            "name": name, "duration": "3s", "drain": "3s", "seed": 1, "embedded": embedded,
            "scenarios": [{"name": "web", "user": "webuser", "endpoint": "https",
                           "schedule": {"kind": "closed", "users": 4, "spawn_rate": 100},
                           "web": {"connection": "keep-alive", "session_length": "2s",
                                   "poll_interval": "1s"}}]}))
        return path

    procs = {name: start_cli("run", str(profile(name, embedded)), "--out",
                             str(tmp_path / name), "--quiet", stderr=subprocess.STDOUT)
             for name, embedded in (("https", {}), ("expired", {"tls_certificate": "expired"}))}
    console = {name: proc.communicate(timeout=150)[0] for name, proc in procs.items()}
    assert procs["https"].returncode == 0, console["https"][-2000:]
    summary = json.loads((tmp_path / "https" / "summary.json").read_text())
    login = next(r for r in summary["requests"] if r["type"] == "HTTP" and r["name"] == "LOGIN")
    assert login["count"] >= 4 and login["failures"] == 0
    assert procs["expired"].returncode == 3, console["expired"][-2000:]
    summary = json.loads((tmp_path / "expired" / "summary.json").read_text())
    causes = " ".join(str(e.get("cause") or e["error"]) for e in summary["errors"])
    assert "certificate verify failed: certificate has expired" in causes
