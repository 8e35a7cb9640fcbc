"""What a run reports each second to whoever shows progress (no Locust import: the console
reads it without loading the generator)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Progress"]


@dataclass(frozen=True)
class Progress:
    """What the runner reports each second to whoever shows progress."""

    elapsed: float
    duration: float
    phase: str  # "spawning", "running", "draining"
    users: int
    requests: int
    failures: int
    sessions: int
    scenarios: dict[str, dict[str, int]]
