"""Settings of the embedded target: ports, population, delays and injected faults.

The same model is the `embedded:` section of a profile and what `mailswarm target` builds from
its flags, so a profile can carry the server model it wants to emulate.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Literal, get_args

from pydantic import Field

from loadtests.configfile import ByteSize, Duration, StrictModel

__all__ = ["FAULTS", "EmbeddedSettings"]

Fault = Literal["none", "stall", "reset", "garbage", "trickle", "reply-4xx", "reply-5xx",
                "close-mid-data", "close-after-354", "stall-mail"]
FAULTS: tuple[str, ...] = get_args(Fault)


class EmbeddedSettings(StrictModel):
    """Knobs of the embedded target. Ports 0 mean "any free port" (reported when ready)."""

    host: str = "127.0.0.1"
    smtp_port: int = Field(default=0, ge=0, le=65535)
    dns_port: int = Field(default=0, ge=0, le=65535)
    pop3_port: int = Field(default=0, ge=0, le=65535)
    imap_port: int = Field(default=0, ge=0, le=65535)
    http_port: int = Field(default=0, ge=0, le=65535)
    tls: bool = Field(default=True, description="offer STARTTLS and the implicit-TLS ports "
                                                "(SMTPS, submission, IMAPS, POP3S, HTTPS)")
    submission_port: int = Field(default=0, ge=0, le=65535)
    smtps_port: int = Field(default=0, ge=0, le=65535)
    imaps_port: int = Field(default=0, ge=0, le=65535)
    pop3s_port: int = Field(default=0, ge=0, le=65535)
    https_port: int = Field(default=0, ge=0, le=65535)
    tls_certificate: Literal["valid", "wrong-name", "expired", "untrusted"] = Field(
        default="valid", description="the certificate the servers show (the others make the "
                                     "run's verification fail, for tests)")
    auth_fault: Literal["none", "echo"] = Field(
        default="none", description="echo: every SMTP AUTH is refused with a reply repeating "
                                    "the client's AUTH line")
    web_session_timeout: Duration = Field(
        default=1800.0, gt=0, description="webmail sessions expire after this long idle")
    web_keepalive_timeout: Duration = Field(
        default=75.0, gt=0,
        description="idle keep-alive connections are closed after this (> poll interval)")
    domain: str = "example.test"
    mail_address: IPv4Address = Field(
        default=IPv4Address("127.0.0.1"),
        description="the A answer for mail.<domain>: an address off loopback tests that the "
                    "generator refuses to follow an MX off this machine (nothing listens there)")
    users: int = Field(default=1000, ge=1, le=1_000_000)
    messages_per_user: int = Field(default=5, ge=0, le=10000)
    message_size: ByteSize = Field(default=2048, ge=100, le=64 * 1024**2)
    mode: Literal["event", "thread"] = Field(
        default="event",
        description="POP3/IMAP server model: one event loop, or one OS thread per connection",
    )
    max_connections: int = Field(
        default=0, ge=0, le=10_000_000,
        description="event mode: connections held per protocol (0: no cap)")
    thread_limit: int = Field(default=256, ge=1, le=30000,
                              description="thread mode: threads (connections) at most")
    thread_stack_size: ByteSize = Field(default=0, ge=0, le=256 * 1024**2,
                                        description="thread mode: stack per thread (0: default)")
    nofile_limit: int = Field(default=0, ge=0, le=2**30,
                              description="RLIMIT_NOFILE of the target process (0: unchanged)")
    backlog: int = Field(default=1024, ge=1, le=65535, description="listen queue length")
    command_delay: Duration = Field(default=0.0, description="added before every SMTP reply")
    dns_delay: Duration = Field(default=0.0, description="added before every DNS answer")
    fault: Fault = "none"
    fault_ratio: float = Field(
        default=1.0, ge=0, le=1,
        description="share of connections the faults apply to (SMTP's `fault`, `pop3_fault`, "
                    "`imap_fault`, `http_fault`'s connection faults; for `dns_fault` drop and "
                    "garbage, the share of queries): e.g. `reset` with 0.3 drops 30 % at accept")
    fault_after: Duration = Field(
        default=0.0, description="the fault starts this long after the target starts"
    )
    pop3_fault: Literal["none", "stall", "reset", "garbage", "trickle", "reply-err",
                        "stall-retr", "close-mid-retr", "echo"] = "none"
    imap_fault: Literal["none", "stall", "reset", "garbage", "trickle", "bye", "stall-select",
                        "drop-idle", "close-mid-fetch", "echo"] = "none"
    http_fault: Literal["none", "stall", "reset", "garbage", "trickle", "stall-login",
                        "close-mid-body"] = Field(
        default="none", description="webmail connections: never answer, TCP reset, a reply "
                                    "that is not HTTP, or a reply trickled one byte at a time; "
                                    "inside a session: the login post never answered, the "
                                    "inbox page cut halfway through its body")
    dns_fault: Literal["none", "drop", "garbage", "truncate", "truncate-no-tcp",
                       "truncate-tcp-reset", "truncate-tcp-stall", "truncate-tcp-cut",
                       "closed"] = Field(
        default="none", description="DNS queries: never answered, answered with bytes that are "
                                    "not DNS (these two on `fault_ratio` of the queries), "
                                    "answered on UDP truncated (TC set, no records; TCP answers "
                                    "in full, is refused with truncate-no-tcp, resets, never "
                                    "answers or closes halfway through its answer with "
                                    "truncate-tcp-reset/-stall/-cut), or nothing listens on the "
                                    "port (closed: UDP gets ICMP port unreachable, TCP a "
                                    "refusal); `dns_delay` makes answers late")
    imap_max_user_connections: int | None = Field(
        default=None, ge=1, le=1_000_000,
        description="IMAP connections per user (like Dovecot's mail_max_userip_connections)")
    imap_keepalive: Duration = Field(default=120.0, gt=0,
                                     description="`* OK Still here` interval during IDLE")
    smtp_deliver: bool = Field(
        default=False, description="put accepted mail into the mailboxes (IMAP/POP3 see it)")
    delivery_delay: Duration = Field(
        default=0.0, ge=0, description="smtp_deliver: accepted mail reaches its mailbox after this")
    drop_one_in: int = Field(
        default=0, ge=0, description="smtp_deliver: lose every Nth copy (0: none)")
    corrupt_one_in: int = Field(
        default=0, ge=0, description="smtp_deliver: change a byte of every Nth copy kept (0: none)")
    duplicate_one_in: int = Field(
        default=0, ge=0, description="smtp_deliver: deliver every Nth copy kept twice (0: none)")
