"""One receive buffer for all of this process's asyncio SSL transports, not one per connection.

asyncio's `SSLProtocol` (CPython 3.11) gives every TLS connection its own 256 KiB receive
buffer, zero-filled when the connection is made and so resident at once: 20x what a whole idle
plaintext IMAP session costs the generator. The transport fills it (`get_buffer`, then
`recv_into`) and the protocol copies what came into its OpenSSL memory BIO (`buffer_updated`)
right away, in the same callback, without yielding: so every connection of a thread (or
greenlet) can use the same buffer, and reads stay 256 KiB. `share_receive_buffers()` makes
asyncio build its SSL transports with `SharedBufferSSLProtocol` from then on (idempotent; the
generator calls it when it builds a client TLS context: the embedded target's process keeps
asyncio's own).
"""

from __future__ import annotations

import threading
from asyncio import sslproto
from typing import Any

__all__ = ["SharedBufferSSLProtocol", "share_receive_buffers"]

_LOCAL = threading.local()  # greenlet-local once gevent patched threading: still exclusive


def _receive_buffer() -> memoryview:
    """This thread's (greenlet's) receive buffer: made on first use, kept."""
    view: memoryview | None = getattr(_LOCAL, "view", None)
    if view is None:
        view = _LOCAL.view = memoryview(bytearray(sslproto.SSLProtocol.max_size))
    return view


class SharedBufferSSLProtocol(sslproto.SSLProtocol):
    """asyncio's SSLProtocol receiving into the thread's shared buffer (see the module)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.max_size = 0  # type: ignore[misc]  # the parent's own receive buffer: empty
        super().__init__(*args, **kwargs)
        del self.max_size  # the class's 256 KiB again, for reads of decrypted data

    def get_buffer(self, n: int) -> memoryview:
        # buffer_updated(), called right after recv_into() fills it, copies from this view
        view = self._ssl_buffer_view = _receive_buffer()
        return view


def share_receive_buffers() -> None:
    """asyncio's SSL transports made from now on in this process share receive buffers."""
    if sslproto.SSLProtocol is not SharedBufferSSLProtocol:
        sslproto.SSLProtocol = SharedBufferSSLProtocol  # type: ignore[misc]
