"""A Locust worker's side of mailswarm's measurements: the worker side of `mailswarm run
--workers` (loadtests.run.shipping.WorkerLoad: records redacted and shipped with every report,
`START`, `FINISH` -> `FINAL`), fed from the locustfile's classes. They are configured at their
first spawn, with the master's options: the passwords to redact are learnt then, and at `START`
the pacers of the open-model classes take this worker's part of each schedule
(`mailswarm_parts`, which the master sets per test).
"""

from __future__ import annotations

from typing import Any

from locust.env import Environment

from loadtests.locust.users import LocustfileUser
from loadtests.run.pacers import Pacers
from loadtests.run.shipping import WorkerLoad

__all__ = ["LocustfileLoad", "worker_part"]


def worker_part(environment: Environment) -> tuple[int, int]:
    """This worker's (index, count) part of every open-model schedule, as the master set it."""
    parts = getattr(environment.parsed_options, "mailswarm_parts", None) or {}
    runner = environment.runner
    index, count = parts.get(getattr(runner, "client_id", None), (0, 1))
    return int(index), int(count)


class LocustfileLoad(WorkerLoad):
    """WorkerLoad whose secrets and pacers come from the environment's configured classes."""

    def __init__(self, environment: Environment) -> None:
        super().__init__()
        self.env = environment
        self._known: set[type[LocustfileUser]] = set()

    def configured(self) -> list[type[LocustfileUser]]:
        return [c for c in self.env.user_classes if issubclass(c, LocustfileUser)
                and c.__dict__.get("_configured_by") is self.env]

    def keep(self, record: dict[str, Any]) -> None:
        """A class sends nothing before it is configured: learn its password first."""
        for cls in self.configured():
            if cls not in self._known:
                self._known.add(cls)
                self.redactor.add(cls.target.secret())
        super().keep(record)

    def start(self, duration: float) -> None:
        part = worker_part(self.env)
        pacers = {c.scenario.name: c.pacer for c in self.configured() if c.pacer is not None}
        for pacer in pacers.values():
            pacer.part = part
        self.pacers = Pacers(pacers)
        super().start(duration)
