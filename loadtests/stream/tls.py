"""From Locust's request events to `tls` records: the first `TLS` step of a scenario that shows
a (version, cipher) pair writes one record; later ones cost a name check and a set lookup.

The users put a TLS step's negotiated version and cipher in its context (`tls_version`,
`tls_cipher`; loadtests.users.base); no other request carries them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from loadtests.stream.records import TlsSeen

__all__ = ["tls_listener"]


def tls_listener(sink: Callable[[TlsSeen], None]) -> Callable[..., None]:
    """A listener for `events.request` handing `sink` one `tls` record per (scenario, version,
    cipher) the first time a successful `TLS` step shows it."""
    seen: set[tuple[Any, Any, Any]] = set()

    def on_request(name: str = "", exception: BaseException | None = None,
                   context: dict[str, Any] | None = None, start_time: float | None = None,
                   **_: Any) -> None:
        if name != "TLS" or exception is not None or not context:
            return
        key = (context.get("scenario"), context.get("tls_version"), context.get("tls_cipher"))
        if key[1] is None or key in seen:
            return
        seen.add(key)
        sink(TlsSeen(start_time or time.time(), *key))

    return on_request
