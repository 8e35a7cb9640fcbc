"""Runs a profile against a target on Locust, writing the results stream.

With `workers` = 0 everything runs in this process (loadtests.run.local); with N > 0 this
process is a Locust master and N local worker processes run the users, each with every N-th
session of every arrival schedule (loadtests.run.distributed); with `expect_workers` N, the
same with N workers started by hand (`mailswarm worker --master HOST:PORT`). Both follow the
sequence of loadtests.run.core.
"""

from __future__ import annotations

from collections.abc import Callable

from loadtests.profiles import Profile
from loadtests.run.core import Driver, Run, RunParts
from loadtests.run.distributed import MasterDriver
from loadtests.run.local import LocalDriver
from loadtests.run.options import RunError, RunOptions, RunResult, worker_count
from loadtests.run.progress import Progress
from loadtests.targets import Target

__all__ = ["Progress", "RunError", "RunOptions", "RunResult", "run_profile"]


def run_profile(profile: Profile, target: Target, options: RunOptions) -> RunResult:
    """Run `profile` against `target` to its end (or `options.stop`); the summary is written."""
    driver: Callable[[RunParts], Driver] = MasterDriver if worker_count(options) else LocalDriver
    return Run(profile, target, options, driver).execute()
