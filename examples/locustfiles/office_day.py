"""A mixed office day on one mail system: mail arriving over SMTP (open model, MX lookups
first), people reading mail over IMAP (open model), IMAP clients idling in the background,
POP3 checks, and webmail users — each class its own protocol and host.

    mailswarm target &
    MAILSWARM_PASSWORD=mailswarm-test locust -f examples/locustfiles/office_day.py \\
        --headless -u 140 -r 140 -t 5m --mailswarm-out out/office

The open-model classes run their `max_in_flight` channels (fixed counts); the rest of -u is
shared by weight between the idle IMAP clients and the webmail users. Another mail system:
`--mailswarm-target FILE` names its endpoints (they take precedence over the hosts below).
"""

from locust import between

import loadtests.locust.plugin  # noqa: F401  (stream, monitor, pacers, report)
from loadtests.locust import (
    ImapActiveUser,
    ImapIdleUser,
    Pop3CheckMailUser,
    SmtpUser,
    WebUser,
)


class InboundMail(SmtpUser):
    host = "smtp://127.0.0.1:20025"
    dns_host = "dns://127.0.0.1:20053"
    arrival_rate = 10
    max_in_flight = 20
    smtp = {"size": {"choices": [{"size": "2KiB", "weight": 8}, {"size": "40KiB", "weight": 2}]}}


class Reading(ImapActiveUser):
    host = "imap://127.0.0.1:20143"
    arrival_rate = 2
    max_in_flight = 20
    imap = {"actions": 3, "search": True, "flag_changes": True}


class Checking(Pop3CheckMailUser):
    host = "pop3://127.0.0.1:20110"
    arrival_rate = 1
    max_in_flight = 20


class Idling(ImapIdleUser):
    host = "imap://127.0.0.1:20143"
    weight = 3
    imap = {"hold": "30m"}


class Browsing(WebUser):
    host = "http://127.0.0.1:20080"
    weight = 1
    wait_time = between(1, 5)
    web = {"session_length": "2m", "poll_interval": "30s"}
