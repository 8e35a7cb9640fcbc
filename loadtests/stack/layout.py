"""The mailbox layout of the stack's domain (flat or hashed) as each side spells it, and the
provisioning of every account's maildir before the servers start.

Postfix learns each mailbox's path from its virtual_mailbox_maps (one line per account, written
here from `settings.mailbox_path`); Dovecot computes it from `mail_location` variables, which
`dovecot_location` keeps equal to the same function (a stack test checks that mail Postfix
delivers is what Dovecot serves).

Provisioning creates <mailbox>/{cur,new,tmp} for every account, so the domain directory really
holds N entries (flat) or N spread over subdirectories (hashed) whichever accounts get mail.
A marker file records what was provisioned; a different layout or count starts the domain's
tree again (the stack's mail is test mail).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from loadtests.stack.settings import (
    DOMAIN,
    MAIL_GID,
    MAIL_UID,
    Layout,
    StackConfig,
    mailbox_path,
    user_names,
)

__all__ = ["dovecot_location", "postfix_vmailbox", "provision", "provisioned"]

_MARKER = ".mailswarm-provisioned"


def dovecot_location(mail_dir: Path, layout: Layout) -> str:
    """The maildir path for Dovecot's `mail_location` and userdb home, in Dovecot variables."""
    if layout == "hashed":
        return f"{mail_dir}/%d/%-2.2n/%-4.2n/%n"  # last two characters, then the two before
    return f"{mail_dir}/%d/%n"


def postfix_vmailbox(cfg: StackConfig) -> str:
    """virtual_mailbox_maps: address -> maildir relative to virtual_mailbox_base (the trailing
    slash asks for maildir delivery)."""
    return "".join(f"{u}@{DOMAIN} {mailbox_path(u, cfg.layout)}/\n"
                   for u in user_names(cfg.users))


def _marker_text(cfg: StackConfig) -> str:
    return f"{cfg.layout} {cfg.users}\n"


def provisioned(cfg: StackConfig) -> bool:
    """True when the domain's tree already holds this layout and account count."""
    try:
        return (cfg.mail_dir / DOMAIN / _MARKER).read_text() == _marker_text(cfg)
    except OSError:
        return False


def provision(cfg: StackConfig) -> float:
    """Create every account's maildir (owned by the mail uid when root); returns the seconds
    it took (0 when already provisioned)."""
    if provisioned(cfg):
        return 0.0
    started = time.monotonic()
    domain = cfg.mail_dir / DOMAIN
    if domain.exists():
        shutil.rmtree(domain)
    domain.mkdir(parents=True)
    chown = os.geteuid() == 0
    made: set[str] = {str(domain)}
    for user in user_names(cfg.users):
        box = str(cfg.mail_dir / mailbox_path(user, cfg.layout))
        parent = os.path.dirname(box)
        while parent not in made:  # the hashed layout's bucket directories, once each
            os.makedirs(parent, exist_ok=True)
            if chown:
                os.chown(parent, MAIL_UID, MAIL_GID)
            made.add(parent)
            parent = os.path.dirname(parent)
        os.mkdir(box)
        for sub in ("cur", "new", "tmp"):
            os.mkdir(os.path.join(box, sub))
        if chown:
            for path in (box, f"{box}/cur", f"{box}/new", f"{box}/tmp"):
                os.chown(path, MAIL_UID, MAIL_GID)
    if chown:
        os.chown(domain, MAIL_UID, MAIL_GID)
    (domain / _MARKER).write_text(_marker_text(cfg))
    return time.monotonic() - started
