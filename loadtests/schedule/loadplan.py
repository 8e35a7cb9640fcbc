"""The Locust user classes and open-model pacers of a profile, built the same way in a local run,
in the master (which only needs the classes and their counts) and in each worker process."""

from __future__ import annotations

import random

from locust import User

from loadtests.profiles import ArrivalSchedule, ClosedSchedule, Profile, RampSchedule
from loadtests.schedule.pacing import ArrivalPacer
from loadtests.targets import Target
from loadtests.users import user_class_for

__all__ = ["arrival_rng", "build_load", "spawn_rate"]


def build_load(profile: Profile, target: Target, *, allow_remote: bool,
               part: tuple[int, int] = (0, 1), arrival_seed: str | None = None
               ) -> tuple[list[type[User]], dict[str, ArrivalPacer]]:
    """User classes (one per scenario, counts fixed by the schedule; typed as Locust's
    Environment takes them) and pacers by scenario, each taking `part` of its schedule.
    `arrival_seed` (default: the profile's seed) seeds the arrival processes: the processes
    sharing a schedule must share it."""
    if arrival_seed is None and profile.seed is not None:
        arrival_seed = str(profile.seed)
    pacers: dict[str, ArrivalPacer] = {}
    classes: list[type[User]] = []
    for sc in profile.scenarios:
        pacer = None
        if isinstance(sc.schedule, ArrivalSchedule):
            pacer = ArrivalPacer(sc.schedule, arrival_rng(arrival_seed, sc.name), part)
            pacers[sc.name] = pacer
        classes.append(user_class_for(sc, target, pacer=pacer, allow_remote=allow_remote,
                                      seed=profile.seed))
    return classes, pacers


def arrival_rng(seed: str | int | None, scenario: str) -> random.Random:
    """The arrival process's random source of `scenario`: one per (seed, scenario name), so a
    profile run, its workers and the equivalent locustfile (loadtests.locust) walk the same
    schedule whatever the order of the scenarios; fresh without a seed."""
    return random.Random(f"{seed}/{scenario}") if seed is not None else random.Random()


def spawn_rate(profile: Profile) -> float:
    """Locust has one spawn rate for all users: the sum of the scenarios' own."""
    return sum(_spawn_rate(sc.schedule) for sc in profile.scenarios)


def _spawn_rate(schedule: ArrivalSchedule | ClosedSchedule | RampSchedule) -> float:
    if isinstance(schedule, ArrivalSchedule):
        return float(schedule.max_in_flight)  # channels are idle until the pacer starts
    if isinstance(schedule, RampSchedule):
        return schedule.spawn_rate
    return schedule.spawn_rate or float(schedule.users)
