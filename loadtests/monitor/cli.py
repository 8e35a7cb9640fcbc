"""`mailswarm agent` and `mailswarm doctor`: `register(subparsers)` adds both commands."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

from loadtests.configfile import ConfigError
from loadtests.targets import ProcessRef, is_loopback, load_target

__all__ = ["parse_listen", "register"]

_AGENT_EPILOG = """\
examples:
  mailswarm agent --target profiles/targets/stack.yaml
      monitor every endpoint's `monitor:` processes; serve on 127.0.0.1:9101
  mailswarm agent --pid-file /run/dovecot/master.pid --port 143 --name dovecot
  mailswarm agent --process-name nginx --listen 0.0.0.0:9101 --allow-remote
  curl -s 127.0.0.1:9101/samples | python3 -m json.tool
  curl -s 127.0.0.1:9101/metrics

endpoints: /samples (one fresh sample, JSON), /metrics (Prometheus text), /doctor (host limits).
"""

_DOCTOR_EPILOG = """\
examples:
  mailswarm doctor                              this host as a load generator
  mailswarm doctor --connections 20000          judged for 20,000 concurrent connections
  mailswarm doctor --connections 60000 --source-addresses 4   from 4 source addresses
  mailswarm doctor --agent http://127.0.0.1:9101    also the target host behind an agent
exit status: 0 every limit allows --connections, 1 some limit is low, 2 the agent failed.
"""


def parse_listen(text: str, allow_remote: bool = False) -> tuple[str, int]:
    """`HOST:PORT` (or `[v6]:PORT`) -> (host, port); non-loopback hosts need allow_remote."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9101")
    if not allow_remote and not is_loopback(host):
        raise ValueError(f"--listen {text!r}: {host} is not a loopback address; the agent shows "
                         f"process and socket details, pass --allow-remote if you mean it")
    return host, int(port)


def _agent_targets(args: argparse.Namespace) -> tuple[dict[str, list[ProcessRef]], list[int]]:
    named: dict[str, list[ProcessRef]] = {}
    ports: set[int] = set(args.tcp_port or [])
    if args.target is not None:
        from loadtests.monitor.groups import monitor_groups, target_ports

        target = load_target(args.target)
        named = monitor_groups(target)
        ports.update(target_ports(target))
    refs = ([ProcessRef(pid=p) for p in args.pid or []]
            + [ProcessRef(pid_file=Path(p)) for p in args.pid_file or []]
            + [ProcessRef(process_name=n) for n in args.process_name or []]
            + [ProcessRef(listen_port=p) for p in args.port or []])
    if refs:
        named.setdefault(args.name, []).extend(refs)
    ports.update(args.port or [])
    return named, sorted(ports)


