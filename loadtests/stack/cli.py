"""`mailswarm stack install|up|down|status|render|run [SERVICE...]`: the reference stack by hand."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from loadtests.stack.manager import ServiceState, StackError, down, install, render, status, up
from loadtests.stack.packages import PackageError
from loadtests.stack.services import SERVICES
from loadtests.stack.settings import (
    RUN_DIR_ENV,
    USER_COUNT,
    DeliveryConcurrency,
    DovecotLimits,
    StackConfig,
    default_run_dir,
)

__all__ = ["register"]

_DESCRIPTION = f"""\
Run Debian's real mail servers on 127.0.0.1 high ports as a benchmark target, without systemd.
Every config is written into a run folder (default {default_run_dir()}, or ${RUN_DIR_ENV});
nothing under /etc changes. Installing packages needs root.

services (start order):
""" + "\n".join(f"  {name:<10} {svc.summary}" for name, svc in SERVICES.items())

_EPILOG = """\
examples:
  mailswarm stack up                          start everything (installs what is missing)
  mailswarm stack up postfix unbound          only these two
  mailswarm stack up dovecot --process-limit 50   restart Dovecot with a lower limit
  mailswarm stack up postfix --delivery-concurrency 2   two parallel maildir deliveries
  mailswarm stack up postfix dovecot --users 100000 --layout hashed   a large domain
  mailswarm stack status --json
  mailswarm stack down                        stop every process the stack started
"""


def _limits(args: argparse.Namespace) -> DovecotLimits:
    names = ("process_limit", "client_limit", "service_count", "mail_max_userip_connections",
             "default_client_limit", "login_process_limit", "login_service_count")
    flags = ("process_limit", "client_limit", "service_count", "max_userip_connections",
             "default_client_limit", "login_process_limit", "login_service_count")
    return DovecotLimits(**{n: getattr(args, f, None) for n, f in zip(names, flags, strict=True)})


def _delivery(args: argparse.Namespace) -> DeliveryConcurrency:
    return DeliveryConcurrency(destination_limit=getattr(args, "delivery_concurrency", None),
                               processes=getattr(args, "delivery_processes", None))


def _config(args: argparse.Namespace) -> StackConfig:
    return StackConfig(run_dir=Path(args.dir), limits=_limits(args),
                       listen=getattr(args, "listen", "127.0.0.1"),
                       backend=getattr(args, "backend", "127.0.0.1"),
                       smtp_host=getattr(args, "smtp_host", "127.0.0.1"),
                       users=getattr(args, "users", USER_COUNT),
                       layout=getattr(args, "layout", "flat"),
                       delivery=_delivery(args),
                       proxy_workers=getattr(args, "proxy_workers", 1))


def _print(states: dict[str, ServiceState], as_json: bool) -> None:
    if as_json:
        print(json.dumps({k: v.as_dict() for k, v in states.items()}, indent=2))
        return
    rows = [("service", "state", "pids", "ports")]
    for st in states.values():
        pids = " ".join(f"{k}={v or '-'}" for k, v in st.pids.items())
        ports = " ".join(f"{k}={p}{'' if p in st.listening else '(closed)'}"
                         for k, p in st.ports.items())
        rows.append((st.name, st.action or ("running" if st.running else "down"), pids, ports))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " +
              row[3])
    logs = [f"  {st.name}: {st.log}" for st in states.values() if st.log and not st.running]
    if logs and any(st.action not in ("stopped", "not running") for st in states.values()):
        print("logs of services not running:\n" + "\n".join(logs))


def _handle(args: argparse.Namespace) -> int:
    names = args.services or None
    try:
        if args.action == "install":
            done = install(names, log=None, with_needs=not args.no_deps)
            print("installed: " + " ".join(done) if done else "all packages already installed")
            return 0
        if args.action == "render":
            for path in render(names, config=_config(args)):
                print(path)
            return 0
        if args.action == "up":
            _print(up(names, config=_config(args), install_missing=not args.no_install,
                      with_needs=not args.no_deps, timeout=args.timeout), args.json)
            return 0
        if args.action == "run":
            return _run_foreground(names, args)
        if args.action == "down":
            states = down(names, config=_config(args))
            _print(states, args.json)
            left = [f"{s.name}:{p}" for s in states.values() for p in s.listening]
            if left:
                print(f"still listening (not started by this stack?): {' '.join(left)}",
                      file=sys.stderr)
            return 1 if left else 0
        states = status(names, config=_config(args))
        _print(states, args.json)
        return 0 if all(s.running for s in states.values()) else 3
    except (StackError, PackageError, ValueError) as exc:
        print(f"mailswarm stack {args.action}: {exc}", file=sys.stderr)
        return 2


def _run_foreground(names: list[str] | None, args: argparse.Namespace) -> int:
    """up, then wait for SIGTERM/SIGINT or a daemon's death, then down (container entry point)."""
    cfg = _config(args)
    stop = {"signal": 0}

    def on_signal(signum: int, _frame: object) -> None:
        stop["signal"] = signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        _print(up(names, config=cfg, install_missing=not args.no_install,
                  with_needs=not args.no_deps, timeout=args.timeout), args.json)
        sys.stdout.flush()
        while not stop["signal"]:
            time.sleep(1)
            if not all(s.running for s in status(names, config=cfg).values()):
                print("a daemon exited; stopping the rest", file=sys.stderr)
                break
    finally:
        down(names, config=cfg)
    return 0 if stop["signal"] else 1


