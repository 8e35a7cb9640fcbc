"""`mailswarm target`: every setting of the embedded target a flag can give (faults of each
protocol included) reaches it, and bad flags are all named at once with exit 2."""

from __future__ import annotations

import argparse
import json
import socket

from cli import run_cli, start_cli

from loadtests.embedded.__main__ import FLAGS, add_arguments, settings_from_args
from loadtests.embedded.config import EmbeddedSettings

_ANY_PORT = ["--smtp-port", "0", "--dns-port", "0", "--pop3-port", "0", "--imap-port", "0",
             "--http-port", "0"]


def _settings(*argv: str) -> EmbeddedSettings:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return settings_from_args(parser.parse_args(list(argv)))


def test_every_flag_sets_its_field() -> None:
    s = _settings("--pop3-fault", "stall-retr", "--imap-fault", "drop-idle", "--http-fault",
                  "close-mid-body", "--dns-fault", "truncate-tcp-cut", "--auth-fault", "echo",
                  "--certificate", "expired", "--fault", "reply-4xx", "--fault-ratio", "0.25",
                  "--fault-after", "2s", "--nofile", "5000", "--users", "7", "--mode",
                  "thread", "--imap-port", "1143", "--dns-delay", "250ms", "--no-tls")
    assert (s.pop3_fault, s.imap_fault, s.http_fault, s.dns_fault, s.auth_fault) == \
        ("stall-retr", "drop-idle", "close-mid-body", "truncate-tcp-cut", "echo")
    assert (s.tls_certificate, s.fault, s.fault_ratio, s.fault_after) == \
        ("expired", "reply-4xx", 0.25, 2.0)
    assert (s.nofile_limit, s.users, s.mode, s.imap_port, s.dns_delay, s.tls) == \
        (5000, 7, "thread", 1143, 0.25, False)
    assert _settings() == EmbeddedSettings(smtp_port=20025, dns_port=20053, pop3_port=20110,
                                           imap_port=20143, http_port=20080)
    assert set(FLAGS) <= set(EmbeddedSettings.model_fields)


def test_bad_flags_are_all_named_at_once_with_exit_2() -> None:
    done = run_cli("target", *_ANY_PORT, "--fault-ratio", "2", "--users", "0", "--imap-fault",
                   "nope", "--mode", "fibers", "--pop3-port", "x", "--certificate", "bad",
                   timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "ready" not in done.stdout
    assert "mailswarm target: 6 problems" in done.stderr
    for flag in ("--fault-ratio", "--users", "--imap-fault", "--mode", "--pop3-port",
                 "--certificate"):
        assert f"  - {flag}: " in done.stderr, (flag, done.stderr)
    assert "drop-idle" in done.stderr  # what --imap-fault takes


def test_a_protocol_fault_from_the_command_line_reaches_the_server() -> None:
    proc = start_cli("target", *_ANY_PORT, "--users", "3", "--no-tls", "--imap-fault", "bye")
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        with socket.create_connection(("127.0.0.1", ready["imap_port"]), timeout=10) as sock:
            greeting = sock.makefile("rb").readline()
        assert greeting.startswith(b"* BYE"), greeting
        with socket.create_connection(("127.0.0.1", ready["pop3_port"]), timeout=10) as sock:
            assert sock.makefile("rb").readline().startswith(b"+OK")  # POP3 left alone
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
