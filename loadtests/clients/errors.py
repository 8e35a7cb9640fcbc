"""What every client error says, in one shape: the kind, the server's code and its text.

SMTP keeps aiosmtplib's error tree (`SMTPResponseException` carries `.code` and `.message`).
The POP3, IMAP, webmail and DNS errors derive from `ClientError`, which carries `code` (the
server's reply code or status when there was one: `-ERR`, `NO`, `BAD`, `BYE`, an HTTP status,
a DNS rcode name) and `text` (what the server or the socket said). `describe(exc)` turns any
exception into an `ErrorInfo` the results stream records, so readers never parse codes back out
of a message.

A failed TLS handshake becomes a `TlsError` (`tls_error`): "certificate verify failed:
self-signed certificate", code `CERTIFICATE_VERIFY_FAILED`, never the ssl module's
`[SSL: ...] ... (_ssl.c:1000)` or an errno name. `redact(exc, secrets)` blanks credentials
(a password, a base64 AUTH string) out of an error's texts in place, before any step records
it: a server that echoes an AUTH line back must not put the password into the stream.
"""

from __future__ import annotations

import contextlib
import errno as errno_names
import ssl
from collections.abc import Iterable
from dataclasses import dataclass

import aiosmtplib

from loadtests.printable import printable

__all__ = ["REDACTED", "ClientError", "ErrorInfo", "TlsError", "describe", "redact",
           "tls_error"]

REDACTED = "[REDACTED]"


class ClientError(Exception):
    """Base of the non-SMTP client errors: `code` (or None) and `text`."""

    def __init__(self, text: str = "", *, code: int | str | None = None) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


class TlsError(ClientError):
    """The TLS handshake failed; `code` is the failure's short name, `text` says why."""


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
    """The `ErrorInfo` of any exception a client step can raise; its text on one line, with
    any other control character a server sent shown as `\\xNN` (a NUL in a garbage greeting)."""
    if isinstance(exception, ssl.SSLError):
        exception = tls_error(exception)
    kind = type(exception).__name__
    if isinstance(exception, aiosmtplib.SMTPResponseException):
        # aiosmtplib says -1 where the server gave no reply code (a malformed line)
        code = exception.code if exception.code >= 0 else None
        return ErrorInfo(kind, code, _one_line(exception.message))
    if isinstance(exception, ClientError):
        return ErrorInfo(kind, exception.code, _one_line(exception.text or str(exception) or kind))
    if isinstance(exception, OSError):
        # aiosmtplib's SMTPConnectError is an OSError without errno; the socket's is its cause
        cause = exception.__cause__
        number = exception.errno if exception.errno is not None else (
            cause.errno if isinstance(cause, OSError) else None)
        if number is not None:
            return ErrorInfo(kind, errno_names.errorcode.get(number, number),
                             _one_line(str(exception)))
    return ErrorInfo(kind, None, _one_line(str(exception) or repr(exception)))


def _one_line(text: str) -> str:
    """`text` on one line (line breaks as spaces), every other control character written as
    `\\xNN` (loadtests.printable)."""
    return printable(text.replace("\r\n", " ").replace("\n", " ")).strip()


def tls_error(exc: BaseException) -> TlsError:
    """A readable `TlsError` of a failed handshake (an `ssl.SSLError`, a timeout, a reset)."""
    if isinstance(exc, TlsError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or exc.reason or "certificate verify failed"
        return TlsError(f"certificate verify failed: {why}", code="CERTIFICATE_VERIFY_FAILED")
    if isinstance(exc, ssl.SSLError):
        text = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
        return TlsError(f"TLS handshake failed: {text.split(' (_ssl.c')[0]}",
                        code=exc.reason or "SSL_ERROR")
    if isinstance(exc, TimeoutError):
        return TlsError("TLS handshake timed out", code="TIMEOUT")
    return TlsError(f"TLS handshake failed: {exc or type(exc).__name__}", code="HANDSHAKE")


def redact(exception: BaseException, secrets: Iterable[str]) -> BaseException:
    """`exception` with every non-empty secret replaced by `[REDACTED]` in its texts
    (`args`, ClientError's `text`, aiosmtplib's `message`, OSError's `strerror`), changed in
    place so its type (what callers catch) stays; returned for convenience."""
    words = sorted({s for s in secrets if s}, key=len, reverse=True)
    if not words:
        return exception

    def clean(value: object) -> object:
        if isinstance(value, bytes):
            for word in words:
                value = value.replace(word.encode(), REDACTED.encode())
            return value
        if not isinstance(value, str):
            return value
        for word in words:
            value = value.replace(word, REDACTED)
        return value

    exception.args = tuple(clean(a) for a in exception.args)
    for attribute in ("text", "message", "strerror", "filename"):
        value = getattr(exception, attribute, None)
        if isinstance(value, str | bytes):
            with contextlib.suppress(AttributeError):  # read-only on some C-level exceptions
                setattr(exception, attribute, clean(value))
    exception.__cause__ = exception.__context__ = None  # the chain's texts go unseen too
    return exception
