"""The IMAP client's error tree (aiosmtplib-style): every error carries the server's text.

Every error is a `ClientError`: `.code` is the server's reply (`NO`, `BAD`, `BYE`) when there
was one, else None; `.text` what the server (or the socket) said.

    ImapError
    ├── ImapReplyError        tagged NO / BAD: .command, .code (= .result), .text,
    │                         .resp_code (the bracketed response code: LIMIT...)
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

from loadtests.clients.errors import ClientError

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


class ImapError(ClientError):
    """Base of every error raised by loadtests.clients.imap."""


class ImapReplyError(ImapError):
    """The server answered a command with a tagged NO or BAD."""

    def __init__(self, command: str, result: str, text: str) -> None:
        super().__init__(text, code=result)
        self.command = command
        self.result = result
        m = _CODE.match(text)
        self.resp_code: str | None = m[1] if m else None  # e.g. LIMIT, AUTHENTICATIONFAILED

    def __str__(self) -> str:
        return f"{self.command}: {self.result} {self.text}"

    def __reduce__(self) -> tuple[type[ImapReplyError], tuple[str, str, str]]:
        return type(self), (self.command, self.result, self.text)  # pickles whole


class ImapProtocolError(ImapError):
    """The server said something that is not the IMAP we expected."""


class ImapConnectError(ImapError, ConnectionError):
    """The connection could not be made (refused, unreachable...)."""


class ImapDisconnected(ImapError, ConnectionError):
    """The server closed the connection."""


class ImapByeError(ImapDisconnected):
    """The server sent `* BYE text` and closed (`Connection queue full`, autologout...)."""

    def __init__(self, text: str) -> None:
        super().__init__(text, code="BYE")

    def __str__(self) -> str:
        return f"BYE {self.text}"

    def __reduce__(self) -> tuple[type[ImapByeError], tuple[str]]:
        return type(self), (self.text,)


class ImapTimeout(ImapError, TimeoutError):
    """Nothing (complete) came back in time."""


class ImapConnectTimeout(ImapConnectError, ImapTimeout):
    """No connection or no greeting within the connect timeout."""


class ImapReadTimeout(ImapTimeout):
    """A command's reply did not come within the read timeout."""
