"""The embedded default target: small real servers (SMTP on aiosmtpd, DNS on dnspython) run in a
separate process, so their fds and threads are measured apart from the generator.

`EmbeddedTarget` (launcher.py) starts and stops that process from the runner;
`python -m loadtests.embedded` / `mailswarm target` run it in the foreground.
"""

from loadtests.embedded.config import FAULTS, EmbeddedSettings
from loadtests.embedded.launcher import EmbeddedTarget, TargetStartError

__all__ = ["FAULTS", "EmbeddedSettings", "EmbeddedTarget", "TargetStartError"]
