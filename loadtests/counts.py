"""`SessionCounts`: sessions (or connections) of one kind, counted the same way by the load
generator (its session gauge) and by the embedded target's servers.

Imports nothing but the standard library, so both sides use it: the generator without the
target's code, the target without Locust. Each side keeps the JSON names its records and stats
files always had: `as_dict(names)` renames the fields on the way out (e.g. a listener's `opened`
is `accepted` in the target's stats).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["SessionCounts"]


@dataclass
class SessionCounts:
    """Open now, the most open at once, opened in all, failed to open (refused), and ended by the
    other side (dropped). Not locked: a caller counting from several threads holds its lock."""

    open: int = 0
    peak: int = 0
    opened: int = 0
    failed: int = 0
    dropped: int = 0

    def opening(self) -> None:
        """One more session is open."""
        self.open += 1
        self.opened += 1
        self.peak = max(self.peak, self.open)

    def closed(self) -> None:
        """One session ended (count `dropped` apart when the other side ended it)."""
        self.open -= 1

    def now_open(self, count: int) -> None:
        """The number open, where it is sampled rather than counted (e.g. a server's table)."""
        self.open = count
        self.peak = max(self.peak, count)

    def as_dict(self, names: Mapping[str, str]) -> dict[str, int]:
        """The fields `names` maps (field -> JSON key), under those keys."""
        return {key: getattr(self, field) for field, key in names.items()}
