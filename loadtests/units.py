"""Parsing of the human units used in profiles and on the command line: durations and sizes."""

from __future__ import annotations

import re

__all__ = ["format_duration", "parse_duration", "parse_size"]

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|min|s|m|h|d)")
_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1024, "kb": 1000, "kib": 1024,
    "m": 1024**2, "mb": 1000**2, "mib": 1024**2,
}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_duration(value: str | float | int) -> float:
    """Seconds from `30`, `30s`, `250ms`, `5m`, `1h30m` or `2h`. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    text = str(value).strip().lower()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos and text[pos:match.start()].strip():
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or text[pos:].strip():
        raise ValueError(f"{value!r} is not a duration (examples: 30s, 250ms, 5m, 1h30m)")
    return total


def format_duration(seconds: float) -> str:
    """`90.0` -> `1m30s`; below one minute, seconds with at most one decimal."""
    if seconds < 60:
        return f"{seconds:.1f}s".replace(".0s", "s")
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    out = f"{hours}h" if hours else ""
    out += f"{minutes}m" if minutes else ""
    return out + (f"{secs}s" if secs else "")


def parse_size(value: str | int | float) -> int:
    """Bytes from `2048`, `2KiB`, `20KB` (1000), `1MiB`, `4k` (1024). Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 2048, 2KiB or 20KB")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return int(value)
    match = _SIZE.fullmatch(str(value).strip().lower())
    if not match or match.group(2) not in _SIZE_UNITS:
        raise ValueError(f"{value!r} is not a size (examples: 2048, 2KiB, 20KB, 1MiB)")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2)])
