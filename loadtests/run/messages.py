"""What the master and the worker processes of a distributed run exchange: the job (the profile,
the target with its password, the worker's part of the load), and the names of Locust's custom
messages between them.

Joining: a worker connects (Locust's `client_ready`), then sends `HELLO` {host, pid, and, when
it was started with its job on stdin, index and of}; a worker without a job is sent one
(`JOB`) and answers `READY` {index, of} once its users are built, or is turned away (`REFUSED`,
with the reason) when the run has all its workers. The load: `START` {duration}, each report
(`REPORT_KEY` in Locust's report data), `FINISH` {drain} -> `FINAL` (the last report).
"""

from __future__ import annotations

from typing import Any

from loadtests.profiles import Profile
from loadtests.targets import Target

__all__ = ["FINAL", "FINISH", "HELLO", "JOB", "READY", "REFUSED", "REPORT_KEY", "START",
           "job_for_worker"]

START, FINISH, FINAL = "mailswarm_start", "mailswarm_finish", "mailswarm_final"
HELLO, JOB, READY, REFUSED = "mailswarm_hello", "mailswarm_job", "mailswarm_ready", \
    "mailswarm_refused"
REPORT_KEY = "mailswarm"  # a worker's records and counters in Locust's report_to_master data


def job_for_worker(profile: Profile, target: Target, *, allow_remote: bool, workers: int,
                   index: int, arrival_seed: str) -> dict[str, Any]:
    """A worker's job (the target's password included, in clear): it takes the `index`-th of
    `workers` parts of the load, on the arrival schedule seeded with `arrival_seed`."""
    target_data = target.model_dump(mode="json")
    target_data["password"] = target.secret()
    target_data.pop("password_env", None)
    return {"profile": profile.model_dump(mode="json"), "target": target_data,
            "allow_remote": allow_remote, "workers": workers, "index": index,
            "arrival_seed": arrival_seed}
