"""`SubmissionUser`: a mail client submitting mail — authenticated SMTP on 587 (STARTTLS) or
465 (implicit TLS), no MX lookup.

The same session as `SmtpUser` (CONNECT, EHLO, STARTTLS + TLS per the endpoint, EHLO), with an
`AUTH` step (PLAIN or LOGIN, the profile's `smtp.auth`) as a random user of the target before
the envelopes. AUTH over a connection without TLS is refused unless the endpoint says
`allow_plaintext_auth: true`; the password never reaches the stream (see clients/smtp.py).
"""

from __future__ import annotations

from loadtests.clients.smtp import SmtpAuth
from loadtests.users.smtp import SmtpUser

__all__ = ["SubmissionUser"]


class SubmissionUser(SmtpUser):
    abstract = True
    kind = "submission"
    mx_lookups = False  # a mail client submits to its configured server

    def auth(self) -> SmtpAuth:
        users = self.target.users
        return SmtpAuth(
            user=users.name(self.rng.randrange(users.count)), password=self.target.secret() or "",
            mechanism=self.scenario.smtp.auth,
            allow_plaintext=self.endpoint().allow_plaintext_auth)
