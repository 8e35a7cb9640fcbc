"""Secrets kept out of the results stream: every text that goes in passes one `Redactor`.

A server may echo what it was sent ("-ERR you said: PASS S3cr3t"); that text becomes a
failure's `err`, then the console, summary.json, report.html and failures.csv. The stream's
writer (and a worker, before shipping records to the master) runs each error text through the
run's `Redactor`, which knows every password the run uses in the forms they travel in: as is,
base64 (AUTH LOGIN), IMAP-quoted, URL-encoded (webmail forms), and any base64 token whose decoded
bytes hold one (AUTH PLAIN's `\\0user\\0password`, whatever the user). Each becomes `[REDACTED]`.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

from loadtests.clients.errors import REDACTED
from loadtests.stream.records import Record, Req, Step, UserError

__all__ = ["MASK", "Redactor"]

MASK = REDACTED  # the same mark the clients use, so a text is masked once, one way
_BASE64_TOKEN = re.compile(r"[A-Za-z0-9+/]{8,}={0,2}")


def _forms(secret: str) -> set[str]:
    """The ways `secret` can appear in a reply that echoes a command."""
    raw = secret.encode()
    imap_quoted = secret.replace("\\", "\\\\").replace('"', '\\"')
    return {secret, imap_quoted, quote(secret, safe=""), quote_plus(secret),
            base64.b64encode(raw).decode(), base64.b64encode(raw).decode().rstrip("=")}


class Redactor:
    """Replaces every known secret in a text with MASK. `add` takes more (later AUTH strings)."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: set[bytes] = set()
        self._forms: list[str] = []
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str | None) -> None:
        """Hide `secret` from now on (ignored when empty or too short to search safely)."""
        if not secret or len(secret) < 3:
            return  # masking "a" everywhere would wreck every text and hide nothing
        self._secrets.add(secret.encode())
        self._forms = sorted(set(self._forms) | _forms(secret), key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(f) for f in self._forms))

    def __bool__(self) -> bool:
        return self._pattern is not None

    def _hides_secret(self, token: str) -> bool:
        try:
            decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True)
        except (binascii.Error, ValueError):
            return False
        return any(s in decoded for s in self._secrets)

    def text(self, value: str) -> str:
        """`value` with every secret (and base64 token holding one) replaced by MASK."""
        if self._pattern is None:
            return value
        value = self._pattern.sub(MASK, value)
        return _BASE64_TOKEN.sub(
            lambda m: MASK if self._hides_secret(m.group()) else m.group(), value)

    def optional(self, value: str | None) -> str | None:
        return None if value is None else self.text(value)

    def record(self, record: Record) -> Record:
        """`record` with the texts a server can fill (error texts) redacted."""
        if self._pattern is None:
            return record
        if isinstance(record, Req) and record.err is not None:
            return dataclasses.replace(record, err=self.text(record.err))
        if isinstance(record, UserError):
            return dataclasses.replace(record, error=self.text(record.error))
        if isinstance(record, Step) and record.errors:
            errors: dict[str, int] = {}
            for text, count in record.errors.items():
                key = self.text(text)
                errors[key] = errors.get(key, 0) + count
            return dataclasses.replace(record, errors=errors)
        return record

    def req_dict(self, shipped: dict[str, Any]) -> dict[str, Any]:
        """A worker's `req` (or `error`) record dict, its error text redacted in place."""
        for key in ("err", "error"):
            if isinstance(shipped.get(key), str):
                shipped[key] = self.text(shipped[key])
        return shipped
