"""The POP3, IMAP and webmail error trees share `ClientError`: the server's code and text in the
same two attributes, their messages as before, and one `describe()` of any of them."""

from __future__ import annotations

import pickle

import pytest

from loadtests.clients.errors import ClientError, ErrorInfo, describe
from loadtests.clients.imap_errors import (
    ImapByeError,
    ImapConnectTimeout,
    ImapDisconnected,
    ImapReplyError,
)
from loadtests.clients.pop3 import Pop3ConnectError, Pop3ReadTimeout, Pop3ReplyError
from loadtests.clients.webmail import LoginFailed, ServerError, WebmailError

CASES = [
    (Pop3ReplyError("-ERR", "[IN-USE] mailbox locked", command="USER"), "-ERR",
     "[IN-USE] mailbox locked", "-ERR [IN-USE] mailbox locked"),
    (ImapReplyError("LOGIN", "NO", "[AUTHENTICATIONFAILED] Authentication failed."), "NO",
     "[AUTHENTICATIONFAILED] Authentication failed.",
     "LOGIN: NO [AUTHENTICATIONFAILED] Authentication failed."),
    (ImapReplyError("SELECT", "BAD", "Error in IMAP command"), "BAD", "Error in IMAP command",
     "SELECT: BAD Error in IMAP command"),
    (ImapByeError("Connection queue full"), "BYE", "Connection queue full",
     "BYE Connection queue full"),
    (ServerError("LOGIN_PAGE", 503, "busy"), 503, "busy", "LOGIN_PAGE: HTTP 503: busy"),
    (LoginFailed("LOGIN", 200, "login form again"), 200, "login form again",
     "LOGIN: HTTP 200: login form again"),
    (Pop3ReadTimeout("no reply within 5 s"), None, "no reply within 5 s", "no reply within 5 s"),
    (ImapDisconnected("connection closed by the server"), None,
     "connection closed by the server", "connection closed by the server"),
]


@pytest.mark.parametrize(("error", "code", "text", "message"), CASES,
                         ids=[type(c[0]).__name__ + str(i) for i, c in enumerate(CASES)])
def test_code_text_and_message(error: ClientError, code: object, text: str,
                               message: str) -> None:
    assert isinstance(error, ClientError)
    assert (error.code, error.text, str(error)) == (code, text, message)
    copy = pickle.loads(pickle.dumps(error))  # errors may cross process boundaries
    assert type(copy) is type(error) and (copy.code, copy.text, str(copy)) == (code, text, message)
    assert describe(error) == ErrorInfo(type(error).__name__, code, text)


def test_the_families_keep_their_other_bases() -> None:
    assert issubclass(Pop3ConnectError, ConnectionError)
    assert issubclass(ImapConnectTimeout, TimeoutError) and issubclass(ImapByeError,
                                                                        ConnectionError)
    assert issubclass(ServerError, WebmailError)
    timeout = ImapConnectTimeout("no greeting within 5 s")
    assert isinstance(timeout, OSError) and str(timeout) == "no greeting within 5 s"
    assert describe(timeout) == ErrorInfo("ImapConnectTimeout", None, "no greeting within 5 s")


def test_an_http_status_is_shown_as_a_reply_code() -> None:
    assert str(describe(ServerError("INBOX", 502, "Bad Gateway"))) == "ServerError: 502 Bad Gateway"
    assert str(describe(ImapByeError("autologout"))) == "ImapByeError: autologout"


def test_what_a_server_sent_is_recorded_on_one_line_without_control_characters() -> None:
    import aiosmtplib

    from loadtests.clients.imap_errors import ImapProtocolError

    malformed = describe(aiosmtplib.SMTPResponseException(
        -1, "Malformed SMTP response line: \x00\xff garbage, not an SMTP greeting\r\n"))
    assert malformed.code is None  # aiosmtplib's -1: the server gave no reply code
    assert malformed.text == "Malformed SMTP response line: \\x00\xff garbage, not an SMTP greeting"
    assert str(malformed).startswith("SMTPResponseException: Malformed")
    two_lines = describe(aiosmtplib.SMTPResponseException(550, "5.7.1 denied\n5.7.1 by policy"))
    assert (two_lines.code, two_lines.text) == (550, "5.7.1 denied 5.7.1 by policy")
    bell = describe(ImapProtocolError("odd\x07greeting\x1b[2J"))
    assert bell.text == "odd\\x07greeting\\x1b[2J"  # no terminal escape reaches a console
    assert not any(ord(c) < 32 for info in (malformed, two_lines, bell) for c in str(info))
