"""The profile's `delivery:` section: which scenarios' mail is tracked, how it is found, how long
the run waits for it, and the delivery QoS check (SPECmail: 95% within 60 s, none lost)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from loadtests.configfile import Duration, StrictModel

__all__ = ["DeliverySettings"]


class DeliverySettings(StrictModel):
    """Delivery tracking of the mail SMTP scenarios send (present: tracking is on)."""

    scenarios: list[str] = Field(
        default_factory=list, description="SMTP scenarios whose mail is tracked (empty: all)")
    find: Literal["pop3", "maildir"] = Field(
        default="pop3",
        description="how copies are found: POP3 polling of the recipients, or their maildirs")
    endpoint: str = Field(default="pop3", description="pop3: the target endpoint polled")
    maildir: str | None = Field(
        default=None, description="maildir: a mailbox's directory, with {local} and {domain}")
    poll_interval: Duration = Field(default=0.5, gt=0,
                                    description="a mailbox with copies due is polled this often")
    concurrency: int = Field(default=20, ge=1, le=1000, description="mailboxes polled at once")
    delete: bool = Field(default=True, description="POP3: DELE the copies found (ours only)")
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
