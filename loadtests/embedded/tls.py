"""The embedded target's TLS: its test CA and server certificate, made when it starts.

`server_tls(folder, certificate)` writes a CA (`ca.pem`, what the run trusts) and the server's
certificate into `folder` with `loadtests.certs`, and returns the server's `SSLContext` with the
CA file. `certificate` picks a variant for negative tests: `valid` (default), `wrong-name` (for
a name the run does not connect to), `expired`, `untrusted` (signed by a CA the run does not
trust). Also the SMTP AUTH check against the mailboxes' passwords (aiosmtpd's authenticator).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

import trustme
from aiosmtpd.smtp import AuthResult, LoginPassword

from loadtests.certs import make_test_pki
from loadtests.embedded.mailstore import MailStore

__all__ = ["Certificate", "SmtpAuthenticator", "server_tls"]

Certificate = Literal["valid", "wrong-name", "expired", "untrusted"]


def server_tls(folder: Path, certificate: Certificate = "valid") -> tuple[ssl.SSLContext, Path]:
    """(the servers' TLS context, the CA file clients trust), written into `folder`."""
    ca = trustme.CA(organization_name="mailswarm embedded target CA")
    trusted = make_test_pki(folder, ca=ca)
    if certificate == "wrong-name":
        served = make_test_pki(folder, ("mail.wrong-name.invalid",), prefix="wrong-name", ca=ca)
    elif certificate == "expired":
        served = make_test_pki(folder, prefix="expired", expired=True, ca=ca)
    elif certificate == "untrusted":
        served = make_test_pki(folder / "untrusted", prefix="untrusted")
    else:
        served = trusted
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(served.cert_file, served.key_file)
    return context, trusted.ca_file


class SmtpAuthenticator:
    """aiosmtpd's `authenticator`: PLAIN/LOGIN credentials checked against the mail store."""

    def __init__(self, store: MailStore) -> None:
        self.store = store
        self.successes = 0
        self.failures = 0

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str,
                 auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            box = self.store.authenticate(auth_data.login.decode("utf-8", "replace"),
                                          auth_data.password.decode("utf-8", "replace"))
            if box is not None:
                self.successes += 1
                return AuthResult(success=True, auth_data=box.user)
        self.failures += 1
        return AuthResult(success=False, handled=False)
