"""Webmail users in a browser: log in, open the inbox, poll every 60 s, open a message now and
then, sometimes send one, log out after 2 minutes; a new TCP connection per request
(`connection: close`, as the seed's WebUser clients).

    mailswarm target &                   # webmail http://127.0.0.1:20080
    MAILSWARM_PASSWORD=mailswarm-test locust -f examples/locustfiles/webuser.py \\
        --headless -u 3000 -r 100 -t 3m --mailswarm-out out/web
"""

import loadtests.locust.plugin  # noqa: F401  (stream, monitor, report)
from loadtests.locust import WebUser


class Webmail(WebUser):
    host = "http://127.0.0.1:20080"
    web = {"app": "embedded", "connection": "close", "session_length": "2m",
           "poll_interval": "60s", "open_message_ratio": 0.3, "send_ratio": 0.05}
