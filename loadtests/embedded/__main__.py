"""`python -m loadtests.embedded`: the embedded target in the foreground (`mailswarm target`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any, get_args

from loadtests.configfile import ConfigError, validate_model
from loadtests.embedded.config import EmbeddedSettings

FLAGS: dict[str, str] = {
    "host": "--host", "smtp_port": "--smtp-port", "dns_port": "--dns-port",
    "pop3_port": "--pop3-port", "imap_port": "--imap-port", "http_port": "--http-port",
    "domain": "--domain", "users": "--users", "command_delay": "--command-delay",
    "dns_delay": "--dns-delay", "mode": "--mode", "max_connections": "--max-connections",
    "thread_limit": "--thread-limit", "nofile_limit": "--nofile", "fault": "--fault",
    "fault_ratio": "--fault-ratio", "fault_after": "--fault-after",
    "pop3_fault": "--pop3-fault", "imap_fault": "--imap-fault", "http_fault": "--http-fault",
    "dns_fault": "--dns-fault", "auth_fault": "--auth-fault",
    "tls_certificate": "--certificate", "tls": "--no-tls",
}
"""`EmbeddedSettings` field -> the `mailswarm target` flag that sets it (problems name flags)."""


def _choices(field: str) -> str:
    """The values a Literal field of EmbeddedSettings takes, for a flag's help."""
    return ", ".join(get_args(EmbeddedSettings.model_fields[field].annotation))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the embedded target, shared with `mailswarm target`."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--smtp-port", default=20025, help="SMTP port (20025; 0 = any)")
    parser.add_argument("--dns-port", default=20053,
                        help="DNS port, UDP and TCP (20053; 0 = any)")
    parser.add_argument("--pop3-port", default=20110, help="POP3 port (20110; 0 = any)")
    parser.add_argument("--imap-port", default=20143, help="IMAP port (20143; 0 = any)")
    parser.add_argument("--http-port", default=20080,
                        help="webmail HTTP port (20080; 0 = any)")
    parser.add_argument("--domain", default="example.test", help="mail domain (example.test)")
    parser.add_argument("--users", default=1000,
                        help="mailboxes user0001..userNNNN (1000)")
    parser.add_argument("--command-delay", default="0",
                        help="delay before each SMTP reply, e.g. 20ms")
    parser.add_argument("--dns-delay", default="0", help="delay before each DNS answer, e.g. 2s")
    parser.add_argument("--mode", default="event", metavar="{event,thread}",
                        help="POP3/IMAP server model: one event loop, or a thread per connection")
    parser.add_argument("--max-connections", default=0,
                        help="event mode: POP3/IMAP connections held at most (0: no cap)")
    parser.add_argument("--thread-limit", default=256,
                        help="thread mode: threads (connections) at most (256)")
    parser.add_argument("--nofile", default=0,
                        help="RLIMIT_NOFILE of the target process (0: unchanged)")
    faults = parser.add_argument_group(
        "injected faults", "what a misbehaving server does, to see how a run reports it "
        "(values are checked together: every bad flag is named at once)")
    faults.add_argument("--fault", default="none", metavar="FAULT",
                        help=f"SMTP connections: {_choices('fault')}")
    faults.add_argument("--pop3-fault", default="none", metavar="FAULT",
                        help=f"POP3 connections: {_choices('pop3_fault')}")
    faults.add_argument("--imap-fault", default="none", metavar="FAULT",
                        help=f"IMAP connections: {_choices('imap_fault')}")
    faults.add_argument("--http-fault", default="none", metavar="FAULT",
                        help=f"webmail connections: {_choices('http_fault')}")
    faults.add_argument("--dns-fault", default="none", metavar="FAULT",
                        help=f"DNS queries: {_choices('dns_fault')}")
    faults.add_argument("--auth-fault", default="none", metavar="FAULT",
                        help="echo: every SMTP AUTH is refused with a reply repeating the "
                             "client's AUTH line (a secret a run must not print)")
    faults.add_argument("--certificate", default="valid", metavar="KIND",
                        help=f"the certificate the TLS servers show: "
                             f"{_choices('tls_certificate')} (the others fail verification)")
    faults.add_argument("--fault-ratio", default="1.0",
                        help="share of connections (DNS: of queries) the faults hit (1.0)")
    faults.add_argument("--fault-after", default="0",
                        help="start the faults this long after start-up, e.g. 10s")
    parser.add_argument("--settings-json", help=argparse.SUPPRESS)
    parser.add_argument("--die-with-parent", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stats-file", type=Path, help="rewrite this JSON file every second")
    parser.add_argument("--tls-dir", type=Path,
                        help="write the test CA (ca.pem) and server certificate here "
                             "(default: a temporary folder)")
    parser.add_argument("--no-tls", action="store_true",
                        help="offer no STARTTLS and no TLS ports")


def settings_from_args(args: argparse.Namespace) -> EmbeddedSettings:
    """The settings the flags ask for; ConfigError names every bad flag at once."""
    if args.settings_json:
        return EmbeddedSettings.model_validate_json(args.settings_json)
    values = vars(args)
    data: dict[str, Any] = {field: values[flag[2:].replace("-", "_")]
                            for field, flag in FLAGS.items() if field != "tls"}
    data["tls"] = not args.no_tls
    try:
        return validate_model(EmbeddedSettings, data, "mailswarm target")
    except ConfigError as exc:
        raise ConfigError(exc.source, [_flag_problem(p) for p in exc.problems]) from None


def _flag_problem(problem: str) -> str:
    """"fault_ratio: ..." -> "--fault-ratio: ..."."""
    field, _, what = problem.partition(": ")
    return f"{FLAGS.get(field, field)}: {what}"


def run_foreground(args: argparse.Namespace) -> int:
    from loadtests.embedded.server import die_with_parent, serve  # the servers' imports, only here

    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    if args.die_with_parent:
        die_with_parent()
    try:
        asyncio.run(serve(settings, args.stats_file, args.tls_dir))
    except OSError as exc:
        print(f"mailswarm target: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.embedded", description=__doc__)
    add_arguments(parser)
    return run_foreground(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
