"""mailswarm from Locust: the user classes for a locustfile (`users`, configured by `config`)
and, with `import loadtests.locust.plugin`, mailswarm's measurements in a plain `locust` run
(results stream, target monitor, open-model pacers, ceiling shape, summary and report).

    from loadtests.locust import SmtpUser, Pop3CheckMailUser, ImapIdleUser, ImapActiveUser, WebUser
"""

from loadtests.locust.users import (
    ImapActiveUser,
    ImapIdleUser,
    LocustfileUser,
    Pop3CheckMailUser,
    SmtpUser,
    WebUser,
)

__all__ = ["ImapActiveUser", "ImapIdleUser", "LocustfileUser", "Pop3CheckMailUser", "SmtpUser",
           "WebUser"]
