"""The stack's test PKI: a CA and one server certificate made at `up`, and a key copy per user.

Nothing is checked in: `ensure_pki` writes <run>/tls/{ca.pem,server.pem,server.key} with
loadtests/certs.py the first time (and again when the certificate is missing or about to
expire), so the target file's TLS endpoints verify against `ca.pem` with verification on.
Some servers read their key after dropping privileges (perdition as nobody), so each service
gets its own copy of the key, owned by its user and readable by it alone (`service_key`).
"""

from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from loadtests.stack.services.base import system_ids
from loadtests.stack.settings import MAIL_HOST, StackConfig

__all__ = [
    "CERT_NAMES",
    "ca_file",
    "cert_file",
    "ensure_pki",
    "install_service_key",
    "service_key",
]

if TYPE_CHECKING:
    from loadtests.certs import TestPki

# trustme and cryptography are imported when certificates are made: `stack install` runs on
# the system's python, before the project's environment exists
CERT_NAMES = ("localhost", "127.0.0.1", "::1", MAIL_HOST, "example.test")
"""What the server certificate is valid for: loopback and the mail host."""


def ca_file(cfg: StackConfig) -> Path:
    """The CA a client trusts (the target file's `ca_file`)."""
    return cfg.tls_dir / "ca.pem"


def cert_file(cfg: StackConfig) -> Path:
    """The server's certificate chain (leaf first), readable by everyone."""
    return cfg.tls_dir / "server.pem"


def _key_file(cfg: StackConfig) -> Path:
    return cfg.tls_dir / "server.key"


def _still_valid(cert: Path) -> bool:
    from cryptography import x509

    try:
        leaf = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError):
        return False
    margin = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    return leaf.not_valid_after_utc > margin


def ensure_pki(cfg: StackConfig) -> TestPki:
    """The stack's CA and server certificate, made now unless valid ones are already there."""
    from loadtests.certs import TestPki, make_test_pki

    files = (ca_file(cfg), cert_file(cfg), _key_file(cfg))
    if all(p.is_file() for p in files) and _still_valid(cert_file(cfg)):
        pki = TestPki(cfg.tls_dir, *files, CERT_NAMES)
    else:
        pki = make_test_pki(cfg.tls_dir, CERT_NAMES)
    cfg.tls_dir.chmod(0o755)  # the CA and certificate are public; the keys are 0600
    for public in (pki.ca_file, pki.cert_file):
        public.chmod(0o644)
    return pki


def service_key(cfg: StackConfig, user: str | None = None) -> Path:
    """Where a service's copy of the private key lives (`user` None: root's own key)."""
    return _key_file(cfg) if user is None else cfg.tls_dir / f"server-{user}.key"


def install_service_key(cfg: StackConfig, user: str, group: str | None = None) -> Path:
    """Copy the private key for a service that reads it as `user` (mode 0600, owned by it)."""
    target = service_key(cfg, user)
    # a temporary name of its own: nginx and Roundcube both install www-data's copy, maybe at once
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:  # mkstemp makes it 0600
            out.write(_key_file(cfg).read_bytes())
        if os.geteuid() == 0:
            os.chown(tmp, *system_ids(user, group))
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
