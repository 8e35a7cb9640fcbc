"""The real stack with TLS (issue 13, item 5): real clients and mailswarm against Dovecot, Postfix,
nginx, perdition and Roundcube over implicit TLS and STARTTLS, verified against the CA the stack
made at `up` (needs root: installs, binds, setuid).

One stack start-up for the module; the real clients (openssl s_client, curl, swaks) take a
second each, and one mailswarm run of a few seconds drives every TLS endpoint at once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from cli import ROOT, run_cli

from loadtests.stack import DOMAIN, PASSWORD, PORTS, StackConfig, using
from loadtests.stack.settings import MAIL_HOST
from loadtests.stack.targetfile import TLS_ENDPOINTS
from loadtests.stream.reader import read_stream
from loadtests.stream.records import Req

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(os.geteuid() != 0, reason="the real stack needs root: it installs "
                       "Debian packages and its daemons switch users"),
]

HOST = "127.0.0.1"
TARGET = ROOT / "profiles" / "targets" / "stack.yaml"
STARTTLS = {"imap": "imap", "pop3": "pop3", "smtp": "smtp"}  # s_client's -starttls names


@pytest.fixture(scope="module")
def stack() -> Iterator[StackConfig]:
    with using() as cfg:  # another pytest session on this machine waits for us
        yield cfg


def _ca(cfg: StackConfig) -> Path:
    return cfg.tls_dir / "ca.pem"


def _s_client(port: int, ca: Path, starttls: str | None = None,
              name: str = MAIL_HOST) -> subprocess.CompletedProcess[str]:
    args = ["openssl", "s_client", "-connect", f"{HOST}:{port}", "-CAfile", str(ca),
            "-servername", name, "-verify_hostname", name, "-verify_return_error", "-brief"]
    if starttls:
        args += ["-starttls", starttls]
    return subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=20, check=False)


def _mail_count(cfg: StackConfig) -> int:
    """Messages in every maildir (new/ and cur/: IMAP and POP3 sessions move new mail to cur/)."""
    return sum(1 for sub in ("new", "cur") for _ in cfg.mail_dir.glob(f"{DOMAIN}/*/{sub}/*"))


@pytest.mark.parametrize("endpoint", sorted(n for n, e in TLS_ENDPOINTS.items()
                                            if e.protocol != "http"))
def test_tls_openssl_s_client_verifies_every_mail_endpoint(stack: StackConfig,
                                                           endpoint: str) -> None:
    ep = TLS_ENDPOINTS[endpoint]
    starttls = STARTTLS[ep.protocol] if ep.tls == "starttls" else None
    out = _s_client(PORTS[ep.port], _ca(stack), starttls)
    assert out.returncode == 0, out.stdout[-1500:] + out.stderr[-1500:]
    assert "Verification: OK" in out.stderr
    assert "Protocol version: TLSv1.3" in out.stderr


def test_tls_a_foreign_ca_or_a_wrong_name_fails_verification(stack: StackConfig,
                                                             tmp_path: Path) -> None:
    foreign = tmp_path / "foreign-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(foreign))
    wrong_ca = _s_client(PORTS["imaps"], foreign)
    assert wrong_ca.returncode != 0 and "unable to get local issuer" in wrong_ca.stderr
    wrong_name = _s_client(PORTS["imaps"], _ca(stack), name="other.example.org")
    assert wrong_name.returncode != 0 and "hostname mismatch" in wrong_name.stderr


def test_tls_keys_are_private_to_their_service_user(stack: StackConfig) -> None:
    keys = {p.name: p.stat() for p in stack.tls_dir.glob("*.key")}
    assert set(keys) == {"server.key", "server-postfix.key", "server-www-data.key",
                         "server-nobody.key"}
    assert all(st.st_mode & 0o077 == 0 for st in keys.values())
    assert keys["server-nobody.key"].st_uid == 65534
    assert _ca(stack).stat().st_mode & 0o044 == 0o044  # clients may read the CA


def test_tls_curl_https_roundcube(stack: StackConfig) -> None:
    url = f"https://{MAIL_HOST}:{PORTS['https']}/"
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w",
                          "%{http_code} %{ssl_verify_result}", "--cacert", str(_ca(stack)),
                          "--resolve",
                          f"{MAIL_HOST}:{PORTS['https']}:{HOST}", url],
                         capture_output=True, text=True, timeout=30, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "200 0"


@pytest.mark.skipif(not shutil.which("swaks"), reason="swaks is not installed "
                    "(scripts/stack-install)")
def test_tls_swaks_submission_starttls_auth_delivers(stack: StackConfig) -> None:
    user = "user0061"
    before = len(list((stack.maildir(user) / "new").glob("*")))
    base = ["swaks", "--server", f"{HOST}:{PORTS['submission']}", "--to", f"{user}@{DOMAIN}",
            "--from", f"user0062@{DOMAIN}", "--tls", "--tls-verify", "--tls-ca-path",
            str(_ca(stack)), "--tls-sni", MAIL_HOST, "--timeout", "20"]
    # no AUTH: relaying refused even to a local user (submission is for authenticated clients)
    refused = subprocess.run(base, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode != 0 and "554" in refused.stdout, refused.stdout[-1500:]
    sent = subprocess.run([*base, "--auth", "PLAIN", "--auth-user", f"user0062@{DOMAIN}",
                           "--auth-password", PASSWORD, "--auth-hide-password"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert sent.returncode == 0, sent.stdout[-2000:]
    assert "235 " in sent.stdout and PASSWORD not in sent.stdout
    deadline = time.monotonic() + 15
    while len(list((stack.maildir(user) / "new").glob("*"))) == before:
        assert time.monotonic() < deadline, "no delivery into the maildir"
        time.sleep(0.2)


def test_tls_submission_without_starttls_offers_no_auth(stack: StackConfig) -> None:
    import smtplib

    with smtplib.SMTP(HOST, PORTS["submission"], timeout=10) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls") and not smtp.has_extn("auth")


# --- mailswarm over every TLS endpoint in one short run ------------------------------------

_SESSION_ENDPOINTS = {  # scenario -> (user kind, endpoint, settings section, settings)
    "submission": ("submission", "submission", "smtp", {"auth": "plain"}),
    "smtps": ("submission", "smtps", "smtp", {"auth": "login", "tls_resume": True}),
    **{f"imap-{ep}": ("imap-active", ep, "imap",
                      {"actions": 1, "search": False, "flag_changes": False})
       for ep in ("imaps", "imap-starttls", "imaps-nginx", "imap-starttls-nginx",
                  "imaps-perdition", "imap-starttls-perdition")},
    **{f"pop3-{ep}": ("pop3", ep, "pop3", {"retrieve": "none"})
       for ep in ("pop3s", "pop3-starttls", "pop3s-nginx", "pop3-starttls-nginx",
                  "pop3s-perdition", "pop3-starttls-perdition")},
}


def _profile(path: Path) -> Path:
    scenarios: list[dict[str, Any]] = [
        {"name": name, "user": kind, "endpoint": endpoint,
         "schedule": {"kind": "arrival", "rate": 1.5, "process": "fixed",
                      "max_in_flight": 10},
         section: settings}
        for name, (kind, endpoint, section, settings) in _SESSION_ENDPOINTS.items()]
    scenarios.append({
        "name": "webmail-https", "user": "webuser", "endpoint": "webmail-https",
        "schedule": {"kind": "closed", "users": 2, "spawn_rate": 2},
        "web": {"app": "roundcube", "connection": "keep-alive", "session_length": "3s",
                "poll_interval": "1s", "open_message_ratio": 0.0, "send_ratio": 0.0}})
    path.write_text(json.dumps({"name": "stack-tls", "duration": "5s", "drain": "8s",
                                "seed": 3, "scenarios": scenarios}))
    return path


def test_tls_mailswarm_over_every_tls_endpoint(stack: StackConfig, tmp_path: Path) -> None:
    before = _mail_count(stack)
    out = tmp_path / "out"
    result = run_cli("run", str(_profile(tmp_path / "tls.json")), "--target", str(TARGET),
                     "--out", str(out), "--quiet", timeout=180)
    assert (out / "results.jsonl").is_file(), result.stderr[-3000:]
    records = [r for r in read_stream(out / "results.jsonl") if type(r) is Req]
    failures = Counter((r.sc, r.name, r.err) for r in records if not r.ok)
    assert not failures, failures
    assert result.returncode == 0, result.stderr[-3000:]
    sessions = Counter(r.sc for r in records if r.name == "session" and r.ok)
    expected = {*_SESSION_ENDPOINTS, "webmail-https"}
    assert set(sessions) == expected, sessions
    # every mail session made a verified TLS handshake (webmail's is inside its requests)
    handshakes = Counter(r.sc for r in records if r.name == "TLS" and r.ok)
    assert set(handshakes) == set(_SESSION_ENDPOINTS), handshakes
    assert all(handshakes[sc] >= sessions[sc] for sc in _SESSION_ENDPOINTS)
    # submission with STARTTLS + AUTH through Postfix delivered every accepted message
    accepted = sum(1 for r in records if r.name == "DATA" and r.ok)
    assert accepted == sessions["submission"] + sessions["smtps"] > 0
    deadline = time.monotonic() + 20
    while _mail_count(stack) < before + accepted:
        assert time.monotonic() < deadline, (_mail_count(stack) - before, accepted)
        time.sleep(0.25)
    assert _mail_count(stack) == before + accepted
    texts = [p.read_text(errors="replace") for p in out.rglob("*") if p.is_file()]
    assert not any(PASSWORD in t for t in [*texts, result.stdout, result.stderr])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["requests"]

