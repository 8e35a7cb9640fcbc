"""The protocols and user kinds mailswarm knows, each registered once (see `registry`), and the
settings sections a scenario gives them (see `settings`). Imports no Locust."""

from loadtests.protocols.registry import (
    PROTOCOLS,
    SECTIONS,
    USER_KINDS,
    ProtocolName,
    ProtocolSpec,
    UserKind,
    UserKindName,
    protocol_of,
    request_type,
    user_class,
    user_kind,
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
