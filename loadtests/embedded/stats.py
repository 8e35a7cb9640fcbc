"""Counters of the embedded target, written as JSON so the runner can put them in the summary."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TargetStats"]


@dataclass
class TargetStats:
    smtp_connections: int = 0
    smtp_messages: int = 0
    smtp_recipients: int = 0
    smtp_bytes: int = 0
    smtp_rejected_recipients: int = 0
    smtp_faults: int = 0
    dns_queries: int = 0
    listeners: dict[str, dict[str, Any]] = field(default_factory=dict)  # per protocol counters
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)  # the POP3/IMAP servers' own

    def write(self, fd: int) -> None:
        """Rewrite the file open on `fd` with the current counters. The descriptor is opened
        once: a target at its open-files limit (on purpose) must still report, not crash."""
        data = json.dumps(asdict(self)).encode()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))

    @classmethod
    def read(cls, path: Path) -> TargetStats | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None