def _cmd_agent(args: argparse.Namespace) -> int:
    from loadtests.monitor.agent import make_server
    from loadtests.monitor.sampler import Sampler

    try:
        host, port = parse_listen(args.listen, args.allow_remote)
        named, ports = _agent_targets(args)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"mailswarm agent: {exc}", file=sys.stderr)
        return 2
    if not named:
        print("mailswarm agent: nothing to monitor: give --target FILE (with monitor: lists) or "
              "--pid/--pid-file/--process-name/--port", file=sys.stderr)
        return 2
    sampler = Sampler(named, ports, generator=False, pss_every=args.pss_every,
                      host_states=True)  # the `tcp_sockets` gauge: the whole host
    log = (lambda line: print(line, file=sys.stderr)) if args.verbose else None
    try:
        server = make_server(sampler, host, port, log=log)
    except OSError as exc:
        print(f"mailswarm agent: cannot listen on {args.listen}: {exc.strerror}", file=sys.stderr)
        return 1

    def _stop(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    bound = server.server_address
    print(json.dumps({"agent": f"http://{args.listen.rpartition(':')[0]}:{bound[1]}",
                      "targets": {n: [r.model_dump(mode="json", exclude_none=True) for r in rs]
                                  for n, rs in named.items()}, "ports": ports}), flush=True)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from loadtests.monitor.agent import AgentError, fetch_agent_doctor
    from loadtests.monitor.doctor import collect_values, evaluate, render, verdict

    reports: list[dict[str, Any]] = []
    here = collect_values()
    reports.append({"role": "generator", "values": here})
    status = 0
    if args.agent:
        try:
            reports.append({"role": "target", "values": fetch_agent_doctor(args.agent,
                                                                           args.timeout)})
        except AgentError as exc:
            print(f"mailswarm doctor: {exc}", file=sys.stderr)
            status = 2
    for rep in reports:
        checks = evaluate(rep["values"], rep["role"], args.connections, args.source_addresses)
        rep["checks"] = [c.as_dict() for c in checks]
        rep["verdict"] = verdict(checks, rep["role"], args.connections)
        if any(c.status == "warn" for c in checks) and status == 0:
            status = 1
        if not args.json:
            where = f" via {args.agent}" if rep["role"] == "target" else ""
            print(render(checks, f"{rep['role']} host {rep['values'].get('host')}{where} "
                                 f"(kernel {rep['values'].get('kernel')}):",
                         rep["role"], args.connections))
            print()
    if args.json:
        print(json.dumps({"connections": args.connections, "hosts": reports}, indent=2))
    return status


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `agent` and `doctor` commands to a parent parser's subparsers."""
    fmt = argparse.RawDescriptionHelpFormatter
    agent = subparsers.add_parser(
        "agent", help="serve this host's target samples over HTTP (JSON and Prometheus)",
        description="Run on a target host: sample the monitored server process trees (fds, "
                    "threads, processes, memory), TCP sockets on their ports and listen-queue "
                    "overflows, and serve them over HTTP for `mailswarm run` or Prometheus.",
        epilog=_AGENT_EPILOG, formatter_class=fmt)
    agent.add_argument("--listen", default="127.0.0.1:9101", metavar="HOST:PORT",
                       help="address to serve on (default 127.0.0.1:9101; port 0 = any free)")
    agent.add_argument("--allow-remote", action="store_true",
                       help="allow a non-loopback --listen (exposes process and socket details)")
    agent.add_argument("--target", type=Path, metavar="FILE",
                       help="target file: monitor every endpoint's `monitor:` processes")
    what = agent.add_argument_group("processes to monitor as one target (--name), repeatable")
    what.add_argument("--name", default="target", help="their target name (default: target)")
    what.add_argument("--pid", type=int, action="append", metavar="PID")
    what.add_argument("--pid-file", action="append", metavar="FILE")
    what.add_argument("--process-name", action="append", metavar="NAME",
                      help="the oldest process of that name (and its tree)")
    what.add_argument("--port", type=int, action="append", metavar="PORT",
                      help="the process listening on PORT (its TCP sockets are counted too)")
    agent.add_argument("--tcp-port", type=int, action="append", metavar="PORT",
                       help="also count TCP sockets on this port (repeatable)")
    agent.add_argument("--pss-every", type=int, default=10, metavar="N",
                       help="refresh each process's PSS every N samples (0 = off; default 10)")
    agent.add_argument("--verbose", action="store_true", help="log each request to stderr")
    agent.set_defaults(func=_cmd_agent)

    doctor = subparsers.add_parser(
        "doctor", help="check this host's (and a target host's) limits for many connections",
        description="Read the limits that cap concurrent connections — open files per process, "
                    "fs.file-max, threads and pids, somaxconn, SYN backlog, the local port "
                    "range, TIME_WAIT settings — and say what each allows and what to change.",
        epilog=_DOCTOR_EPILOG, formatter_class=fmt)
    doctor.add_argument("--agent", metavar="URL",
                        help="also check the target host through its `mailswarm agent`")
    doctor.add_argument("--connections", type=int, default=10_000, metavar="N",
                        help="concurrent connections to judge the limits against "
                             "(default 10,000)")
    doctor.add_argument("--source-addresses", type=int, default=1, metavar="N",
                        help="local addresses the generator connects from to one server port "
                             "(an endpoint's source_addresses): each has the whole port range "
                             "(default: 1)")
    doctor.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS",
                        help="agent timeout (default 5)")
    doctor.add_argument("--json", action="store_true", help="print values and checks as JSON")
    doctor.set_defaults(func=_cmd_doctor)
