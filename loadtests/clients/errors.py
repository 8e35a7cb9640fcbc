"""What every client error says, in one shape: the kind, the server's code and its text.

SMTP keeps aiosmtplib's error tree (`SMTPResponseException` carries `.code` and `.message`).
The POP3, IMAP, webmail and DNS errors derive from `ClientError`, which carries `code` (the
server's reply code or status when there was one: `-ERR`, `NO`, `BAD`, `BYE`, an HTTP status,
a DNS rcode name) and `text` (what the server or the socket said). `describe(exc)` turns any
exception into an `ErrorInfo` the results stream records, so readers never parse codes back out
of a message.
"""

from __future__ import annotations

import errno as errno_names
from dataclasses import dataclass

import aiosmtplib

__all__ = ["ClientError", "ErrorInfo", "describe"]


class ClientError(Exception):
    """Base of the non-SMTP client errors: `code` (or None) and `text`."""

    def __init__(self, text: str = "", *, code: int | str | None = None) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An error as the stream records it: `kind` (the exception's class name), `code` (server
    reply code or status, the errno name of a socket error, else None) and `text`."""

    kind: str
    code: int | str | None
    text: str

    def __str__(self) -> str:
        """`Kind: text`, with a numeric reply code in front of the text (`Kind: 421 text`)."""
        return f"{self.kind}: {self.code} {self.text}" if isinstance(self.code, int) \
            else f"{self.kind}: {self.text}"


def describe(exception: BaseException) -> ErrorInfo:
    """The `ErrorInfo` of any exception a client step can raise."""
    kind = type(exception).__name__
    if isinstance(exception, aiosmtplib.SMTPResponseException):
        return ErrorInfo(kind, exception.code, exception.message)
    if isinstance(exception, ClientError):
        return ErrorInfo(kind, exception.code, exception.text or str(exception) or kind)
    if isinstance(exception, OSError) and exception.errno is not None:
        code = errno_names.errorcode.get(exception.errno, exception.errno)
        return ErrorInfo(kind, code, str(exception))
    return ErrorInfo(kind, None, str(exception) or repr(exception))
