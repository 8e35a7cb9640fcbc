"""Open sessions per protocol in this process: the users count them, the runner samples them
once a second into the stream, the summary reports peak, mean, opened and dropped."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

__all__ = ["SessionGauge", "gauge"]


@dataclass
class _Counts:
    open: int = 0
    peak: int = 0
    opened: int = 0
    dropped: int = 0


class SessionGauge:
    def __init__(self) -> None:
        self._counts: dict[str, _Counts] = defaultdict(_Counts)

    def opening(self, protocol: str) -> None:
        c = self._counts[protocol]
        c.open += 1
        c.opened += 1
        c.peak = max(c.peak, c.open)

    def closed(self, protocol: str) -> None:
        self._counts[protocol].open -= 1

    def dropped(self, protocol: str) -> None:
        """A session of `protocol` was ended by the server (count it after `closed`)."""
        self._counts[protocol].dropped += 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {p: {"open": c.open, "peak": c.peak, "opened": c.opened, "dropped": c.dropped}
                for p, c in self._counts.items()}

    def reset(self) -> None:
        self._counts.clear()


gauge = SessionGauge()
"""The process's gauge (one run at a time per process)."""
