"""Parsing of the human units used in profiles and on the command line: durations and sizes."""

from __future__ import annotations

import math
import re

__all__ = ["MAX_DURATION", "MAX_SIZE", "format_duration", "parse_duration", "parse_size"]

MAX_DURATION = 30 * 86400.0
"""The longest duration anything accepts: 30 days, in seconds (a soak run fits; `.inf` does not)."""
MAX_SIZE = 1024**3
"""The largest size anything accepts: 1 GiB (message sizes have their own, lower, bound)."""

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|min|s|m|h|d)")
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1024, "kb": 1000, "kib": 1024,
    "m": 1024**2, "mb": 1000**2, "mib": 1024**2,
    "g": 1024**3, "gb": 1000**3, "gib": 1024**3,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def _in_range(number: float, value: object, what: str, limit: float, limit_text: str) -> float:
    """`number` when it is from 0 to `limit`, else ValueError naming `value` (NaN included)."""
    if math.isnan(number):
        raise ValueError(f"a {what} must be a number, not NaN")
    if number < 0:
        raise ValueError(f"a {what} cannot be negative")
    if number > limit:
        raise ValueError(f"{value!r} is too {'long' if what == 'duration' else 'large'}: at "
                         f"most {limit_text}")
    return number


def _finite_duration(seconds: float, value: object) -> float:
    return _in_range(seconds, value, "duration", MAX_DURATION, "30 days")


def parse_duration(value: str | float | int) -> float:
    """Seconds from `30`, `30s`, `250ms`, `5m`, `1h30m` or `2h`, from 0 to MAX_DURATION (30
    days). Raises ValueError (also for infinity, NaN and anything longer)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h")
    if isinstance(value, int | float):
        return _finite_duration(float(value), value)
    text = str(value).strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return _finite_duration(float(text), value)
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos and text[pos:match.start()].strip():
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or text[pos:].strip():
        raise ValueError(f"{value!r} is not a duration (examples: 30s, 250ms, 5m, 1h30m)")
    return _finite_duration(total, value)


def format_duration(seconds: float) -> str:
    """`90.0` -> `1m30s`; below one minute, seconds with at most one decimal."""
    if seconds < 60:
        return f"{seconds:.1f}s".replace(".0s", "s")
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    out = f"{hours}h" if hours else ""
    out += f"{minutes}m" if minutes else ""
    return out + (f"{secs}s" if secs else "")


def _bounded_size(size: float, value: object) -> int:
    return int(_in_range(size, value, "size", MAX_SIZE, "1GiB"))


def parse_size(value: str | int | float) -> int:
    """Bytes from `2048`, `2KiB`, `20KB` (1000), `1MiB`, `4k` (1024), `1GiB`, from 0 to MAX_SIZE
    (1 GiB). Raises ValueError (also for infinity, NaN and anything larger)."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 2048, 2KiB or 20KB")
    if isinstance(value, int | float):
        return _bounded_size(value, value)
    match = _SIZE.fullmatch(str(value).strip().lower())
    if not match or match.group(2) not in _SIZE_UNITS:
        raise ValueError(f"{value!r} is not a size (examples: 2048, 2KiB, 20KB, 1MiB)")
    return _bounded_size(float(match.group(1)) * _SIZE_UNITS[match.group(2)], value)
