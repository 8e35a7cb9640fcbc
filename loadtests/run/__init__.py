"""The parts of a run: the shared sequence and its two drivers.

`core` holds what every run does (header record, spawn, load phase, tick loop, drain, end record,
summary); `local` runs the users in this process; `distributed` makes this process a Locust
master over N `worker` processes (`python -m loadtests.run.worker`), with `messages` the job and
message names both sides share. `pacers` starts, stops and drains a process's open-model pacers;
`options` and `progress` are the caller's side (`progress` imports no Locust, for `mailswarm
report`). `loadtests.runner.run_profile` picks the driver.
"""

__all__: list[str] = []
