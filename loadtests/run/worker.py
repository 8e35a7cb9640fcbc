"""A worker process of a distributed run (`mailswarm run --workers N`).

Started by the master (loadtests.run.distributed) with `python -m loadtests.run.worker
--master-port P`, it reads its job (profile, target with credentials, options) as JSON on stdin —
never on the command line, where `ps` would show the password. It runs its share of the users
and of each open-model rate, and ships its records, pacer counters and open sessions to the
master through Locust's messaging: with every `report_to_master` (each second) and once more,
in full, when the master asks it to finish (`mailswarm_finish` -> `mailswarm_final`).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import locust.runners  # noqa: E402
from locust.env import Environment  # noqa: E402
from locust.event import Events  # noqa: E402

from loadtests import bridge  # noqa: E402
from loadtests.delivery.sent import sent_listener  # noqa: E402
from loadtests.profiles import Profile  # noqa: E402
from loadtests.run.messages import FINAL, FINISH, REPORT_KEY, START  # noqa: E402
from loadtests.run.pacers import Pacers  # noqa: E402
from loadtests.schedule.loadplan import build_load  # noqa: E402
from loadtests.schedule.sessions import gauge  # noqa: E402
from loadtests.stream import req_dict, to_dict, user_error_record  # noqa: E402
from loadtests.targets import Target  # noqa: E402

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtests.run.worker", description=__doc__)
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
    classes, by_name = build_load(profile, target, allow_remote=job["allow_remote"],
                                  rate_share=1 / job["workers"], seed_salt=f"/w{job['index']}")
    pacers = Pacers(by_name)
    buffer: list[dict[str, Any]] = []

    def payload() -> dict[str, Any]:
        records = buffer[:]
        buffer.clear()
        return {"records": records, "pacers": pacers.snapshots(),
                "sessions": gauge.snapshot()}

    events = Events()
    events.request.add_listener(lambda **kw: buffer.append(req_dict(**kw)))
    if profile.delivery is not None:  # accepted messages, for the master's delivery tracker
        events.request.add_listener(sent_listener(lambda rec: buffer.append(to_dict(rec)),
                                                  profile.delivery.scenarios))
    events.user_error.add_listener(lambda user_instance, exception, tb, **_: buffer.append(
        to_dict(user_error_record(user_instance, exception))))
    events.report_to_master.add_listener(
        lambda client_id, data, **_: data.__setitem__(REPORT_KEY, payload()))
    env = Environment(user_classes=classes, events=events)
    runner = env.create_worker_runner(args.master_host, args.master_port)

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
    runner.greenlet.join()
    bridge.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
