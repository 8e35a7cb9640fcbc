"""The embedded target's delivery queue, as the target itself counts it: copies accepted and
waiting for their delivery delay (`LocalDelivery.counters.queue`, a counter, not a scan).

The target runs in its own process and rewrites its stats file once a second
(`embedded/stats.py`); reading that file is the whole cost of a sample. The file is rewritten
in place, so a read may catch it half-written: then it is read once more.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["embedded_queue_counts"]


def _read(path: Path) -> dict[str, int] | None:
    try:
        stats = json.loads(path.read_bytes())
        delivery = stats["servers"]["delivery"]
        return {"waiting": int(delivery["queue"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def embedded_queue_counts(stats_file: Path) -> dict[str, int] | None:
    """Copies the embedded target holds for delivery now (None: no such file yet, or a target
    that does not deliver)."""
    return _read(stats_file) or _read(stats_file)
