"""The `mailswarm` command: run, report, target (and stack, when that part is installed)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loadtests import __version__
from loadtests.configfile import ConfigError
from loadtests.units import parse_duration

if TYPE_CHECKING:  # imported where used: `mailswarm report` must not load Locust
    from loadtests.profiles import Profile
    from loadtests.runner import RunResult
    from loadtests.targets import Target

__all__ = ["build_parser", "main"]

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_QOS_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
EXIT_WORKER_LOST = 4

_RUN_EPILOG = """\
examples:
  mailswarm run profiles/smtp-50mps.yaml
      50 SMTP messages/s, each after an MX lookup, for 30 s against the embedded target
      (started in its own process on 127.0.0.1 and stopped afterwards)
  mailswarm run profiles/smtp-50mps.yaml --target profiles/targets/stack.yaml --duration 2m
      the same against the real Postfix + unbound stack (see `mailswarm stack up`)

output (in --out, default reports/<profile>-<time>/):
  results.jsonl  every request, session and per-second tick, written while the run goes
  summary.json   computed from results.jsonl at the end, with the QoS verdict
  report.html    plots and tables, one self-contained file (+ CSV files for each table);
                 `mailswarm report DIR` rebuilds summary, report and CSVs from the stream

exit status: 0 run completed and passed its QoS, 1 run failed, 2 bad profile/target/options,
3 run completed but failed its QoS (profile `qos:`; not for a ceiling search, which ends on
a failing step by design), 4 a worker process was lost mid-run (its part of the load was not
sent: see `workers` in summary.json), 130 interrupted.
Ctrl-C stops the run early and keeps everything measured so far.
"""


def _duration_arg(text: str) -> float:
    """A load duration: more than 0 and at most 30 days."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError("the duration must be more than 0")
    return seconds


