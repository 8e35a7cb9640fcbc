"""asyncio's SSL protocol made lighter per connection: one receive buffer for all of this
process's SSL transports, and less kept per connection.

asyncio's `SSLProtocol` (CPython 3.11) gives every TLS connection its own 256 KiB receive
buffer, zero-filled when the connection is made and so resident at once: 20x what a whole idle
plaintext IMAP session costs the generator. The transport fills it (`get_buffer`, then
`recv_into`) and the protocol copies what came into its OpenSSL memory BIO (`buffer_updated`)
right away, in the same callback, without yielding: so every connection of a thread (or
greenlet) can use the same buffer, and reads stay 256 KiB. The protocol also keeps less per
connection than asyncio's: no decoded peer certificate, cipher tuple or compression in the
extra info (made from the SSL object when `get_extra_info` asks), and a list for the write
backlog instead of a deque (bench/imap_idle: ~3.5 KiB less per idle TLS session).
`share_receive_buffers()` makes asyncio build its SSL transports with
`SharedBufferSSLProtocol` from then on (idempotent; the generator calls it when it builds a
client TLS context: the embedded target's process keeps asyncio's own).
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
        # the parent's write backlog is a deque (a 64-slot block, ~0.6 KiB, per connection);
        # it is only appended to, read and deleted at [0], and cleared: a list does that
        self._write_backlog = []  # type: ignore[assignment]

    def get_buffer(self, n: int) -> memoryview:
        # buffer_updated(), called right after recv_into() fills it, copies from this view
        view = self._ssl_buffer_view = _receive_buffer()
        return view

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        # asyncio stores the peer certificate as getpeercert()'s dict (~2.5 KiB of Python
        # objects, ~40 blocks), the cipher() tuple and compression() in every connection's
        # extra info; nothing here reads them there, so they are made only when asked for
        # (for the parent's call only, the SSL object's class answers None to them: a class
        # swap, as an attribute set on the object would give it a dict of its own to keep)
        sslobj = self._sslobj  # type: ignore[attr-defined]
        cls = type(sslobj)
        sslobj.__class__ = _undecoded(cls)
        try:
            super()._on_handshake_complete(handshake_exc)
        finally:
            sslobj.__class__ = cls
        for name in _LAZY:
            self._extra.pop(name, None)

    def _get_extra_info(self, name: str, default: Any = None) -> Any:
        sslobj = self._extra.get("ssl_object")
        if name in _LAZY and sslobj is not None:
            return getattr(sslobj, _LAZY[name])()
        return super()._get_extra_info(name, default)


_LAZY = {"peercert": "getpeercert", "cipher": "cipher", "compression": "compression"}
"""Extra info made from the SSL object when asked for: name -> its SSLObject method."""


_UNDECODED: dict[type, type] = {}


def _undecoded(cls: type) -> type:
    """`cls` (ssl.SSLObject or a subclass) whose getpeercert, cipher and compression return
    None (made once per class)."""
    sub = _UNDECODED.get(cls)
    if sub is None:
        sub = _UNDECODED[cls] = type(f"Undecoded{cls.__name__}", (cls,),
                                     dict.fromkeys(_LAZY.values(), _not_now))
    return sub


def _not_now(self: Any, *args: Any) -> None:
    return None


def share_receive_buffers() -> None:
    """asyncio's SSL transports made from now on in this process share receive buffers."""
    if sslproto.SSLProtocol is not SharedBufferSSLProtocol:
        sslproto.SSLProtocol = SharedBufferSSLProtocol  # type: ignore[misc]
