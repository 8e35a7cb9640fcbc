"""asyncio's SSL protocol made lighter per connection: one receive buffer for all of this
process's SSL transports, and less kept per connection.

asyncio's `SSLProtocol` (CPython 3.11) gives every TLS connection its own 256 KiB receive
buffer, zero-filled when the connection is made and so resident at once: 20x what a whole idle
plaintext IMAP session costs the generator. The transport fills it (`get_buffer`, then
`recv_into`) and the protocol copies what came into its OpenSSL memory BIO (`buffer_updated`)
right away, in the same callback, without yielding: so every connection of a thread (or
greenlet) can use the same buffer, and reads stay 256 KiB. The protocol also keeps less per
connection than asyncio's (bench/imap_idle, idle TLS IMAP sessions):
- no decoded peer certificate, cipher tuple or compression in the extra info (made from the
  SSL object when `get_extra_info` asks), a list for the write backlog instead of a deque
  (~3.5 KiB);
- its state in slots, and its app transport's: asyncio's 37 attributes overflowed the class's
  shared dict keys (30), so each connection had a full dict of its own (~1.5 KiB);
- the server's handshake flight written to the incoming memory BIO in 512-byte slices, each
  processed before the next (OpenSSL's memory BIO keeps the largest buffer it held, x4/3, for
  the connection's life; after the handshake data is written as it comes);
- a heap trim after handshakes (clients/tls_trim.py: the pages their transient allocations
  freed, given back; at most once a second and 1% of the loop's time).
What goes over the wire is asyncio's: the same handshake, records and close_notify.
`share_receive_buffers()` makes asyncio build its SSL transports with
`SharedBufferSSLProtocol` from then on (idempotent; the generator calls it when it builds a
client TLS context: the embedded target's process keeps asyncio's own).
"""

from __future__ import annotations

import threading
from asyncio import sslproto
from typing import Any

from loadtests.clients.tls_trim import handshake_done

__all__ = ["SharedBufferSSLProtocol", "share_receive_buffers"]

_LOCAL = threading.local()  # greenlet-local once gevent patched threading: still exclusive
_READ_SIZE: int = sslproto.SSLProtocol.max_size  # asyncio's 256 KiB
_NO_BUFFER = bytearray()
_HANDSHAKE_SLICE = 512  # bytes written to the incoming BIO at once during the handshake
_DO_HANDSHAKE = sslproto.SSLProtocolState.DO_HANDSHAKE


def _receive_buffer() -> memoryview:
    """This thread's (greenlet's) receive buffer: made on first use, kept."""
    view: memoryview | None = getattr(_LOCAL, "view", None)
    if view is None:
        view = _LOCAL.view = memoryview(bytearray(_READ_SIZE))
    return view


_STATE = (  # every attribute asyncio's SSLProtocol (3.11) sets on an instance
    "_app_protocol", "_app_protocol_buffer_updated", "_app_protocol_get_buffer",
    "_app_protocol_is_buffer", "_app_reading_paused", "_app_state", "_app_transport",
    "_app_transport_created", "_app_writing_paused", "_conn_lost", "_eof_received", "_extra",
    "_handshake_start_time", "_handshake_timeout_handle", "_incoming", "_incoming_high_water",
    "_incoming_low_water", "_loop", "_outgoing", "_outgoing_high_water", "_outgoing_low_water",
    "_server_hostname", "_server_side", "_shutdown_timeout_handle", "_ssl_buffer",
    "_ssl_buffer_view", "_ssl_handshake_timeout", "_ssl_reading_paused",
    "_ssl_shutdown_timeout", "_ssl_writing_paused", "_sslcontext", "_sslobj", "_state",
    "_transport", "_waiter", "_write_backlog", "_write_buffer_size")


class _Transport(sslproto._SSLProtocolTransport):
    """asyncio's SSL app transport with its two attributes in slots (no instance dict)."""

    __slots__ = ("_closed", "_ssl_protocol")