def _out_problem(out: Path) -> str | None:
    """Why `out` cannot be a new run's output folder, or None."""
    if out.exists() and not out.is_dir():
        return f"--out: {out} exists and is not a folder; choose a new folder"
    if (out / "results.jsonl").exists():
        return f"--out: {out} already holds a run's results; choose a new folder"
    parent = next((p for p in out.absolute().parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        return f"--out: {parent} is not a folder, so {out} cannot be made"
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailswarm",
        description="Load-generation benchmark harness for mail servers (SMTP, DNS, IMAP, POP3, "
                    "webmail), on Locust. Finds how much load a server holds and what stops it.",
    )
    parser.add_argument("--version", action="version", version=f"mailswarm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run", help="run a load profile against a target (embedded by default)",
        description="Run a load profile. Without --target, the embedded target (SMTP, DNS, "
                    "POP3, IMAP, HTTP webmail) is started in a separate process on 127.0.0.1 "
                    "for the run.",
        epilog=_RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("profile", type=Path, help="profile YAML file (see profiles/)")
    run.add_argument("--target", type=Path, metavar="FILE",
                     help="target YAML file naming the servers' endpoints and users")
    run.add_argument("--endpoint", metavar="NAME",
                     help="use this endpoint of the target file for every scenario of its "
                          "protocol, e.g. imap-nginx or imap-perdition in the stack's target")
    run.add_argument("--duration", type=_duration_arg, metavar="TIME",
                     help="override the profile's duration, e.g. 30s, 5m, 1h")
    run.add_argument("--out", type=Path, metavar="DIR",
                     help="output folder (default reports/<profile>-<YYYYmmdd-HHMMSS>)")
    run.add_argument("--allow-remote", action="store_true",
                     help="allow targets off 127.0.0.0/8 and ::1 (only for servers you may load)")
    run.add_argument("--insecure", action="store_true",
                     help="do not verify the servers' TLS certificates on any endpoint (the "
                          "console, summary and report say so)")
    run.add_argument("--workers", type=int, default=0, metavar="N",
                     help="run the users in N local worker processes (Locust master/worker); "
                          "needed past ~19,000 connections, the open-files limit of one process")
    from loadtests.run.cli import add_master_arguments

    add_master_arguments(run)
    run.add_argument("--web", metavar="HOST:PORT",
                     help="also serve Locust's web UI there (e.g. 127.0.0.1:8089), with a "
                          "Target tab showing the target's fds, threads, processes, memory")
    run.add_argument("--quiet", action="store_true", help="no live progress line")
    run.set_defaults(func=_cmd_run)

    report = sub.add_parser(
        "report", help="rebuild summary.json from a run's results stream",
        description="Recompute OUT/summary.json from OUT/results.jsonl (also for a run that "
                    "was killed) and print the summary.")
    report.add_argument("out", type=Path, metavar="DIR", help="a run's output folder")
    report.add_argument("--json", action="store_true", help="print summary.json instead")
    report.set_defaults(func=_cmd_report)

    from loadtests.embedded.__main__ import add_arguments as add_target_arguments

    target = sub.add_parser(
        "target", help="run the embedded target in the foreground (Ctrl-C stops it)",
        description="Run the embedded target: SMTP (aiosmtpd) accepting mail for "
                    "user0001..userNNNN@DOMAIN, DNS answering MX DOMAIN -> mail.DOMAIN -> "
                    "127.0.0.1, and POP3, IMAP and HTTP webmail serving a generated mailbox per "
                    "user, with optional delays and injected faults. Prints one JSON line with "
                    "its ports when ready.")
    add_target_arguments(target)
    target.set_defaults(func=_cmd_target)

    from loadtests.locust.export import register as register_locustfile
    from loadtests.monitor.cli import register as register_monitor
    from loadtests.report.cli import register as register_compare
    from loadtests.run.cli import register as register_worker
    from loadtests.stack.cli import register as register_stack

    register_compare(sub)
    register_monitor(sub)  # agent, doctor
    register_locustfile(sub)
    register_stack(sub)
    register_worker(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    return int(args.func(args))


def _cmd_target(args: argparse.Namespace) -> int:
    from loadtests.embedded.__main__ import run_foreground

    return run_foreground(args)


def _cmd_report(args: argparse.Namespace) -> int:
    from loadtests.console import format_summary
    from loadtests.report import finish_run
    from loadtests.stream import RESULTS_FILE, StreamError

    if not (args.out / RESULTS_FILE).is_file():
        print(f"mailswarm report: no {RESULTS_FILE} in {args.out}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        summary = finish_run(args.out)  # with the QoS settings of the run's header
    except StreamError as exc:
        print(f"mailswarm report: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    print(f"\nreport: {args.out / 'report.html'}", file=sys.stderr)
    return EXIT_OK


def _host_port(text: str) -> tuple[str, int] | None:
    """`HOST:PORT` as (host, port), or None when it is not one."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def _embedded_problems(data: Any) -> list[str]:
    """What is wrong with a profile's `embedded:` section (the embedded target's settings), as
    the profile loader's problem lines: the profile itself knows nothing of the embedded target."""
    from loadtests.configfile import validate_model
    from loadtests.embedded.config import EmbeddedSettings

    raw = data.get("embedded") if isinstance(data, dict) else None
    if raw is not None and not isinstance(raw, dict):
        return []  # the profile's own check says it must be a mapping
    try:
        validate_model(EmbeddedSettings, {} if raw is None else raw, "embedded")
    except ConfigError as exc:
        return [f"embedded{'' if p.startswith('(top level)') else '.'}"
                f"{p.removeprefix('(top level)')}" for p in exc.problems]
    return []


def _load_inputs(args: argparse.Namespace) -> tuple[Profile, Target | None]:
    """Profile and target, or the complete list of what is wrong with them (ConfigError)."""
    from loadtests.profiles import check_against_target, check_embedded_delivery, load_profile
    from loadtests.targets import check_loopback, is_loopback, load_target

    problems: list[str] = []
    profile = target = None
    try:
        profile = load_profile(args.profile, checks=[_embedded_problems])
    except ConfigError as exc:
        problems += [f"{exc.source}: {p}" for p in exc.problems]
    if args.target is None and profile is not None:
        problems += [f"{args.profile}: {p}" for p in check_embedded_delivery(profile)]
    if args.target is None and profile is not None and not args.allow_remote:
        host = str(profile.embedded.get("host", "127.0.0.1"))
        if not is_loopback(host):
            problems.append(f"{args.profile}: embedded.host: {host} is not a loopback address; "
                            "the embedded target (one shared password) listens on loopback "
                            "only (pass --allow-remote if you mean it)")
    if args.target is not None:
        try:
            target = load_target(args.target)
        except ConfigError as exc:
            problems += [f"{exc.source}: {p}" for p in exc.problems]
        if target is not None and args.endpoint:
            chosen = target.endpoint(args.endpoint)
            if chosen is None:
                problems.append(f"--endpoint: the target has no endpoint {args.endpoint!r}")
            elif profile is not None:
                profile = profile.model_copy(update={"scenarios": [
                    sc.model_copy(update={"endpoint": args.endpoint})
                    if sc.protocol == chosen.protocol else sc for sc in profile.scenarios]})
        if target is not None and not args.allow_remote:
            problems += [f"{args.target}: {p} (pass --allow-remote if you mean it)"
                         for p in check_loopback(target)]
        if profile is not None and target is not None:
            problems += [f"{args.profile}: {p}" for p in check_against_target(profile, target)]
    out_problem = _out_problem(args.out) if args.out is not None else None
    if out_problem is not None:
        problems.append(out_problem)
    if args.web is not None:
        web = _host_port(args.web)
        if web is None:
            problems.append(f"--web: expected HOST:PORT, got {args.web!r}")
        elif not (args.allow_remote or is_loopback(web[0])):
            problems.append(f"--web: {web[0]} is not a loopback address (pass --allow-remote)")
    if args.workers < 0 or args.workers > 64:
        problems.append("--workers: between 0 and 64")
    from loadtests.run.cli import check_master_arguments

    problems += check_master_arguments(args)
    if problems or profile is None:
        raise ConfigError("mailswarm run", problems)
    return profile, target


def _finish_interrupted(out: Path, profile: Profile) -> RunResult:
    """The result of a run stopped at once: summary and report from the stream as it is."""
    from loadtests.report import finish_run
    from loadtests.runner import RunResult

    return RunResult(out, finish_run(out, profile.qos), "interrupted")


def _cmd_run(args: argparse.Namespace) -> int:
    from gevent import monkey

    monkey.patch_all()  # before Locust and the clients create sockets
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # one socket per session: take all the open files the system allows us
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        profile, target = _load_inputs(args)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        print("nothing was sent.", file=sys.stderr)
        return EXIT_BAD_INPUT

    import signal

    import gevent

    from loadtests.console import ProgressPrinter, describe_plan, format_summary
    from loadtests.embedded import EmbeddedSettings, EmbeddedTarget, TargetStartError
    from loadtests.run.cli import master_options
    from loadtests.runner import RunError, RunOptions, run_profile

    out = args.out or Path("reports") / f"{profile.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    printer = None if args.quiet else ProgressPrinter()
    options = RunOptions(out_dir=out, duration=args.duration, allow_remote=args.allow_remote,
                         workers=args.workers, profile_file=str(args.profile),
                         on_progress=printer,
                         web=_host_port(args.web) if args.web else None,
                         **master_options(args))

    main_greenlet = gevent.get_hub().parent
    assert main_greenlet is not None  # the hub runs under the main greenlet
    presses, running = 0, False

    def _interrupt() -> None:
        """In the hub: the second Ctrl-C raised in the main greenlet, while it runs the profile
        (elsewhere a stop request is enough); from the hub, so no greenlet traceback is shown."""
        if running:
            main_greenlet.throw(KeyboardInterrupt)

    def _on_signal() -> None:
        """1st: stop gracefully (sessions in flight end). 2nd: stop at once — interrupt what the
        run waits for; the end record, summary and report are still written. 3rd: exit now;
        the stream holds all but its last second and `mailswarm report` rebuilds the rest."""
        nonlocal presses
        presses += 1
        if presses == 1:
            print("\nstopping: finishing the run and writing what was measured "
                  "(Ctrl-C again to stop at once)", file=sys.stderr)
            options.stop.set()
        elif presses == 2:
            print("\nstopping now: writing the summary and report of what was measured "
                  "(Ctrl-C again to exit without them)", file=sys.stderr)
            options.stop.set()
            gevent.get_hub().loop.run_callback(_interrupt)
        else:
            print(f"\nexiting: `mailswarm report {out}` rebuilds the summary and report",
                  file=sys.stderr)
            os._exit(EXIT_INTERRUPTED)

    handlers = [gevent.signal_handler(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)]
    embedded = None
    try:
        if target is None:
            embedded = EmbeddedTarget(EmbeddedSettings.model_validate(profile.embedded), out)
            try:
                target = embedded.start()
            except TargetStartError as exc:
                print(f"mailswarm run: {exc}", file=sys.stderr)
                return EXIT_FAILED
            print(f"embedded target (pid {embedded.pid}): SMTP "
                  f"{target.endpoints['smtp'].address}, DNS {target.endpoints['dns'].address}",
                  file=sys.stderr)

            def _embedded_stats() -> dict[str, object]:
                embedded.stop()  # the load is over; on exit it writes its final counters
                stats = embedded.stats()
                return {"embedded_target": stats.__dict__ if stats else None}

            options.extra_end = _embedded_stats
            options.embedded_stats = embedded.stats_file  # its delivery queue, sampled
        if args.insecure:
            target = target.insecure()
        if target.tls_verify_off():
            print(f"WARNING: TLS verification off for {', '.join(target.tls_verify_off())}: "
                  "the servers' certificates are not checked", file=sys.stderr)
        duration = options.duration or profile.duration
        print(f"running {profile.name} -> {out}\n{describe_plan(profile, duration)}",
              file=sys.stderr)
        if options.master_bind is not None:
            host, port = options.master_bind
            print(f"waiting for {options.expect_workers} workers: mailswarm worker --master "
                  f"{host}:{port}", file=sys.stderr)
        try:
            running = True
            result = run_profile(profile, target, options)
        except RunError as exc:
            print(f"mailswarm run: {exc}", file=sys.stderr)
            return EXIT_FAILED
        except KeyboardInterrupt:  # a second Ctrl-C: the stream is closed with its end record
            running = False
            result = _finish_interrupted(out, profile)
        finally:
            running = False
        if printer is not None:
            printer.close()
        summary = result.summary  # with the QoS verdict; report.html written beside it
        print(format_summary(summary))
        print(f"\nresults: {out / 'results.jsonl'}\nsummary: {out / 'summary.json'}\n"
              f"report:  {out / 'report.html'}")
    finally:
        for handler in handlers:  # Ctrl-C is ours until everything is printed
            handler.cancel()
        if embedded is not None:
            embedded.stop()
    if result.reason == "interrupted":
        return EXIT_INTERRUPTED
    if (summary.get("workers") or {}).get("lost"):
        return EXIT_WORKER_LOST
    if "ceiling" in summary:  # a ceiling search ends on a failing step by design
        return EXIT_OK
    return EXIT_OK if summary["qos"]["pass"] else EXIT_QOS_FAILED


if __name__ == "__main__":
    sys.exit(main())