def _mail_options(parser: argparse.ArgumentParser) -> None:
    """Postfix's delivery concurrency (S8) and the accounts and their maildir layout (S7)."""
    group = parser.add_argument_group("local delivery (Postfix virtual(8) into the maildirs)")
    group.add_argument("--delivery-concurrency", type=int, metavar="N",
                       help="parallel deliveries into the domain "
                            "(virtual_destination_concurrency_limit) [20]")
    group.add_argument("--delivery-processes", type=int, metavar="N",
                       help="virtual delivery processes at most (master.cf maxproc) [100]")
    proxy = parser.add_argument_group("nginx mail proxy")
    proxy.add_argument("--proxy-workers", type=int, default=1, metavar="N",
                       help="worker processes; each holds about 5,000 proxied sessions (two "
                            "connections each, half the open-files limit) [1]")
    accounts = parser.add_argument_group("accounts")
    accounts.add_argument("--users", type=int, default=USER_COUNT, metavar="N",
                          help=f"accounts user0001..userN, each maildir created at start "
                               f"(default: {USER_COUNT})")
    accounts.add_argument("--layout", choices=("flat", "hashed"), default="flat",
                          help="maildirs as <domain>/<user> (flat, default) or "
                               "<domain>/<last 2>/<2 before>/<user> (hashed)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `stack` command (with its actions) to a parent parser's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("services", nargs="*", metavar="SERVICE",
                        help=f"services to act on (default: all): {', '.join(SERVICES)}")
    common.add_argument("--dir", default=str(default_run_dir()), metavar="PATH",
                        help=f"run folder for configs, logs, pid files and maildirs "
                             f"(default: {default_run_dir()}; env {RUN_DIR_ENV})")
    common.add_argument("--json", action="store_true", help="print the states as JSON")

    limits = argparse.ArgumentParser(add_help=False)
    group = limits.add_argument_group("Dovecot limits (unset = Dovecot's default)")
    group.add_argument("--process-limit", type=int, metavar="N",
                       help="imap/pop3 processes at most [1024]; beyond it LOGIN hangs ~10 s "
                            "then the connection closes")
    group.add_argument("--client-limit", type=int, metavar="N",
                       help="clients per imap/pop3 process [1]; needs --service-count 0")
    group.add_argument("--service-count", type=int, metavar="N",
                       help="clients a process serves before exiting [1]; 0 = unlimited")
    group.add_argument("--max-userip-connections", type=int, metavar="N",
                       help="sessions per user and client IP [10]; beyond it NO [LIMIT]")
    group.add_argument("--default-client-limit", type=int, metavar="N",
                       help="clients of auth/anvil/stats/log... [1000]; past it logins slow down")
    group.add_argument("--login-process-limit", type=int, metavar="N",
                       help="imap-login/pop3-login processes [100]; past it BYE queue full")
    group.add_argument("--login-service-count", type=int, metavar="N",
                       help="connections per login process [1]; 0 = high-performance mode")
    _mail_options(limits)
    starting = argparse.ArgumentParser(add_help=False)
    starting.add_argument("--no-install", action="store_true",
                          help="do not apt-get install missing packages")
    starting.add_argument("--timeout", type=float, default=20.0, metavar="SECONDS",
                          help="how long each daemon may take to accept connections "
                               "(default: 20)")
    deps = argparse.ArgumentParser(add_help=False)
    deps.add_argument("--no-deps", action="store_true",
                      help="only the named services, not the ones they talk to "
                           "(one server per container)")
    placement = argparse.ArgumentParser(add_help=False)
    where = placement.add_argument_group("addresses (for containers; defaults suit one machine)")
    where.add_argument("--listen", default="127.0.0.1", metavar="ADDR",
                       help="address every server binds (default: 127.0.0.1)")
    where.add_argument("--backend", default="127.0.0.1", metavar="IP",
                       help="IPv4 address where proxies and Roundcube reach Dovecot")
    where.add_argument("--smtp-host", default="127.0.0.1", metavar="HOST",
                       help="where Roundcube sends mail (default: 127.0.0.1)")

    fmt = argparse.RawDescriptionHelpFormatter
    stack = subparsers.add_parser("stack", help="start/stop the real Debian mail server stack",
                                  description=_DESCRIPTION, epilog=_EPILOG, formatter_class=fmt)
    actions = stack.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("install", parents=[common, deps],
                       help="apt-get install the packages the services need (root)",
                       description="Install the Debian packages of the services (all by "
                                   "default) that are missing, non-interactively, as root.")
    actions.add_parser("up", parents=[common, deps, limits, starting, placement],
                       help="start services (idempotent); restarts one whose config changed",
                       description="Start the services and what they need. A service already "
                                   "running with the same config is left alone; one whose "
                                   "config changed (e.g. other limits) is restarted. Fails "
                                   "naming the service and its log when one does not come up.")
    actions.add_parser("down", parents=[common], help="stop what the stack started",
                       description="Stop every process group this stack started (by its pid "
                                   "records) and nothing else. Exit 1 if a port still listens.")
    actions.add_parser("status", parents=[common], help="pids and ports of each service",
                       description="Show each service's pids and listening ports. Exit 3 when "
                                   "any requested service is not running.")
    actions.add_parser("render", parents=[common, limits, placement],
                       help="write the configs only (used by docker/)",
                       description="Write every config into --dir without starting anything.")
    actions.add_parser("run", parents=[common, deps, limits, starting, placement],
                       help="up in the foreground until SIGTERM, then down (containers)",
                       description="Start the services, stay in the foreground, and stop them "
                                   "on SIGTERM/SIGINT or when one of their daemons exits.")
    stack.set_defaults(func=_handle)
