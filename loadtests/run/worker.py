"""A worker process of a distributed run (`mailswarm run --workers N`).

Started by the master (loadtests.run.distributed) with `python -m loadtests.run.worker
--master-port P`, it reads its job (profile, target with credentials, options) as JSON on stdin —
never on the command line, where `ps` would show the password. It runs its share of the users
and of each open-model rate, and ships its records, pacer counters and open sessions to the
master through Locust's messaging: with every `report_to_master` (each second) and once more,
in full, when the master asks it to finish (`mailswarm_finish` -> `mailswarm_final`).
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
import socket  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import locust.runners  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.event import Events  # noqa: E402

from loadtests import bridge  # noqa: E402
from loadtests.profiles import Profile  # noqa: E402
from loadtests.run.messages import FINAL, FINISH, HELLO, REPORT_KEY, START  # noqa: E402
from loadtests.run.pacers import Pacers  # noqa: E402
from loadtests.schedule.loadplan import build_load  # noqa: E402
from loadtests.schedule.sessions import gauge  # noqa: E402
from loadtests.stream import req_dict, to_dict, user_error_record  # noqa: E402
from loadtests.targets import Target  # noqa: E402

__all__ = ["main", "watch_master"]

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.run.worker", description=__doc__)
    parser.add_argument("--master-port", type=int, required=True)
    parser.add_argument("--master-host", default="127.0.0.1")
    parser.add_argument("--parent-pid", type=int, help="quit when this process is gone")
    parser.add_argument("--master-timeout", type=float, default=MASTER_TIMEOUT)
    args = parser.parse_args(argv)
    job = json.loads(sys.stdin.read())
    logging.getLogger("locust").setLevel(logging.ERROR)
    locust.runners.WORKER_REPORT_INTERVAL = 1.0  # ship records every second, not every 3

    profile = Profile.model_validate(job["profile"])
    target = Target.model_validate(job["target"])
    bridge.start()
    gauge.reset()
    part = (job["index"], job["workers"])
    classes, by_name = build_load(profile, target, allow_remote=job["allow_remote"], part=part,
                                  arrival_seed=job["arrival_seed"])
    pacers = Pacers(by_name)
    buffer: list[dict[str, Any]] = []

    def payload() -> dict[str, Any]:
        records = buffer[:]
        buffer.clear()
        return {"records": records, "pacers": pacers.snapshots(),
                "sessions": gauge.snapshot(), "users": runner.user_count}

    events = Events()
    events.request.add_listener(lambda **kw: buffer.append(req_dict(**kw)))
    events.user_error.add_listener(lambda user_instance, exception, tb, **_: buffer.append(
        to_dict(user_error_record(user_instance, exception))))
    events.report_to_master.add_listener(
        lambda client_id, data, **_: data.__setitem__(REPORT_KEY, payload()))
    env = Environment(user_classes=classes, events=events)
    runner = env.create_worker_runner(args.master_host, args.master_port)
    gevent.spawn(watch_master, runner, args.parent_pid, args.master_timeout)

    def finish(drain: float) -> None:
        pacers.stop()
        pacers.drain(drain)
        runner.stop()
        pacers.close()
        runner.send_message(FINAL, payload())

    runner.register_message(START, lambda environment, msg, **_: pacers.start(
        msg.data["duration"]))
    runner.register_message(FINISH, lambda environment, msg, **_: gevent.spawn(
        finish, msg.data["drain"]))
    runner.send_message(HELLO, {"index": part[0], "of": part[1], "host": socket.gethostname(),
                                "pid": os.getpid()})
    runner.greenlet.join()
    bridge.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
