"""The command line of distributed runs: `mailswarm worker` (`register(subparsers)`) and the
master's flags of `mailswarm run` (`add_master_arguments`, checked by `check_master_arguments`,
turned into RunOptions fields by `master_options`)."""

from __future__ import annotations

import argparse
import textwrap
from typing import Any

from loadtests.run.options import DEFAULT_WORKER_TIMEOUT
from loadtests.targets import is_loopback

__all__ = ["DEFAULT_MASTER_PORT", "DEFAULT_WORKER_TIMEOUT", "add_master_arguments",
           "check_master_arguments", "master_options", "register"]

DEFAULT_MASTER_PORT = 5557  # Locust's

_CREDENTIALS = (
    "The master sends each worker its job over Locust's messaging (ZeroMQ, neither encrypted "
    "nor authenticated): the profile and the target file, the target's password included. "
    "Whoever reaches the master's port while it waits for workers can join and read it: keep "
    "it on loopback or a private network (a non-loopback address needs --allow-remote).")

_WORKER_EPILOG = f"""\
examples:
  mailswarm run profiles/smtp-50mps.yaml --master --expect-workers 2 --master-bind 10.0.0.1:5557 \\
      --allow-remote                      on the master's host, then on two others:
  mailswarm worker --master 10.0.0.1:5557 --allow-remote

A worker needs no profile or target file.
{textwrap.fill(_CREDENTIALS, 96)}
The run starts when all the expected workers have joined; a worker arriving later is not let in
(the stream records it as late, and the summary says it got no share of the load).
A worker quits when its run ends, and at once when its master is gone (no heartbeat answer for
--master-timeout seconds).

exit status: 0 the run ended, 1 the master could not be reached or turned this worker away,
2 bad options, 3 the master was lost mid-run.
"""


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def add_master_arguments(run: argparse.ArgumentParser) -> None:
    """`--master`, `--expect-workers`, `--master-bind` on `mailswarm run`."""
    run.add_argument("--master", action="store_true",
                     help="be the master of workers started by hand (`mailswarm worker "
                          "--master HOST:PORT`, on this or other hosts); " + _CREDENTIALS)
    run.add_argument("--expect-workers", type=int, default=0, metavar="N",
                     help="with --master: start the run once N workers have joined; the load "
                          "is split into N parts")
    run.add_argument("--master-bind", type=_host_port, metavar="HOST:PORT",
                     help=f"with --master: listen there (default 127.0.0.1:{DEFAULT_MASTER_PORT})")
    run.add_argument("--worker-timeout", type=float, default=DEFAULT_WORKER_TIMEOUT,
                     metavar="SECONDS",
                     help="with --master or --workers: a worker silent this long (no heartbeat) "
                          "is lost; a worker on a saturated host can fall silent for seconds "
                          f"and still be running (default {DEFAULT_WORKER_TIMEOUT:g}, 2 to 600)")


def check_master_arguments(args: argparse.Namespace) -> list[str]:
    """What is wrong with the master's flags (empty when nothing)."""
    problems = []
    if args.master:
        if not 1 <= args.expect_workers <= 64:
            problems.append("--expect-workers: between 1 and 64 with --master")
        if args.workers:
            problems.append("--master and --workers: one or the other (--workers N starts N "
                            "local workers itself)")
        if args.master_bind and not (args.allow_remote or is_loopback(args.master_bind[0])):
            problems.append(f"--master-bind: {args.master_bind[0]} is not a loopback address; "
                            "workers joining there receive the target's password (pass "
                            "--allow-remote if the network is yours)")
    elif args.expect_workers or args.master_bind:
        problems.append("--expect-workers and --master-bind need --master")
    if not 2 <= args.worker_timeout <= 600:
        problems.append("--worker-timeout: between 2 and 600 seconds")
    return problems


def master_options(args: argparse.Namespace) -> dict[str, Any]:
    """RunOptions fields of the master's flags."""
    if not args.master:
        return {"worker_timeout": args.worker_timeout}
    return {"expect_workers": args.expect_workers, "worker_timeout": args.worker_timeout,
            "master_bind": args.master_bind or ("127.0.0.1", DEFAULT_MASTER_PORT)}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "worker", help="join a `mailswarm run --master` as one of its workers",
        description="Join a master (`mailswarm run PROFILE --master --expect-workers N`) and run "
                    "this worker's part of the load it sends.",
        epilog=_WORKER_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--master", type=_host_port, required=True, metavar="HOST:PORT",
                   help="the master's --master-bind address")
    p.add_argument("--master-timeout", type=float, default=5.0, metavar="SECONDS",
                   help="quit when the master has not answered a heartbeat for this long "
                        "(default 5)")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a master off 127.0.0.0/8 and ::1 (it sends the target's "
                        "password over an unencrypted connection)")
    p.set_defaults(func=_cmd_worker)


def _cmd_worker(args: argparse.Namespace) -> int:
    import sys

    host, port = args.master
    if not (args.allow_remote or is_loopback(host)):
        print(f"mailswarm worker: {host} is not a loopback address; the master sends the "
              "target's password in clear (pass --allow-remote if the network is yours)",
              file=sys.stderr)
        return 2
    if args.master_timeout <= 0:
        print("mailswarm worker: --master-timeout must be positive", file=sys.stderr)
        return 2
    from loadtests.run.worker import run_worker  # patches the standard library for gevent

    return run_worker(host, port, master_timeout=args.master_timeout)
