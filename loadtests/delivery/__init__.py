"""Delivery tracking: every message the server accepted, found on the far side (POP3 polling
of the recipients' mailboxes, their maildirs, or IMAP sessions in IDLE on watched recipients'
INBOX), verified against its checksum, and timed; what is not found by the deadline is lost.

- `settings`: the profile's `delivery:` section;
- `sent`: `sent` records from the SMTP users' request events (workers ship them too);
- `ledger`: pure bookkeeping of expected and found copies;
- `pop3`, `maildir`: one poll of one mailbox; `imap_idle`: standing IDLE sessions that fetch
  what the server pushes; `queue`: a Postfix queue's sizes;
- `tracker`: the asyncio loop (polling, or the IDLE watcher);
- `hook`: the few calls a run makes (gevent side).
"""

__all__: list[str] = []
