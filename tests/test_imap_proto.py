"""Pure IMAP syntax, both sides, without sockets: the server's command tokens, sequence sets,
SEARCH and FETCH rendering; the client's reply parsing of aioimaplib's Response lines."""

from __future__ import annotations

import pytest

from loadtests.clients.imap_replies import (
    is_keepalive,
    parse_expunge,
    parse_fetch,
    parse_mailbox,
    parse_search,
    parse_status,
    pushes_in,
)
from loadtests.embedded.imap_proto import (
    ImapSyntaxError,
    compile_search,
    literal_size,
    parse_command,
    parse_fetch_items,
    parse_seqset,
    render_fetch,
    tokenize,
)
from loadtests.embedded.mailstore import Message

MSG = Message(7, b"From: <a@x.test>\r\nSubject: Hello World\r\nTo: <b@y.test>\r\n\r\n"
                 b"first line\r\nsecond (line)\r\n", {"\\Seen"})


def test_tokenize_atoms_strings_lists_literals_and_sections() -> None:
    assert tokenize(b'"INBOX" (MESSAGES UNSEEN) {3}\r\nabc x') == [
        "INBOX", ["MESSAGES", "UNSEEN"], "abc", "x"]
    assert tokenize(b'1:* (UID BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.10>)') == [
        "1:*", ["UID", "BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.10>"]]
    assert tokenize(rb'"a \"quoted\" \\ str"') == ['a "quoted" \\ str']
    for bad in (b"(a", b"a)", b'"open', b"{9}\r\nabc"):
        with pytest.raises(ImapSyntaxError):
            tokenize(bad)


def test_parse_command_and_literals() -> None:
    assert parse_command(b"a1 uid fetch 1 FLAGS\r\n") == ("a1", "UID", ["fetch", "1", "FLAGS"])
    assert parse_command(b'A2 LOGIN {4+}\r\nuser "pw"\r\n') == ("A2", "LOGIN", ["user", "pw"])
    assert literal_size(b"a LOGIN {12}") == (12, True)
    assert literal_size(b"a LOGIN {12+}") == (12, False)
    assert literal_size(b"a NOOP") is None
    with pytest.raises(ImapSyntaxError, match=r"^\*$"):
        parse_command(b"\r\n")
    with pytest.raises(ImapSyntaxError, match=r"^t1$"):
        parse_command(b"t1 LOGIN (unbalanced\r\n")


def test_seqsets() -> None:
    test = parse_seqset("1:3,7,10:*", 12)
    assert [n for n in range(1, 14) if test(n)] == [1, 2, 3, 7, 10, 11, 12]
    assert parse_seqset("*", 5)(5) and not parse_seqset("*", 5)(4)
    assert parse_seqset("9:*", 5)(5)  # n:* past the end still names the last one
    with pytest.raises(ImapSyntaxError):
        parse_seqset("0:x", 5)


@pytest.mark.parametrize(("criteria", "hit"), [
    ("ALL", True), ("SEEN", True), ("UNSEEN", False), ("FLAGGED", False),
    ('SUBJECT "hello world"', True), ("FROM a@x", True), ("TO a@x", False),
    ('TEXT "second (line)"', True), ('BODY "Subject"', False), ("TEXT subject", True),
    ('HEADER To "y.test"', True), ("LARGER 10", True), ("SMALLER 10", False),
    ("NOT SEEN", False), ("OR FLAGGED SUBJECT hello", True), ("(SEEN FROM a@x)", True),
    ("UID 7", True), ("UID 1:6", False), ("3", True), ("1:2", False),
    ("CHARSET utf-8 SUBJECT hello", True), ("SENTON 1-Jan-1970", True),
])
def test_search(criteria: str, hit: bool) -> None:
    predicate = compile_search(tokenize(criteria.encode()), 5, lambda s: s, 9)
    assert predicate(3, MSG) is hit


def test_search_rejects_unknown_keys() -> None:
    with pytest.raises(ImapSyntaxError):
        compile_search(["BOGUS"], 1, lambda s: s, 1)


