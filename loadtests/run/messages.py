"""What the master and the worker processes of a distributed run exchange: the job a worker
reads on stdin, and the names of Locust's custom messages between them."""

from __future__ import annotations

import json

from loadtests.profiles import Profile
from loadtests.targets import Target

__all__ = ["FINAL", "FINISH", "HELLO", "REPORT_KEY", "START", "job_for_worker"]

START, FINISH, FINAL = "mailswarm_start", "mailswarm_finish", "mailswarm_final"
HELLO = "mailswarm_hello"  # worker -> master once connected: {index, of, host, pid}
REPORT_KEY = "mailswarm"  # a worker's records and counters in Locust's report_to_master data


def job_for_worker(profile: Profile, target: Target, *, allow_remote: bool, workers: int,
                   index: int, arrival_seed: str) -> str:
    """The JSON a worker reads on stdin (the target's password included, in clear)."""
    target_data = target.model_dump(mode="json")
    target_data["password"] = target.secret()
    target_data.pop("password_env", None)
    return json.dumps({"profile": profile.model_dump(mode="json"), "target": target_data,
                       "allow_remote": allow_remote, "workers": workers, "index": index,
                       "arrival_seed": arrival_seed})
