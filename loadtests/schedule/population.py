"""The seed's population model: how many sessions a user population makes at once.

"if an average check mail operation takes 15 seconds, and users check their accounts 2 times
each during 12 peak hours, then with 100,000 POP3 users you can expect 100,000 * 2 * 15 s /
(12 * 60 * 60 s) = ~70 concurrent POP3 sessions." That is Little's law: concurrency = arrival
rate x session time, with arrival rate = users x checks / peak window. Pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from loadtests.units import format_duration

__all__ = ["Derived", "derive"]


@dataclass(frozen=True)
class Derived:
    rate_per_s: float  # sessions started per second, on average over the peak window
    concurrency: float  # mean sessions open at once
    lines: tuple[str, ...]  # the derivation, for people


def derive(users: int, checks_per_user: float, session_time: float, peak_window: float) -> Derived:
    if min(users, checks_per_user, session_time, peak_window) <= 0:
        raise ValueError("users, checks, session time and peak window must all be positive")
    sessions = users * checks_per_user
    rate = sessions / peak_window
    concurrency = rate * session_time
    lines = (
        f"{users:,} users x {checks_per_user:g} checks in a {format_duration(peak_window)} peak "
        f"window = {sessions:,.0f} sessions = {rate:.3f} sessions/s",
        f"{rate:.3f} sessions/s x {session_time:g} s per session = {concurrency:.1f} "
        "concurrent sessions on average",
    )
    return Derived(rate, concurrency, lines)
