"""The embedded target's mailboxes: a generated mailbox per user, shared by its POP3, IMAP and
SMTP servers, safe to use from several threads (the thread-per-connection mode).

Mailboxes are made on first use from the user's number, so 100,000 users cost nothing until
they log in. Each starts with `messages_per_user` messages of `message_size` bytes; one message
in three has body lines starting with "." so clients' dot-unstuffing is exercised.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["MailStore", "Mailbox", "Message", "password_for"]

_USER = re.compile(r"user([0-9]{1,9})")  # ASCII digits; int() takes at most 4300


def password_for(user: str) -> str:
    """The embedded target's password for every user (one shared password, like the stack's)."""
    return "mailswarm-test"


@dataclass
class Message:
    uid: int
    data: bytes
    flags: set[str] = field(default_factory=set)
    internal_date: float = field(default_factory=time.time)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def unique_id(self) -> str:
        """A POP3 UIDL value: stable across sessions."""
        return hashlib.sha1(self.data).hexdigest()[:20] + f"-{self.uid}"


@dataclass
class Mailbox:
    user: str
    messages: list[Message]
    uid_validity: int
    next_uid: int
    lock: threading.RLock = field(default_factory=threading.RLock)
    listeners: list[Callable[[Mailbox], None]] = field(default_factory=list)

    def snapshot(self) -> list[Message]:
        with self.lock:
            return list(self.messages)

    def append(self, data: bytes, flags: set[str] | None = None) -> Message:
        with self.lock:
            message = Message(self.next_uid, data, set(flags or ()))
            self.next_uid += 1
            self.messages.append(message)
            listeners = list(self.listeners)
        for notify in listeners:  # e.g. an IMAP IDLE waiting for new mail
            notify(self)
        return message

    def expunge(self, uids: set[int]) -> list[int]:
        """Remove these messages; returns their sequence numbers (1-based, before removal)."""
        with self.lock:
            gone = [i + 1 for i, m in enumerate(self.messages) if m.uid in uids]
            self.messages = [m for m in self.messages if m.uid not in uids]
            return gone


def _generated_message(user: str, domain: str, n: int, size: int) -> bytes:
    head = (f"From: <sender{n}@mailswarm.test>\r\nTo: <{user}@{domain}>\r\n"
            f"Subject: test message {n} for {user}\r\n"
            f"Message-ID: <gen.{user}.{n}@mailswarm.test>\r\n"
            "Date: Mon, 23 Nov 2026 00:00:00 +0000\r\n\r\n").encode()
    lines = [f"line {i} of message {n} for {user}".encode() for i in range(max(1, size // 40))]
    if n % 3 == 0:
        lines[len(lines) // 2] = b"." + lines[len(lines) // 2]  # needs dot-stuffing on the wire
        lines.append(b".")
    body = b"\r\n".join(lines) + b"\r\n"
    return head + body


class MailStore:
    """All mailboxes of the target: `store.get("user0042")` or None for an unknown user."""

    def __init__(self, domain: str = "example.test", users: int = 1000,
                 messages_per_user: int = 5, message_size: int = 2048) -> None:
        self.domain = domain
        self.users = users
        self.messages_per_user = messages_per_user
        self.message_size = message_size
        self._boxes: dict[str, Mailbox] = {}
        self._lock = threading.Lock()

    def user_number(self, login: str) -> int | None:
        """1..users for `userNNNN` or `userNNNN@domain`, else None."""
        local, _, domain = login.lower().partition("@")
        match = _USER.fullmatch(local)
        if not match or (domain and domain != self.domain):
            return None
        n = int(match[1])
        return n if 1 <= n <= self.users else None

    def authenticate(self, login: str, password: str) -> Mailbox | None:
        if self.user_number(login) is None or password != password_for(login):
            return None
        return self.get(login)

    def get(self, login: str) -> Mailbox | None:
        n = self.user_number(login)
        if n is None:
            return None
        user = f"user{n:04d}"
        with self._lock:
            box = self._boxes.get(user)
            if box is None:
                msgs = [Message(i, _generated_message(user, self.domain, i, self.message_size))
                        for i in range(1, self.messages_per_user + 1)]
                box = Mailbox(user, msgs, uid_validity=1, next_uid=self.messages_per_user + 1)
                self._boxes[user] = box
            return box
