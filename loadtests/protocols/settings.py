"""The settings sections of a scenario, one model per user behaviour (`smtp:`, `dns:`, `pop3:`,
`imap:`, `web:` in a profile). Plain pydantic models: the registry and profiles both use them."""

from __future__ import annotations

import random
from typing import Literal

from pydantic import Field, model_validator

from loadtests.configfile import ByteSize, Duration, StrictModel

__all__ = [
    "MAX_MESSAGE_SIZE",
    "Backoff",
    "DnsSettings",
    "ImapSettings",
    "MessageSize",
    "Pop3Settings",
    "SizeChoice",
    "SmtpSettings",
    "WebSettings",
]


MAX_MESSAGE_SIZE = 64 * 1024**2
"""The largest message a profile may ask for: 64 MiB (real servers' limits are 10-50 MB)."""


class SizeChoice(StrictModel):
    size: ByteSize = Field(ge=0, le=MAX_MESSAGE_SIZE)
    weight: float = Field(gt=0, le=1_000_000)


class MessageSize(StrictModel):
    """`fixed: 2KiB`, or `choices: [{size: 2KiB, weight: 8}, {size: 40KiB, weight: 2}]`."""

    fixed: ByteSize | None = Field(default=None, ge=0, le=MAX_MESSAGE_SIZE)
    choices: list[SizeChoice] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_of(self) -> MessageSize:
        if (self.fixed is None) == (self.choices is None):
            raise ValueError("give exactly one of fixed or choices")
        return self

    def draw(self, rng: random.Random) -> int:
        if self.fixed is not None:
            return self.fixed
        assert self.choices is not None
        return rng.choices([c.size for c in self.choices], [c.weight for c in self.choices])[0]


class SmtpSettings(StrictModel):
    messages_per_session: int = Field(default=1, ge=1, le=100000)
    recipients_per_message: int = Field(default=1, ge=1, le=1000)
    size: MessageSize = MessageSize(fixed=2048)
    mx_lookup: bool = True
    connect_to: Literal["mx", "endpoint"] = Field(
        default="mx",
        description="mx: the address the MX lookup gave, on the endpoint's port; "
                    "endpoint: the endpoint's own address",
    )
    connect_timeout: Duration = Field(default=10.0, gt=0)
    command_timeout: Duration = Field(default=30.0, gt=0)
    auth: Literal["plain", "login"] = Field(
        default="plain", description="submission: the SASL mechanism of AUTH")
    tls_resume: bool = Field(
        default=False, description="resume TLS sessions (as real clients do) on TLS endpoints")
    pipelining: bool = Field(
        default=True,
        description="send MAIL, RCPT and DATA in one write when the server offers PIPELINING "
                    "(RFC 2920, as Postfix's client does); each step is still timed to its own "
                    "reply, so RCPT and DATA's 354 read as ~0 ms. false: one command per round "
                    "trip, each step timing its own server turn")


class DnsSettings(StrictModel):
    max_concurrent: int = Field(default=20, ge=1, le=10000)
    cache: bool = False
    timeout: Duration = Field(default=5.0, gt=0)
    aaaa: bool = False


class Pop3Settings(StrictModel):
    """A check-mail session: log in, STAT/UIDL, RETR what is new, QUIT."""

    retrieve: Literal["new", "all", "none"] = "new"
    delete: bool = Field(default=False, description="DELE what was retrieved (else leave mail)")
    apop: bool = False
    auth: Literal["user", "apop", "plain"] | None = Field(
        default=None, description="USER/PASS, APOP or AUTH PLAIN (RFC 5034); default: "
                                  "apop when `apop: true`, else user")
    tls_resume: bool = Field(
        default=False, description="resume TLS sessions (as real clients do) on TLS endpoints")
    session_time: Duration | None = Field(
        default=None, ge=0,
        description="hold each session about this long before QUIT, like a slow real client "
                    "(default: the population's session_time, else no holding)")
    connect_timeout: Duration = Field(default=10.0, gt=0)
    read_timeout: Duration = Field(default=30.0, gt=0)


class Backoff(StrictModel):
    first: Duration = Field(default=1.0, gt=0)
    max: Duration = Field(default=60.0, gt=0)


class ImapSettings(StrictModel):
    """imap-idle: log in, SELECT INBOX, stay `hold` in IDLE (or NOOP polling), LOGOUT.
    imap-active: a mail-reading session of `actions` FETCH/SEARCH/STORE steps."""

    mode: Literal["idle", "noop"] = "idle"
    hold: Duration = Field(default=60.0, gt=0, description="how long an idle session stays")
    noop_interval: Duration = Field(default=60.0, gt=0)
    idle_rearm: Duration = Field(default=25 * 60.0, gt=0, le=29 * 60.0)
    reconnect: Backoff = Backoff()
    actions: int = Field(default=5, ge=1, le=1000)
    search: bool = True
    flag_changes: bool = True
    expunge: bool = False
    auth: Literal["login", "plain"] = Field(
        default="login", description="LOGIN, or AUTHENTICATE PLAIN (SASL-IR)")
    tls_resume: bool = Field(
        default=False, description="resume TLS sessions (as real clients do) on TLS endpoints")
    connect_timeout: Duration = Field(default=10.0, gt=0)
    read_timeout: Duration = Field(default=30.0, gt=0)


class WebSettings(StrictModel):
    """A webmail session: log in, open the inbox, poll, open messages, sometimes send, log out."""

    app: Literal["embedded", "roundcube"] = "embedded"
    connection: Literal["keep-alive", "close"] = "close"
    session_length: Duration = Field(default=300.0, gt=0)
    poll_interval: Duration = Field(default=60.0, gt=0)
    open_message_ratio: float = Field(default=0.3, ge=0, le=1)
    send_ratio: float = Field(default=0.05, ge=0, le=1)
    request_timeout: Duration = Field(default=30.0, gt=0)
