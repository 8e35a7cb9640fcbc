"""Test messages: exact size, and `verify` telling intact copies from corrupt ones (and which
part changed), whether read over POP3/IMAP (CRLF) or from a maildir file (LF)."""

from __future__ import annotations

import pytest

from loadtests.clients.message import (
    CHECKSUM_HEADER,
    SENT_HEADER,
    build_message,
    new_message_id,
    verify,
)


def _message(size: int = 2048, sent_at: float = 1_700_000_000.25) -> tuple[bytes, str]:
    mid = new_message_id()
    return build_message(sender="load@mailswarm.test", recipients=["user0001@example.test",
                                                                   "user0002@example.test"],
                         size=size, message_id=mid, sent_at=sent_at), mid


@pytest.mark.parametrize("size", [100, 400, 401, 402, 1024, 2048, 100_000])
def test_size_is_exact_and_the_message_verifies(size: int) -> None:
    data, mid = _message(size)
    assert len(data) == size or (size < 400 and data.endswith(b"\r\n\r\n"))
    verdict = verify(data)
    assert verdict.ok and verdict.corrupt is None
    assert verdict.message_id == mid and verdict.sent_at == 1_700_000_000.25


def test_a_delivered_copy_still_verifies() -> None:
    """What an MTA does to it: trace headers added, LF line ends in a maildir file."""
    data, _ = _message()
    delivered = (b"Return-Path: <load@mailswarm.test>\r\nDelivered-To: user0001@example.test\r\n"
                 b"Received: from localhost\r\n\tby mail.example.test (Postfix)\r\n" + data)
    assert verify(delivered).ok
    assert verify(delivered.replace(b"\r\n", b"\n")).ok


def test_a_changed_body_byte_is_a_corrupt_body() -> None:
    data, mid = _message()
    at = len(data) - 100
    bad = data[:at] + bytes([data[at] ^ 0x20]) + data[at + 1:]
    verdict = verify(bad)
    assert not verdict.ok and verdict.corrupt == "body" and verdict.message_id == mid


def test_changed_headers_and_both_parts() -> None:
    data, _ = _message()
    assert verify(data.replace(b"Subject: mailswarm", b"Subject: Mailswarm")).corrupt == "headers"
    both = data.replace(b"Subject: mailswarm", b"Subject: Mailswarm")[:-10] + b"xxxxxxxx\r\n"
    assert verify(both).corrupt == "headers+body"


def test_a_missing_or_mangled_checksum_header() -> None:
    data, mid = _message()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = [ln for ln in head.split(b"\r\n") if not ln.startswith(CHECKSUM_HEADER.encode())]
    verdict = verify(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    assert verdict.corrupt == "checksum" and verdict.message_id == mid
    assert verify(data.replace(f"{CHECKSUM_HEADER}: ".encode(),
                               f"{CHECKSUM_HEADER}: zz".encode())).corrupt == "checksum"
    assert verify(b"not a message").corrupt == "checksum"


def test_headers_are_where_a_reader_expects_them() -> None:
    data, mid = _message()
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    assert f"Message-ID: {mid}" in head and f"{SENT_HEADER}: 1700000000.250000" in head
    assert f"\r\n{CHECKSUM_HEADER}: " in head
