"""The parts of a run: the shared sequence and its two drivers.

`core` holds what every run does (header record, spawn, load phase, tick loop, drain, end record,
summary); `local` runs the users in this process; `distributed` makes this process a Locust
master over N worker processes (`worker`: started here, or by hand with `mailswarm worker`),
`workers` its book of them (joined, lost, what a lost one did not send), with `messages` the
job and message names both sides share and `cli` the command line of both. `pacers` starts,
stops and drains a process's open-model pacers; `sources` sets the clients' source addresses;
`options` and `progress` are the caller's side (`progress` imports no Locust, for `mailswarm
report`). `loadtests.runner.run_profile` picks the driver.
"""

__all__: list[str] = []
