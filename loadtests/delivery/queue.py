"""The delivery queue of a Postfix instance, counted from its queue directories (no `postqueue`
process per sample, no privileges beyond reading the directories): files in `incoming`,
`active`, `deferred` and `maildrop`, hashed subdirectories included."""

from __future__ import annotations

import os

__all__ = ["POSTFIX_QUEUES", "postfix_queue_counts"]

POSTFIX_QUEUES = ("incoming", "active", "deferred", "maildrop")


def _files(path: str) -> int:
    count = 0
    try:
        entries = list(os.scandir(path))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return 0
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            count += _files(entry.path)
        else:
            count += 1
    return count


def postfix_queue_counts(queue_directory: str) -> dict[str, int]:
    """Messages in each queue of the Postfix whose `queue_directory` this is."""
    return {name: _files(os.path.join(queue_directory, name)) for name in POSTFIX_QUEUES}