def test_fetch_rendering() -> None:
    items = parse_fetch_items(["UID", "FLAGS", "RFC822.SIZE", "BODY.PEEK[HEADER]"])
    out = render_fetch(3, MSG, items, with_uid=False)
    header = MSG.data.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    assert out == (b"* 3 FETCH (UID 7 FLAGS (\\Seen) RFC822.SIZE %d BODY[HEADER] {%d}\r\n"
                   % (MSG.size, len(header)) + header + b")\r\n")
    whole = render_fetch(3, MSG, parse_fetch_items("RFC822"), with_uid=True)
    assert whole.startswith(b"* 3 FETCH (UID 7 RFC822 {%d}\r\n" % MSG.size)
    fields = render_fetch(3, MSG, parse_fetch_items("BODY[HEADER.FIELDS (SUBJECT)]"),
                          with_uid=False)
    assert b"{24}\r\nSubject: Hello World\r\n\r\n)" in fields
    partial = render_fetch(1, MSG, parse_fetch_items("BODY.PEEK[TEXT]<0.5>"), with_uid=False)
    assert partial == b"* 1 FETCH (BODY[TEXT]<0> {5}\r\nfirst)\r\n"
    assert [i.name for i in parse_fetch_items("FAST")] == ["FLAGS", "INTERNALDATE",
                                                           "RFC822.SIZE"]
    assert not parse_fetch_items("BODY[]")[0].peek
    with pytest.raises(ImapSyntaxError):
        parse_fetch_items("BODY[5.MIME.X]")


# ---- client side: the lines aioimaplib hands back ----------------------------------------

def test_parse_mailbox() -> None:
    info = parse_mailbox([b"FLAGS (\\Answered \\Seen)", b"OK [PERMANENTFLAGS ()] Flags",
                          b"5 EXISTS", b"1 RECENT", b"OK [UNSEEN 2] First unseen.",
                          b"OK [UIDVALIDITY 1700] UIDs valid", b"OK [UIDNEXT 9] Predicted",
                          b"[READ-ONLY] Examine completed (0.001 secs)."])
    assert (info.exists, info.recent, info.unseen, info.uid_validity, info.uid_next) == (
        5, 1, 2, 1700, 9)
    assert info.flags == ("\\Answered", "\\Seen") and info.read_only


def test_parse_fetch_with_literals() -> None:
    lines = [b"1 FETCH (UID 4 FLAGS (\\Seen) RFC822.SIZE 30 BODY[] {5}", bytearray(b"hello"),
             b")", b"2 FETCH (FLAGS () UID 5 BODY[HEADER] {3}", bytearray(b"a\r\n"), b")",
             b"Fetch completed (0.001 + 0.000 secs)."]
    got = parse_fetch(lines)
    assert [(m.seq, m.uid, m.flags, m.body) for m in got] == [
        (1, 4, ("\\Seen",), b"hello"), (2, 5, (), b"a\r\n")]
    assert got[0].size == 30


def test_parse_search_status_expunge_and_pushes() -> None:
    assert parse_search([b"1 4 9", b"Search completed (0.001 + 0.000 secs)."]) == [1, 4, 9]
    assert parse_search([b"", b"Search completed."]) == []
    assert parse_search([b"SEARCH 2 3", b"OK"]) == [2, 3]
    assert parse_status([b'INBOX (MESSAGES 3 UNSEEN 1)', b"Status completed."]) == {
        "MESSAGES": 3, "UNSEEN": 1}
    assert parse_expunge([b"3 EXPUNGE", b"2 EXPUNGE", b"Expunge completed."]) == [3, 2]
    assert pushes_in([b"OK Still here", b"4 EXISTS", b"1 RECENT", b"2 FETCH (FLAGS ())",
                      b"3 EXPUNGE"]) == [b"4 EXISTS", b"2 FETCH (FLAGS ())", b"3 EXPUNGE"]
    assert is_keepalive(b"OK Still here") and not is_keepalive(b"4 EXISTS")
