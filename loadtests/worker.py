"""A worker process of a distributed run (`mailswarm run --workers N`).

Started by the master's runner with `python -m loadtests.worker --master-port P --index I`, it
reads its job (profile, target with credentials, options) as JSON on stdin — never on the command
line, where `ps` would show the password. It runs its share of the users and of each open-model
rate, and ships its records, pacer counters and open sessions to the master through Locust's
messaging: with every `report_to_master` (each second) and once more, in full, when the master
asks it to finish (`mailswarm_finish` -> `mailswarm_final`). Records travel as the dicts of
their stream lines (`loadtests.stream.to_dict`); the master decodes them, adds `worker` and
writes them to its one stream.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import locust.runners  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.event import Events  # noqa: E402

from loadtests import bridge  # noqa: E402
from loadtests.profiles import Profile  # noqa: E402
from loadtests.schedule.loadplan import build_load  # noqa: E402
from loadtests.schedule.sessions import gauge  # noqa: E402
from loadtests.stream import req_dict, to_dict, user_error_record  # noqa: E402
from loadtests.targets import Target  # noqa: E402

__all__ = ["FINAL", "FINISH", "START", "job_for_worker", "main"]

START, FINISH, FINAL = "mailswarm_start", "mailswarm_finish", "mailswarm_final"
REPORT_KEY = "mailswarm"


def job_for_worker(profile: Profile, target: Target, *, allow_remote: bool, workers: int,
                   index: int) -> str:
    """The JSON a worker reads on stdin (the target's password included, in clear)."""
    target_data = target.model_dump(mode="json")
    target_data["password"] = target.secret()
    target_data.pop("password_env", None)
    return json.dumps({"profile": profile.model_dump(mode="json"), "target": target_data,
                       "allow_remote": allow_remote, "workers": workers, "index": index})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.worker", description=__doc__)
    parser.add_argument("--master-port", type=int, required=True)
    parser.add_argument("--master-host", default="127.0.0.1")
    args = parser.parse_args(argv)
    job = json.loads(sys.stdin.read())
    logging.getLogger("locust").setLevel(logging.ERROR)
    locust.runners.WORKER_REPORT_INTERVAL = 1.0  # ship records every second, not every 3

    profile = Profile.model_validate(job["profile"])
    target = Target.model_validate(job["target"])
    bridge.start()
    gauge.reset()
    classes, pacers = build_load(profile, target, allow_remote=job["allow_remote"],
                                 rate_share=1 / job["workers"], seed_salt=f"/w{job['index']}")
    buffer: list[dict[str, Any]] = []

    def payload() -> dict[str, Any]:
        records = buffer[:]
        buffer.clear()
        return {"records": records, "pacers": {n: p.snapshot() for n, p in pacers.items()},
                "sessions": gauge.snapshot()}

    events = Events()
    events.request.add_listener(lambda **kw: buffer.append(req_dict(**kw)))
    events.user_error.add_listener(lambda user_instance, exception, tb, **_: buffer.append(
        to_dict(user_error_record(user_instance, exception))))
    events.report_to_master.add_listener(
        lambda client_id, data, **_: data.__setitem__(REPORT_KEY, payload()))
    env = Environment(user_classes=classes, events=events)
    runner = env.create_worker_runner(args.master_host, args.master_port)

    def on_start(environment: Environment, msg: Any, **_: Any) -> None:
        for pacer in pacers.values():
            pacer.start(msg.data["duration"])

    def finish(drain: float) -> None:
        for pacer in pacers.values():
            pacer.stop()
        deadline = time.monotonic() + drain
        while any(p.in_flight for p in pacers.values()) and time.monotonic() < deadline:
            gevent.sleep(0.05)
        runner.stop()
        for pacer in pacers.values():
            pacer.close()
        runner.send_message(FINAL, payload())

    runner.register_message(START, on_start)
    runner.register_message(FINISH, lambda environment, msg, **_: gevent.spawn(
        finish, msg.data["drain"]))
    runner.greenlet.join()
    bridge.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
