"""Target files: where the servers under test listen, who their users are, what to monitor.

A target file (YAML) looks like::

    name: local-postfix
    domain: example.test
    users: {pattern: "user{n:04d}", first: 1, count: 1000}
    password_env: MAILSWARM_PASSWORD      # or `password: ...`; never printed
    endpoints:
      smtp: {host: 127.0.0.1, port: 10025}
      dns:  {host: 127.0.0.1, port: 10053}
      imap-nginx: {protocol: imap, host: 127.0.0.1, port: 10143,
                   monitor: [{pid_file: /run/x/nginx.pid}]}

An endpoint's protocol defaults to its key when the key is a protocol name. Endpoints off the
loopback network are refused unless the user passes `--allow-remote` (see `check_loopback`).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator

from loadtests.configfile import StrictModel, load_yaml_model
from loadtests.protocols import PROTOCOLS as REGISTERED_PROTOCOLS
from loadtests.protocols import ProtocolName

__all__ = [
    "PROTOCOLS",
    "Endpoint",
    "ProcessRef",
    "Target",
    "UserPattern",
    "check_loopback",
    "is_loopback",
    "load_target",
]

PROTOCOLS: tuple[str, ...] = tuple(REGISTERED_PROTOCOLS)
"""The protocols an endpoint may speak (the registry's, loadtests.protocols)."""


class ProcessRef(StrictModel):
    """One server process tree to monitor, found by exactly one of these fields."""

    pid_file: Path | None = None
    pid: int | None = Field(default=None, gt=0)
    process_name: str | None = None
    listen_port: int | None = Field(default=None, ge=1, le=65535)

    @model_validator(mode="after")
    def _exactly_one(self) -> ProcessRef:
        given = [v for v in (self.pid_file, self.pid, self.process_name, self.listen_port) if v]
        if len(given) != 1:
            raise ValueError("give exactly one of pid_file, pid, process_name, listen_port")
        return self


class Endpoint(StrictModel):
    protocol: ProtocolName
    host: str = "127.0.0.1"
    port: int = Field(ge=1, le=65535)
    monitor: list[ProcessRef] = []
    # local addresses the generator's connections come from, in turn (more than ~28,000
    # connections to one server port need several); empty: the system chooses
    source_addresses: list[str] = Field(default=[], max_length=256)

    @model_validator(mode="after")
    def _sources_are_addresses(self) -> Endpoint:
        for address in self.source_addresses:
            ipaddress.ip_address(address)  # ValueError: "... does not appear to be an IP ..."
        return self

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class UserPattern(StrictModel):
    """Mailbox names `pattern.format(n=first..first+count-1)`, e.g. user0001..user1000."""

    pattern: str = "user{n:04d}"
    first: int = Field(default=1, ge=0)
    count: int = Field(default=1000, ge=1)

    @model_validator(mode="after")
    def _pattern_has_n(self) -> UserPattern:
        try:
            distinct = self.pattern.format(n=1) != self.pattern.format(n=2)
        except (KeyError, IndexError, ValueError):
            distinct = False
        if not distinct:
            raise ValueError("pattern must use {n}, e.g. user{n:04d}")
        return self

    def name(self, index: int) -> str:
        """The index-th user (wrapping around the population)."""
        return self.pattern.format(n=self.first + index % self.count)


class Target(StrictModel):
    name: str = "target"
    domain: str = "example.test"
    users: UserPattern = UserPattern()
    password: SecretStr | None = None
    password_env: str | None = None
    sender: str = "loadgen@mailswarm.test"
    agent: str | None = Field(
        default=None, description="URL of `mailswarm agent` on the target host, e.g. "
                                  "http://127.0.0.1:9101; its samples replace local monitoring")
    endpoints: dict[str, Endpoint] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _protocol_from_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("endpoints"), dict):
            endpoints = {}
            for key, value in data["endpoints"].items():
                if isinstance(value, dict) and "protocol" not in value and key in PROTOCOLS:
                    value = {"protocol": key, **value}
                endpoints[key] = value
            data = {**data, "endpoints": endpoints}
        return data

    def endpoint(self, name_or_protocol: str) -> Endpoint | None:
        """The endpoint of that name, else the only one of that protocol."""
        if name_or_protocol in self.endpoints:
            return self.endpoints[name_or_protocol]
        same = [e for e in self.endpoints.values() if e.protocol == name_or_protocol]
        return same[0] if len(same) == 1 else None

    def secret(self) -> str | None:
        """The shared password, from the file or the environment variable it names."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_env:
            return os.environ.get(self.password_env)
        return None

    def public(self) -> dict[str, Any]:
        """What reports may show: everything but credentials."""
        return {
            "name": self.name,
            "domain": self.domain,
            "users": self.users.model_dump(),
            "agent": self.agent,
            "endpoints": {k: {"protocol": e.protocol, "address": e.address}
                          for k, e in self.endpoints.items()},
        }


def load_target(path: str | Path) -> Target:
    return load_yaml_model(Target, path)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`; names other than localhost are not resolved."""
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_loopback(target: Target) -> list[str]:
    """Endpoints that would send traffic off this machine, as messages (empty when all are safe)."""
    problems = [
        f"endpoints.{key}: {ep.host} is not a loopback address (127.0.0.0/8 or ::1)"
        for key, ep in target.endpoints.items()
        if not is_loopback(ep.host)
    ]
    if target.agent:
        host = urlsplit(target.agent).hostname or ""
        if not is_loopback(host):
            problems.append(f"agent: {host} is not a loopback address (127.0.0.0/8 or ::1)")
    return problems
