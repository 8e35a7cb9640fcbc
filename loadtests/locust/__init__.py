"""mailswarm from Locust: the user classes for a locustfile (`users`, configured by `config`)
and, with `import loadtests.locust.plugin`, mailswarm's measurements in a plain `locust` run
(results stream, target monitor, open-model pacers, ceiling shape, summary and report);
`export` writes a profile as an equivalent locustfile (`mailswarm locustfile`).

    from loadtests.locust import SmtpUser, SubmissionUser, Pop3CheckMailUser, ImapIdleUser, \
        ImapActiveUser, WebUser

The classes are imported on first use, so `export` (and the CLI) load without Locust.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loadtests.locust.users import (
        ImapActiveUser,
        ImapIdleUser,
        LocustfileUser,
        Pop3CheckMailUser,
        SmtpUser,
        SubmissionUser,
        WebUser,
    )

__all__ = ["ImapActiveUser", "ImapIdleUser", "LocustfileUser", "Pop3CheckMailUser", "SmtpUser",
           "SubmissionUser", "WebUser"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("loadtests.locust.users"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
