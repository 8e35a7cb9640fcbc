"""Test certificates made at run time: a private CA and server certificates it signs.

Nothing is checked in: the embedded target and the real stack call `make_test_pki(folder)` when
they start, and the run verifies the servers against the CA file it wrote (`TestPki.ca_file`).
Built on `trustme` (a maintained library for exactly this, on `cryptography`). Variants for
negative tests: a certificate for another name, an expired one, one from a CA nobody trusts.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import trustme

__all__ = ["DEFAULT_NAMES", "TestPki", "make_test_pki"]

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1", "mail.example.test", "example.test")
"""Names a default server certificate is valid for (loopback and the test domain)."""


@dataclass(frozen=True)
class TestPki:
    """Files of one test PKI: the CA's certificate, and each server's chain and key (PEM)."""

    __test__ = False  # not a pytest test class, despite its name

    folder: Path
    ca_file: Path  # what a client trusts
    cert_file: Path  # the server's certificate chain (leaf first)
    key_file: Path  # the server's private key
    names: tuple[str, ...]


def _write(path: Path, data: bytes, private: bool = False) -> Path:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)
    return path


def make_test_pki(folder: Path, names: tuple[str, ...] = DEFAULT_NAMES, *,
                  prefix: str = "server", expired: bool = False,
                  ca: trustme.CA | None = None) -> TestPki:
    """Write a CA (unless `ca` is given) and a server certificate for `names` into `folder`.

    `expired=True` issues a certificate whose validity ended yesterday (for negative tests)."""
    folder.mkdir(parents=True, exist_ok=True)
    authority = ca or trustme.CA(organization_name="mailswarm test CA")
    not_before = not_after = None
    if expired:
        now = datetime.datetime.now(datetime.UTC)
        not_before, not_after = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
    leaf = authority.issue_cert(*names, not_before=not_before, not_after=not_after)
    ca_file = _write(folder / "ca.pem", authority.cert_pem.bytes())
    chain = b"".join(blob.bytes() for blob in leaf.cert_chain_pems)
    cert_file = _write(folder / f"{prefix}.pem", chain)
    key_file = _write(folder / f"{prefix}.key", leaf.private_key_pem.bytes(), private=True)
    return TestPki(folder, ca_file, cert_file, key_file, tuple(names))
