"""The seed's POP3 ISP: 100,000 users checking mail twice in 12 peak hours, 15 s a check, as
an open model (Poisson arrivals); each check fetches only what is new ("leave mail on server").

    mailswarm target &                   # POP3 127.0.0.1:20110, mailboxes user0001..user1000
    MAILSWARM_PASSWORD=mailswarm-test locust -f examples/locustfiles/pop3_isp.py \\
        --headless -t 3m --mailswarm-out out/pop3

The profile's bursts (a quarter of the checks at the top of each minute) come with
`--mailswarm-profile profiles/pop3-isp-100k.yaml`, which takes the whole scenario from there.
"""

import loadtests.locust.plugin  # noqa: F401  (stream, monitor, pacer, report)
from loadtests.locust import Pop3CheckMailUser
from loadtests.schedule.population import derive

POPULATION = derive(users=100_000, checks_per_user=2, session_time=15.0, peak_window=12 * 3600)


class Pop3Isp(Pop3CheckMailUser):
    host = "pop3://127.0.0.1:20110"
    arrival_rate = POPULATION.rate_per_s  # ~4.6 checks/s
    arrival_process = "poisson"
    max_in_flight = 400  # the checks a server holds at once at most
    arrival_max_wait = 2.0
    pop3 = {"retrieve": "new", "delete": False, "session_time": 15.0}
