"""Thin Locust users: each turns one iteration of a client's behaviour into request events.

`ScenarioUser` is the abstract base (schedule handling, event firing); `SmtpUser` sends mail
(`SubmissionUser`: authenticated, as a mail client).
`user_class_for(scenario, ...)` builds the concrete class a profile's scenario runs.
"""

from loadtests.users.base import ScenarioUser, user_class_for
from loadtests.users.imap import ImapActiveUser, ImapIdleUser
from loadtests.users.pop3 import Pop3CheckMailUser
from loadtests.users.smtp import SmtpUser
from loadtests.users.submission import SubmissionUser
from loadtests.users.webuser import WebUser

__all__ = ["ImapActiveUser", "ImapIdleUser", "Pop3CheckMailUser", "ScenarioUser", "SmtpUser",
           "SubmissionUser", "WebUser", "user_class_for"]
