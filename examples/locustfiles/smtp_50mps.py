"""50 SMTP messages a second, each session after the MX lookup a mail server makes (open
model: sessions start on schedule whatever the server does; late and dropped ones counted).

    mailswarm target &                   # SMTP 127.0.0.1:20025, DNS 127.0.0.1:20053
    locust -f examples/locustfiles/smtp_50mps.py --headless -t 20s \\
        --csv out/locust --mailswarm-out out/smtp50
    mailswarm report out/smtp50
"""

import loadtests.locust.plugin  # noqa: F401  (stream, monitor, pacer, report)
from loadtests.locust import SmtpUser


class Smtp50(SmtpUser):
    host = "smtp://127.0.0.1:20025"
    dns_host = "dns://127.0.0.1:20053"  # the MX lookups' server (or --mailswarm-dns)
    arrival_rate = 50  # sessions/s, one message each
    max_in_flight = 50  # SMTP channels (Locust users) serving the arrivals
    smtp = {"messages_per_session": 1, "size": {"fixed": 2048}, "mx_lookup": True}
    dns = {"max_concurrent": 20, "cache": False}
