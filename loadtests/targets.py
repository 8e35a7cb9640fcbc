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
      submission: {protocol: smtp, port: 10587, tls: starttls, ca_file: ca.pem}
      imaps: {protocol: imap, port: 10993, tls: implicit, verify: false}

An endpoint's protocol defaults to its key when the key is a protocol name. Endpoints off the
loopback network are refused unless the user passes `--allow-remote` (see `check_loopback`).

TLS per endpoint: `tls: none | starttls | implicit` (default none), `verify` (default true:
the certificate chain and the name are checked), `ca_file` (trusted instead of the system's
CAs; relative to the target file), `server_name` (SNI and the name checked; default the host),
`min_version` (TLSv1.2...), `client_cert`/`client_key`, `allow_plaintext_auth` (default
false: credentials are never sent over an unencrypted connection), and `plain_port` (an
implicit-TLS endpoint's plaintext port, for the sessions a scenario's `tls_share` leaves plain).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator

from loadtests.clients.tls import TLS_VERSIONS, TlsMode, TlsOptions
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
    # TLS (see the module's docstring)
    tls: TlsMode = "none"
    verify: bool = True
    ca_file: Path | None = None
    server_name: str | None = None
    min_version: Literal["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"] | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    allow_plaintext_auth: bool = False
    # the same server without TLS, for the sessions a scenario's `tls_share` leaves plain (an
    # implicit-TLS endpoint's plain port; a STARTTLS endpoint's plain sessions skip STARTTLS)
    plain_port: int | None = Field(default=None, ge=1, le=65535)

    # local addresses the generator's connections come from, in turn (more than ~28,000
    # connections to one server port need several); empty: the system chooses
    source_addresses: list[str] = Field(default=[], max_length=256)

    @model_validator(mode="after")
    def _client_pair(self) -> Endpoint:
        for address in self.source_addresses:
            ipaddress.ip_address(address)  # ValueError: "... does not appear to be an IP ..."
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key needs client_cert")
        if self.tls != "none" and self.protocol == "dns":
            raise ValueError("dns endpoints speak no TLS here (tls: none)")
        if self.tls == "starttls" and self.protocol == "http":
            raise ValueError("HTTP has no STARTTLS: use tls: implicit for HTTPS")
        assert self.min_version is None or self.min_version in TLS_VERSIONS
        return self

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def tls_options(self) -> TlsOptions:
        """What the protocol clients take from this endpoint's TLS settings."""
        return TlsOptions(
            mode=self.tls, verify=self.verify,
            ca_file=str(self.ca_file) if self.ca_file else None, server_name=self.server_name,
            min_version=self.min_version,
            client_cert=str(self.client_cert) if self.client_cert else None,
            client_key=str(self.client_key) if self.client_key else None,
            allow_plaintext_auth=self.allow_plaintext_auth)


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
            "endpoints": {k: _public_endpoint(e) for k, e in self.endpoints.items()},
        }

    def insecure(self) -> Target:
        """This target with certificate verification off on every endpoint (`--insecure`)."""
        return self.model_copy(update={"endpoints": {
            k: e.model_copy(update={"verify": False}) for k, e in self.endpoints.items()}})

    def tls_verify_off(self) -> list[str]:
        """Endpoints that speak TLS without verifying the server's certificate."""
        return [k for k, e in self.endpoints.items() if e.tls != "none" and not e.verify]


def _public_endpoint(endpoint: Endpoint) -> dict[str, Any]:
    out: dict[str, Any] = {"protocol": endpoint.protocol, "address": endpoint.address}
    if endpoint.tls != "none":
        out.update(tls=endpoint.tls, verify=endpoint.verify)
    return out


def load_target(path: str | Path) -> Target:
    """A target file; its endpoints' certificate paths resolved against the file's folder."""
    target = load_yaml_model(Target, path)
    base = Path(path).parent
    return target.model_copy(update={"endpoints": {
        k: e.model_copy(update={f: base / getattr(e, f) for f in _PATH_FIELDS
                                if getattr(e, f) is not None and not getattr(e, f).is_absolute()})
        for k, e in target.endpoints.items()}})


_PATH_FIELDS = ("ca_file", "client_cert", "client_key")


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
