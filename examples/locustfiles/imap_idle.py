"""The seed's corporate IMAP users: sessions that log in, SELECT INBOX and stay in IDLE for
hours (re-armed every 25 min), counting what the server pushes; a dropped session reconnects
after a back-off. Closed model: Locust's -u is the number of idle sessions.

    mailswarm target &                   # IMAP 127.0.0.1:20143
    MAILSWARM_PASSWORD=mailswarm-test locust -f examples/locustfiles/imap_idle.py \\
        --headless -u 3000 -r 200 -t 60s --mailswarm-out out/idle
"""

import loadtests.locust.plugin  # noqa: F401  (stream, monitor, report)
from loadtests.locust import ImapIdleUser


class IdleCorporate(ImapIdleUser):
    host = "imap://127.0.0.1:20143"
    imap = {"mode": "idle", "hold": "9h", "idle_rearm": "25m",
            "reconnect": {"first": "1s", "max": "60s"}, "connect_timeout": "20s",
            "read_timeout": "60s"}
