"""A worker process of a distributed run: `mailswarm worker --master HOST:PORT`, or started by
`mailswarm run --workers N` (`python -m loadtests.run.worker --master 127.0.0.1:P --job-stdin`).

A worker started by hand gets its job (profile, target with credentials, its part of the load)
from the master over Locust's messaging once it has joined; one started by a local master reads
it as JSON on stdin — never on the command line, where `ps` would show the password. It runs its
part of the users and every N-th session of each open-model schedule, and ships its records,
pacer counters and open sessions to the master with every `report_to_master` (each second) and
once more, in full, when the master asks it to finish (`mailswarm_finish` -> `mailswarm_final`).
It quits at once when the master is gone: its parent process changed (`--parent-pid`, a local
worker) or no heartbeat answer came from the master for `--master-timeout` seconds.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import locust.runners  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.event import Events  # noqa: E402
from locust.rpc import Message  # noqa: E402

from loadtests import bridge  # noqa: E402
from loadtests.delivery.sent import sent_listener  # noqa: E402
from loadtests.monitor.lag import LagProbe  # noqa: E402
from loadtests.profiles import Profile  # noqa: E402
from loadtests.run.messages import HELLO, JOB, READY, REFUSED  # noqa: E402
from loadtests.run.pacers import Pacers  # noqa: E402
from loadtests.run.shipping import WorkerLoad  # noqa: E402
from loadtests.run.sources import use_source_addresses  # noqa: E402
from loadtests.schedule.loadplan import build_load  # noqa: E402
from loadtests.schedule.sessions import gauge  # noqa: E402
from loadtests.stream import Sent, to_dict  # noqa: E402
from loadtests.targets import Target  # noqa: E402

__all__ = ["EXIT_MASTER_LOST", "MASTER_TIMEOUT", "main", "run_worker", "watch_master"]

MASTER_TIMEOUT = 5.0  # seconds without the master's heartbeat answer: it is gone
EXIT_MASTER_LOST = 3


def watch_master(runner: locust.runners.WorkerRunner, parent_pid: int | None,
                 timeout: float) -> None:
    """Quit the process (at once: nobody is left to report to) when the master is gone."""
    while True:
        gevent.sleep(0.25)
        last = runner.last_heartbeat_timestamp
        if parent_pid is not None and os.getppid() != parent_pid:
            why = f"the master process (pid {parent_pid}) is gone"
        elif last is not None and time.time() - last > timeout:
            why = f"no heartbeat from the master for {timeout:g} s"
        else:
            continue
        print(f"mailswarm worker: {why}; quitting", file=sys.stderr, flush=True)
        os._exit(EXIT_MASTER_LOST)


class _Load(WorkerLoad):
    """This worker's part of the load, once its job is known."""

    def __init__(self, env: Environment) -> None:
        super().__init__()
        self.env = env
        self.part = (0, 1)
        self.tracked: frozenset[str] | None = None  # scenarios whose messages are tracked
        self.lag = LagProbe(lambda: self.pacers.by_name.values())  # shipped with each report

    def payload(self, users: int) -> dict[str, Any]:
        """The report to the master, with this process's event-loop lag."""
        return {**super().payload(users), "lag": self.lag.take()}

    def take_job(self, job: dict[str, Any]) -> None:
        profile = Profile.model_validate(job["profile"])
        target = Target.model_validate(job["target"])
        self.redactor.add(target.secret())
        self.part = (job["index"], job["workers"])
        use_source_addresses(target)
        classes, by_name = build_load(profile, target, allow_remote=job["allow_remote"],
                                      part=self.part, arrival_seed=job["arrival_seed"])
        self.env.user_classes[:] = classes  # before the master's first spawn message
        self.pacers = Pacers(by_name)
        delivery = profile.delivery
        self.tracked = None if delivery is None else frozenset(delivery.scenarios)

    def track(self, record: Sent) -> None:
        """An accepted message's `sent` record, shipped when the profile tracks its delivery
        (for its scenarios, or all when it names none)."""
        if self.tracked is not None and (not self.tracked or record.sc in self.tracked):
            self.buffer.append(to_dict(record))


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # one socket per session
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_worker(host: str, port: int, *, job: dict[str, Any] | None = None,
               parent_pid: int | None = None, master_timeout: float = MASTER_TIMEOUT) -> int:
    """Join the master at host:port, run its part of the load, return the exit status."""
    _raise_fd_limit()
    logging.getLogger("locust").setLevel(logging.ERROR)
    locust.runners.WORKER_REPORT_INTERVAL = 1.0  # ship records every second, not every 3
    bridge.start()
    gauge.reset()
    events = Events()
    env = Environment(user_classes=[], events=events)
    load = _Load(env)
    load.lag.start()
    if job is not None:
        load.take_job(job)
    try:
        runner = env.create_worker_runner(host, port)
    except ConnectionError:
        print(f"mailswarm worker: could not reach the master at {host}:{port}", file=sys.stderr)
        return 1
    load.ship(events, runner)
    # accepted messages as `sent` records, for the master's delivery tracker (when tracked)
    events.request.add_listener(sent_listener(load.track))
    gevent.spawn(watch_master, runner, parent_pid, master_timeout)

    def on_job(environment: Environment, msg: Any, **_: Any) -> None:
        load.take_job(msg.data)
        runner.send_message(READY, {"index": load.part[0], "of": load.part[1]})

    def on_refused(environment: Environment, msg: Any, **_: Any) -> None:
        print(f"mailswarm worker: the master turned this worker away: {msg.data['reason']}",
              file=sys.stderr, flush=True)
        runner.client.send(Message("quit", None, runner.client_id))
        os._exit(1)

    runner.register_message(JOB, on_job)
    runner.register_message(REFUSED, on_refused)
    hello: dict[str, Any] = {"host": socket.gethostname(), "pid": os.getpid()}
    if job is not None:
        hello.update(index=load.part[0], of=load.part[1])
    runner.send_message(HELLO, hello)
    runner.greenlet.join()
    bridge.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.run.worker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--master", required=True, metavar="HOST:PORT")
    parser.add_argument("--job-stdin", action="store_true", help="read the job on stdin")
    parser.add_argument("--parent-pid", type=int, help="quit when this process is gone")
    parser.add_argument("--master-timeout", type=float, default=MASTER_TIMEOUT)
    args = parser.parse_args(argv)
    host, _, port = args.master.rpartition(":")
    job = json.loads(sys.stdin.read()) if args.job_stdin else None
    return run_worker(host.strip("[]"), int(port), job=job, parent_pid=args.parent_pid,
                      master_timeout=args.master_timeout)


if __name__ == "__main__":
    sys.exit(main())
