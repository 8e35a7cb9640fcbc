"""What servers say reaches the outputs safely: no password the run knows is recorded, even when
a server echoes it back, and no control character in a reply reaches the terminal or a CSV."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cli import run_cli
from streams import req, write_stream

from loadtests.console import format_summary
from loadtests.report import finish_run
from loadtests.report.tables import to_csv
from loadtests.stream import Req, StreamWriter, UserError
from loadtests.stream.redact import MASK, Redactor

SECRET = "mailswarm-test"  # the embedded target's shared password

ECHOING = """
name: echo
duration: 2s
drain: 1s
scenarios:
  - name: pop
    user: pop3
    schedule: {kind: arrival, rate: 10, max_in_flight: 5}
  - name: imap
    user: imap-active
    schedule: {kind: arrival, rate: 10, max_in_flight: 5}
embedded: {pop3_fault: echo, imap_fault: echo}
"""


def _leaks(text: str) -> list[str]:
    b64 = base64.b64encode(SECRET.encode()).decode()
    plain = base64.b64encode(f"\0user0001\0{SECRET}".encode()).decode()
    return [form for form in (SECRET, b64, plain) if form in text]


@pytest.mark.parametrize("text", [
    f"Pop3Error: -ERR you said: PASS {SECRET}",
    f'ImapError: NO you said: LOGIN user0001 "{SECRET}"',
    f"SMTPAuthenticationError: 535 {base64.b64encode(SECRET.encode()).decode()} rejected",
    "SMTPAuthenticationError: 535 "
    f"{base64.b64encode(f'{chr(0)}user0042{chr(0)}{SECRET}'.encode()).decode()} rejected",
    f"HTTPError: 400 bad form user=a&password={SECRET}",
])
def test_every_form_of_a_secret_is_redacted(text: str) -> None:
    out = Redactor([SECRET]).text(text)
    assert not _leaks(out) and MASK in out, out


def test_redactor_leaves_other_text_and_takes_later_secrets() -> None:
    redactor = Redactor([None, ""])
    assert not redactor and redactor.text("-ERR [AUTH] invalid") == "-ERR [AUTH] invalid"
    redactor.add("later-auth-string")
    assert redactor.text("x later-auth-string y") == f"x {MASK} y"
    assert redactor.text("Authentication failed.") == "Authentication failed."


def test_the_writer_redacts_every_error_text(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    writer = StreamWriter(path, Redactor([SECRET]))
    writer.on_request("POP3", "LOGIN", 1.0, 0, exception=RuntimeError(f"PASS {SECRET}"))
    writer.write(Req(1.0, "IMAP", "LOGIN", 1.0, 0, False, f"NO {SECRET}", "NO", "sc"))
    writer.write(UserError(1.0, "Pop3User", f"Pop3Error: {SECRET}"))
    writer.close()
    text = path.read_text()
    assert not _leaks(text) and text.count(MASK) == 3


def test_an_echoing_server_leaks_nothing_end_to_end(tmp_path: Path) -> None:
    """POP3 PASS and IMAP LOGIN answered with the command echoed, password included: the
    failures are recorded (with the password masked) and no output file nor the console holds
    the password in any form."""
    profile = tmp_path / "p.yaml"
    profile.write_text(ECHOING)
    out = tmp_path / "out"
    result = run_cli("run", str(profile), "--out", str(out), timeout=120)
    assert result.returncode in (0, 3), result.stderr[-3000:]
    assert not _leaks(result.stdout + result.stderr)
    stream = (out / "results.jsonl").read_text()
    assert "you said: PASS [REDACTED]" in stream
    assert f'you said: LOGIN user0001 \\"{MASK}\\"' in stream  # JSON-escaped quotes
    files = [p for p in out.iterdir() if p.is_file()]
    assert {"results.jsonl", "summary.json", "report.html", "failures.csv"} <= {p.name
                                                                                 for p in files}
    for path in files:
        assert not _leaks(path.read_text(errors="replace")), path.name


ESCAPES = "421 \x1b]0;owned\x07\x1b[2J\x1b[31mred\rhidden\x9b1m\u202eevil\nnext"


def test_control_characters_never_reach_the_terminal_or_a_csv(tmp_path: Path) -> None:
    records = [req(0.1, "SMTP", "CONNECT", 2.0, ok=False, err=f"SMTPConnectError: {ESCAPES}",
                   code=421)]
    out = write_stream(tmp_path / "run", records)
    summary = finish_run(out)
    text = format_summary(summary)
    assert "\x1b" not in text and "\r" not in text and "\x9b" not in text
    assert "\u202e" not in text and "\x07" not in text
    assert "\\x1b[" in text and "\\x9b" in text and "\\u202e" in text
    csv = (out / "failures.csv").read_text()
    assert "\x1b" not in csv and "\r" not in csv and "\\x1b[31m" in csv
    assert len(csv.strip().splitlines()) == 2  # the header and one row: the newline is escaped
    assert to_csv([{"a": "x\x1by", "b": 3, "c": None}]) == "a,b,c\nx\\x1by,3,\n"


def test_a_worker_redacts_before_shipping() -> None:
    shipped = Redactor([SECRET]).req_dict({"kind": "req", "err": f"x {SECRET}", "ok": False})
    assert shipped["err"] == f"x {MASK}"
    error = Redactor([SECRET]).req_dict({"kind": "error", "error": f"PASS {SECRET}"})
    assert error["error"] == f"PASS {MASK}"