class SharedBufferSSLProtocol(sslproto.SSLProtocol):
    """asyncio's SSLProtocol receiving into the thread's shared buffer (see the module)."""

    # asyncio's class has no __slots__, so each instance had a dict; its 37 attributes are more
    # than a class's shared dict keys hold (30), so every instance had a full dict of its own
    # (1.6 KiB). Slots here take every assignment (a slot wins over the instance dict), and
    # the instance dict is never made.
    __slots__ = _STATE
    _state: Any  # asyncio's handshake/wrapped/flushing/shutdown state (not in the stubs)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # the parent's class-level defaults, which these slots now hide
        self._handshake_start_time = self._handshake_timeout_handle = None
        self._shutdown_timeout_handle = None
        self._sslobj = None  # max_size is 0 until the parent made the SSL object (below)
        super().__init__(*args, **kwargs)
        # the parent's write backlog is a deque (a 64-slot block, ~0.6 KiB, per connection);
        # it is only appended to, read and deleted at [0], and cleared: a list does that
        self._write_backlog = []  # type: ignore[assignment]
        self._ssl_buffer = _NO_BUFFER  # the parent's own (empty) one; get_buffer gives ours
        self._ssl_buffer_view = _receive_buffer()

    @property
    def max_size(self) -> int:  # type: ignore[override]
        """How much one read asks for: the parent's 256 KiB; 0 while the parent's __init__
        sizes its own receive buffer (before it makes the SSL object), so it allocates none."""
        return 0 if self._sslobj is None else _READ_SIZE

    def _get_app_transport(self) -> Any:
        if self._app_transport is None:
            if self._app_transport_created:
                raise RuntimeError("Creating _SSLProtocolTransport twice")
            self._app_transport = _Transport(self._loop, self)
            self._app_transport_created = True
        return self._app_transport

    def get_buffer(self, n: int) -> memoryview:
        # buffer_updated(), called right after recv_into() fills it, copies from this view
        view = self._ssl_buffer_view = _receive_buffer()
        return view

    def buffer_updated(self, nbytes: int) -> None:
        # OpenSSL's memory BIO keeps the largest buffer it ever held (x4/3) for the whole
        # connection; the server's first flight (certificate chain...) is the largest write a
        # mostly idle connection sees, so during the handshake the BIO gets it in slices, each
        # processed before the next (as if it came in small TCP segments)
        if nbytes <= _HANDSHAKE_SLICE or self._state is not _DO_HANDSHAKE:
            super().buffer_updated(nbytes)
            return
        view = self._ssl_buffer_view
        try:
            start = 0
            while start < nbytes:
                end = (min(start + _HANDSHAKE_SLICE, nbytes) if self._state is _DO_HANDSHAKE
                       else nbytes)  # done: the rest in one piece
                self._ssl_buffer_view = view[start:end]
                super().buffer_updated(end - start)
                start = end
        finally:
            self._ssl_buffer_view = view

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        # asyncio stores the peer certificate as getpeercert()'s dict (~2.5 KiB of Python
        # objects, ~40 blocks), the cipher() tuple and compression() in every connection's
        # extra info; nothing here reads them there, so they are made only when asked for
        # (for the parent's call only, the SSL object's class answers None to them: a class
        # swap, as an attribute set on the object would give it a dict of its own to keep)
        sslobj = self._sslobj
        cls = type(sslobj)
        sslobj.__class__ = _undecoded(cls)
        try:
            super()._on_handshake_complete(handshake_exc)
        finally:
            sslobj.__class__ = cls
        for name in _LAZY:
            self._extra.pop(name, None)
        handshake_done(self._loop)  # the pages its transient allocations freed: given back

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
    if not issubclass(sslproto.SSLProtocol, SharedBufferSSLProtocol):  # ours or a subclass
        sslproto.SSLProtocol = SharedBufferSSLProtocol  # type: ignore[misc]
