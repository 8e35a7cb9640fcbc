"""The profile's `delivery:` section: which scenarios' mail is tracked, how it is found, how long
the run waits for it, and the delivery QoS check (SPECmail: 95% within 60 s, none lost)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from loadtests.configfile import Duration, StrictModel

__all__ = ["ENDPOINT_PROTOCOL", "DeliverySettings"]

ENDPOINT_PROTOCOL = {"pop3": "pop3", "imap-idle": "imap"}
"""The protocol of the endpoint each way of finding copies reads (maildir: none)."""


class DeliverySettings(StrictModel):
    """Delivery tracking of the mail SMTP scenarios send (present: tracking is on)."""

    scenarios: list[str] = Field(
        default_factory=list, description="SMTP scenarios whose mail is tracked (empty: all)")
    find: Literal["pop3", "maildir", "imap-idle"] = Field(
        default="pop3",
        description="how copies are found: POP3 polling of the recipients, their maildirs, or "
                    "IMAP sessions in IDLE on `watch` recipients' INBOX")
    endpoint: str | None = Field(
        default=None, description="pop3, imap-idle: the target endpoint (default: the pop3 or "
                                  "imap one)")
    watch: int = Field(
        default=100, ge=1, le=100_000,
        description="imap-idle: mailboxes watched, the target's first N users (a session "
                    "each); mail to other recipients is not tracked")
    maildir: str | None = Field(
        default=None, description="maildir: a mailbox's directory, with {local} and {domain}")
    poll_interval: Duration = Field(default=0.5, gt=0,
                                    description="a mailbox with copies due is polled this often")
    concurrency: int = Field(default=20, ge=1, le=1000,
                             description="mailboxes polled at once (imap-idle: logging in)")
    delete: bool = Field(default=True, description="POP3: DELE the copies found, IMAP: "
                                                   "\\Deleted + EXPUNGE (ours only)")
    postfix_queue: str | None = Field(
        default=None, description="a Postfix queue_directory to sample each second (`queue`)")
    deadline: Duration = Field(
        default=120.0, ge=0,
        description="a copy not found this long after the load's end is lost")
    qos: bool = Field(default=True, description="judge delivery in the run's QoS verdict")
    qos_percent: float = Field(default=95.0, gt=0, le=100)
    qos_within: Duration = Field(default=60.0, gt=0,
                                 description="`qos_percent` % of copies delivered within this")
    max_lost: int = Field(default=0, ge=0, description="copies lost or corrupt at most")

    @model_validator(mode="after")
    def _maildir_named(self) -> DeliverySettings:
        if self.find == "maildir" and not self.maildir:
            raise ValueError("find: maildir needs `maildir:` (e.g. /srv/mail/{domain}/{local})")
        return self

    @property
    def endpoint_name(self) -> str | None:
        """The target endpoint read (None for maildir): `endpoint`, else the protocol's."""
        return self.endpoint or ENDPOINT_PROTOCOL.get(self.find)
