"""The protocol registry: every protocol and every user kind the generator knows, written once.

Profiles (`user:` of a scenario, its settings section, what endpoint it needs), target files
(`protocol:` of an endpoint), the CLI (`--endpoint`) and the users' class lookup read these
tables. Nothing here imports Locust: a user class is named by its import path and imported on
first use, so loading a profile or a target file stays light.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from loadtests.protocols.settings import (
    DnsSettings,
    ImapSettings,
    Pop3Settings,
    SmtpSettings,
    WebSettings,
)

__all__ = [
    "PROTOCOLS",
    "SECTIONS",
    "USER_KINDS",
    "ProtocolName",
    "ProtocolSpec",
    "UserKind",
    "UserKindName",
    "protocol_of",
    "request_type",
    "user_class",
    "user_kind",
]


@dataclass(frozen=True)
class ProtocolSpec:
    """A protocol an endpoint of a target file speaks."""

    name: str  # `protocol:` of an endpoint, and an endpoint key that implies it
    request_type: str  # `request_type` of its records in the results stream
    port: int  # its well-known port without TLS
    tls_port: int | None = None  # its implicit-TLS port, once TLS is supported


@dataclass(frozen=True)
class UserKind:
    """A user behaviour a scenario names with `user:`."""

    name: str  # `user:` of a scenario, and the `kind` of its Locust user class
    protocol: str  # the protocol its sessions speak (a key of PROTOCOLS)
    section: str  # its settings section in a scenario (a key of SECTIONS)
    user_class_path: str  # "module:Class" of its Locust user, imported on first use
    endpoints: tuple[str, ...]  # protocols of the endpoints it may be pointed at
    needs_dns_when: str | None = None  # a bool field of its settings that needs a dns endpoint

    @property
    def request_type(self) -> str:
        return PROTOCOLS[self.protocol].request_type

    @property
    def settings(self) -> type[BaseModel]:
        return SECTIONS[self.section]

    def accepts(self, endpoint_protocol: str) -> bool:
        return endpoint_protocol in self.endpoints

    def needs_dns(self, settings: BaseModel) -> bool:
        """Whether a scenario with these settings (its own section) needs a dns endpoint."""
        return self.needs_dns_when is not None and bool(getattr(settings, self.needs_dns_when))

    def user_class(self) -> type[Any]:
        """Its Locust user class (this imports Locust)."""
        module, _, name = self.user_class_path.partition(":")
        cls: type[Any] = getattr(importlib.import_module(module), name)
        return cls


PROTOCOLS: dict[str, ProtocolSpec] = {p.name: p for p in (
    ProtocolSpec("smtp", "SMTP", port=25),
    ProtocolSpec("dns", "DNS", port=53),
    ProtocolSpec("imap", "IMAP", port=143),
    ProtocolSpec("pop3", "POP3", port=110),
    ProtocolSpec("http", "HTTP", port=80),
)}

USER_KINDS: dict[str, UserKind] = {k.name: k for k in (
    UserKind("smtp", "smtp", "smtp", "loadtests.users.smtp:SmtpUser", ("smtp",),
             needs_dns_when="mx_lookup"),
    UserKind("submission", "smtp", "smtp", "loadtests.users.submission:SubmissionUser",
             ("smtp",)),
    UserKind("pop3", "pop3", "pop3", "loadtests.users.pop3:Pop3CheckMailUser", ("pop3",)),
    UserKind("imap-idle", "imap", "imap", "loadtests.users.imap:ImapIdleUser", ("imap",)),
    UserKind("imap-active", "imap", "imap", "loadtests.users.imap:ImapActiveUser", ("imap",)),
    UserKind("webuser", "http", "web", "loadtests.users.webuser:WebUser", ("http",)),
)}

SECTIONS: dict[str, type[BaseModel]] = {
    "smtp": SmtpSettings,
    "dns": DnsSettings,  # the MX lookups an smtp user makes before it connects
    "pop3": Pop3Settings,
    "imap": ImapSettings,
    "web": WebSettings,
}
"""Settings sections of a scenario by key; each is a field of `profiles.Scenario`."""

# Literal types built from the tables, so pydantic lists the valid names in its errors and in
# the JSON schema ("Input should be 'smtp', 'pop3', ..."); type checkers see plain strings.
if TYPE_CHECKING:
    ProtocolName = str
    UserKindName = str
else:
    ProtocolName = Literal[tuple(PROTOCOLS)]
    UserKindName = Literal[tuple(USER_KINDS)]


def user_kind(name: str) -> UserKind:
    """The registered user kind; KeyError names the registered ones."""
    try:
        return USER_KINDS[name]
    except KeyError:
        raise KeyError(f"unknown user kind {name!r}; registered: {', '.join(USER_KINDS)}") from None


def protocol_of(kind: str) -> str:
    """The protocol a user kind speaks: `protocol_of("imap-idle") == "imap"`."""
    return user_kind(kind).protocol


def request_type(kind: str) -> str:
    """The request type a user kind's sessions are recorded under: `request_type("smtp") ==
    "SMTP"` (the key of its sessions in ticks and of its `session` records)."""
    return user_kind(kind).request_type


def user_class(kind: str) -> type[Any]:
    """The Locust user class of a user kind, imported now (this imports Locust)."""
    return user_kind(kind).user_class()

