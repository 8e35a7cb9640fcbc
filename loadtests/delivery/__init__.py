"""Delivery tracking: every message the server accepted, found on the far side (POP3 polling
of the recipients' mailboxes), verified against its checksum, and timed; what is not found
by the deadline is lost.

- `settings`: the profile's `delivery:` section;
- `sent`: `sent` records from the SMTP users' request events (workers ship them too);
- `ledger`: pure bookkeeping of expected and found copies;
- `pop3`: one poll of one mailbox; `tracker`: the asyncio polling loop;
- `hook`: the few calls a run makes (gevent side).
"""

__all__: list[str] = []
