"""The embedded default target: small real servers run in a separate process, so their fds and
threads are measured apart from the generator. SMTP (aiosmtpd) accepts mail for the test
domain's users, DNS (dnspython) answers its MX, and POP3, IMAP and HTTP webmail (aiohttp) serve
one generated mailbox per user (mailstore.py).

`EmbeddedTarget` (launcher.py) starts and stops that process from the runner;
`python -m loadtests.embedded` / `mailswarm target` run it in the foreground.
"""

from loadtests.embedded.config import FAULTS, EmbeddedSettings
from loadtests.embedded.launcher import EmbeddedTarget, TargetStartError

__all__ = ["FAULTS", "EmbeddedSettings", "EmbeddedTarget", "TargetStartError"]
