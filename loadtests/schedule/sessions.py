"""Open sessions per protocol in this process: the users count them, the runner samples them
once a second into the stream, the summary reports peak, mean, opened and dropped."""

from __future__ import annotations

from collections import defaultdict

from loadtests.counts import SessionCounts

__all__ = ["SessionGauge", "gauge"]

FIELDS = {"open": "open", "peak": "peak", "opened": "opened", "dropped": "dropped"}
"""What a tick record holds per protocol."""


class SessionGauge:
    def __init__(self) -> None:
        self._counts: dict[str, SessionCounts] = defaultdict(SessionCounts)

    def opening(self, protocol: str) -> None:
        self._counts[protocol].opening()

    def closed(self, protocol: str) -> None:
        self._counts[protocol].closed()

    def dropped(self, protocol: str) -> None:
        """A session of `protocol` was ended by the server (count it after `closed`)."""
        self._counts[protocol].dropped += 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {p: c.as_dict(FIELDS) for p, c in self._counts.items()}

    def reset(self) -> None:
        self._counts.clear()


gauge = SessionGauge()
"""The process's gauge (one run at a time per process)."""
