"""`python -m loadtests.embedded`: the embedded target in the foreground (`mailswarm target`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from loadtests.embedded.config import FAULTS, EmbeddedSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of the embedded target, shared with `mailswarm target`."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--smtp-port", type=int, default=20025, help="SMTP port (20025; 0 = any)")
    parser.add_argument("--dns-port", type=int, default=20053,
                        help="DNS port, UDP and TCP (20053; 0 = any)")
    parser.add_argument("--pop3-port", type=int, default=20110, help="POP3 port (20110; 0 = any)")
    parser.add_argument("--imap-port", type=int, default=20143, help="IMAP port (20143; 0 = any)")
    parser.add_argument("--http-port", type=int, default=20080,
                        help="webmail HTTP port (20080; 0 = any)")
    parser.add_argument("--domain", default="example.test", help="mail domain (example.test)")
    parser.add_argument("--users", type=int, default=1000,
                        help="mailboxes user0001..userNNNN (1000)")
    parser.add_argument("--command-delay", default="0",
                        help="delay before each SMTP reply, e.g. 20ms")
    parser.add_argument("--dns-delay", default="0", help="delay before each DNS answer, e.g. 2s")
    parser.add_argument("--mode", choices=("event", "thread"), default="event",
                        help="POP3/IMAP server model: one event loop, or a thread per connection")
    parser.add_argument("--max-connections", type=int, default=0,
                        help="event mode: POP3/IMAP connections held at most (0: no cap)")
    parser.add_argument("--thread-limit", type=int, default=256,
                        help="thread mode: threads (connections) at most (256)")
    parser.add_argument("--nofile", type=int, default=0,
                        help="RLIMIT_NOFILE of the target process (0: unchanged)")
    parser.add_argument("--fault", choices=FAULTS, default="none",
                        help="inject a fault into SMTP connections")
    parser.add_argument("--fault-ratio", type=float, default=1.0,
                        help="share of SMTP connections the fault hits (1.0)")
    parser.add_argument("--fault-after", default="0",
                        help="start the fault this long after start-up, e.g. 10s")
    parser.add_argument("--settings-json", help=argparse.SUPPRESS)
    parser.add_argument("--die-with-parent", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stats-file", type=Path, help="rewrite this JSON file every second")
    parser.add_argument("--tls-dir", type=Path,
                        help="write the test CA (ca.pem) and server certificate here "
                             "(default: a temporary folder)")
    parser.add_argument("--no-tls", action="store_true",
                        help="offer no STARTTLS and no TLS ports")


def settings_from_args(args: argparse.Namespace) -> EmbeddedSettings:
    if args.settings_json:
        return EmbeddedSettings.model_validate_json(args.settings_json)
    return EmbeddedSettings(
        host=args.host, smtp_port=args.smtp_port, dns_port=args.dns_port,
        pop3_port=args.pop3_port, imap_port=args.imap_port, http_port=args.http_port,
        domain=args.domain, mode=args.mode,
        max_connections=args.max_connections, thread_limit=args.thread_limit,
        nofile_limit=args.nofile,
        users=args.users, command_delay=args.command_delay, dns_delay=args.dns_delay,
        fault=args.fault, fault_ratio=args.fault_ratio, fault_after=args.fault_after,
        tls=not args.no_tls,
    )


def run_foreground(args: argparse.Namespace) -> int:
    from loadtests.embedded.server import die_with_parent, serve  # the servers' imports, only here

    settings = settings_from_args(args)
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
