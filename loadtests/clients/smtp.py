"""SMTP sessions on aiosmtplib, timed command by command.

`send_session` connects, says EHLO, sends each envelope (MAIL, RCPT per recipient, DATA) and
QUITs, recording CONNECT, EHLO, MAIL, RCPT, DATA and QUIT as steps. The first failure ends the
session: it is recorded with aiosmtplib's error (which carries the server's `.code` and
`.message`) and nothing is raised to the caller.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiosmtplib

from loadtests.clients.message import build_message, new_message_id
from loadtests.clients.steps import StepRecorder

__all__ = ["Envelope", "SmtpOptions", "send_session"]


@dataclass(frozen=True, slots=True)
class Envelope:
    recipients: list[str]
    size: int


@dataclass(frozen=True, slots=True)
class SmtpOptions:
    sender: str
    connect_timeout: float = 10.0
    command_timeout: float = 30.0
    local_hostname: str = "mailswarm.test"  # never let aiosmtplib look up our own name


async def send_session(host: str, port: int, envelopes: Sequence[Envelope], options: SmtpOptions,
                       rec: StepRecorder) -> int:
    """Send `envelopes` in one session; returns how many messages the server accepted."""
    smtp = aiosmtplib.SMTP(
        hostname=host, port=port, timeout=options.command_timeout,
        local_hostname=options.local_hostname, start_tls=False, use_tls=False,
    )
    accepted = 0
    try:
        await rec.step("CONNECT", smtp.connect(timeout=options.connect_timeout))
        await rec.step("EHLO", smtp.ehlo())
        for env in envelopes:
            await rec.step("MAIL", smtp.mail(options.sender))
            for rcpt in env.recipients:
                await rec.step("RCPT", smtp.rcpt(rcpt))
            data = build_message(sender=options.sender, recipients=env.recipients, size=env.size,
                                 message_id=new_message_id(), sent_at=time.time())
            await rec.step("DATA", smtp.data(data), length=len(data))
            accepted += 1
        await rec.step("QUIT", smtp.quit())
    except Exception:
        pass  # recorded by the failing step; the session ends here
    finally:
        smtp.close()
    return accepted
