"""The IMAP client's error tree (aiosmtplib-style): every error carries the server's text.

    ImapError
    ├── ImapReplyError        tagged NO / BAD: .command, .result, .text, .code ("LIMIT"...)
    ├── ImapProtocolError     a reply that is not IMAP (garbage greeting, unexpected line)
    ├── ImapConnectError      (also ConnectionError) the TCP connection could not be made
    │   └── ImapConnectTimeout      (also ImapTimeout)
    ├── ImapDisconnected      (also ConnectionError) the server closed the connection
    │   └── ImapByeError      ... after an untagged `* BYE text` (.text)
    └── ImapTimeout           (also TimeoutError)
        └── ImapReadTimeout   no (complete) reply within the read timeout
"""

from __future__ import annotations

import re

__all__ = [
    "ImapByeError",
    "ImapConnectError",
    "ImapConnectTimeout",
    "ImapDisconnected",
    "ImapError",
    "ImapProtocolError",
    "ImapReadTimeout",
    "ImapReplyError",
    "ImapTimeout",
]

_CODE = re.compile(r"\[([A-Z0-9.-]+)")


class ImapError(Exception):
    """Base of every error raised by loadtests.clients.imap."""


class ImapReplyError(ImapError):
    """The server answered a command with a tagged NO or BAD."""

    def __init__(self, command: str, result: str, text: str) -> None:
        super().__init__(f"{command}: {result} {text}")
        self.command = command
        self.result = result
        self.text = text
        m = _CODE.match(text)
        self.code: str | None = m[1] if m else None  # e.g. LIMIT, AUTHENTICATIONFAILED


class ImapProtocolError(ImapError):
    """The server said something that is not the IMAP we expected."""


class ImapConnectError(ImapError, ConnectionError):
    """The connection could not be made (refused, unreachable...)."""


class ImapDisconnected(ImapError, ConnectionError):
    """The server closed the connection."""


class ImapByeError(ImapDisconnected):
    """The server sent `* BYE text` and closed (`Connection queue full`, autologout...)."""

    def __init__(self, text: str) -> None:
        super().__init__(f"BYE {text}")
        self.text = text


class ImapTimeout(ImapError, TimeoutError):
    """Nothing (complete) came back in time."""


class ImapConnectTimeout(ImapConnectError, ImapTimeout):
    """No connection or no greeting within the connect timeout."""


class ImapReadTimeout(ImapTimeout):
    """A command's reply did not come within the read timeout."""
