"""The results stream's one definition: every kind round-trips typed, the hand-formatted `req`
line equals the generic encoder's, cut-off and old/new schema streams, the README's field table,
and the readers' use of the records' codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streams import T0, req, write_stream

from loadtests.analysis.cause import attribute_cause
from loadtests.monitor.resources import http_sockets
from loadtests.report import finish_run
from loadtests.report.series import failure_cause
from loadtests.stream import (
    CODECS,
    RECORD_TYPES,
    RESULTS_FILE,
    SCHEMA,
    Delivery,
    End,
    Header,
    Phase,
    Queue,
    Req,
    Sample,
    Sent,
    Step,
    StreamVersionError,
    StreamWriter,
    Tick,
    TlsSeen,
    Tracking,
    UserError,
    WorkerEvent,
    decode,
    read_stream,
    req_dict,
    req_record,
    to_dict,
)
from loadtests.stream.codec import generic_codec
from loadtests.stream.fields import BEGIN, END, render_field_table

README = Path(__file__).resolve().parent.parent / "README.md"

ONE_OF_EACH = [
    Header(T0, version="9.9", profile={"name": "p", "scenarios": []}, profile_file="p.yaml",
           target={"name": "t", "endpoints": {}}, monitor={"groups": {}}, duration=30.0,
           workers=2, rates={"smtp": 50.0}),
    Req(T0 + 0.1, "SMTP", "DATA", 12.5, 2048, False, "SMTPResponseException: 421 busy", 421,
        "smtp", lag_ms=3.25, worker="w1"),
    Tick(T0 + 1, 1.0, "running", 10, {"smtp": {"intended": 50, "late": 1}},
         {"SMTP": {"open": 3, "peak": 5, "opened": 50, "dropped": 0}}),
    Phase(T0, "arrival_start", "smtp"),
    Sample(T0 + 1, {"imap": {"open_fds": 12, "fd_limit": 1024}}, {"tcp": {"ports": {}}},
           {"open_fds": 40}, {"wall_ms": 1.5, "cpu_ms": 1.0}, agent_error="agent down"),
    Step(T0 + 10, 100, 98, T0, T0 + 10, 500, 3, 41.5, False, ["3.0% failed"],
         {"ImapReplyError: NO x": 3}, {"NO": 3}),
    UserError(T0 + 2, "SmtpUser_smtp", "KeyError: 'x'", None, worker="w2"),
    WorkerEvent(T0 + 3, "lost", 1, 2, "gen2", 4242, 5, {"smtp": {"intended": 80}},
                "its process exited (signal 9)", worker="gen2_ab12"),
    Sent(T0 + 0.2, "<a.1@mailswarm.test>", ["user0001@example.test"], "smtp", worker="w1"),
    Delivery(T0 + 0.7, "<a.1@mailswarm.test>", "user0001@example.test", "corrupt", 0.5, "body",
             "pop3"),
    Delivery(T0 + 120, "<a.2@mailswarm.test>", "user0002@example.test", "lost", via="pop3"),
    Queue(T0 + 1, "postfix", {"incoming": 0, "active": 12, "deferred": 1, "maildrop": 0}),
    Tracking(T0 + 2, "imap-idle", 3, 0, "ImapConnectError: connect to 127.0.0.1:1: refused",
             "ImapConnectError: connect to 127.0.0.1:1: refused"),
    TlsSeen(T0 + 0.1, "imap", "TLSv1.3", "TLS_AES_256_GCM_SHA384", worker="w1"),
    End(T0 + 11, "interrupted", T0 + 10.5, embedded_target={"smtp_messages": 500}),
]


def test_every_kind_round_trips_typed(tmp_path: Path) -> None:
    assert {type(r) for r in ONE_OF_EACH} == set(RECORD_TYPES)
    path = tmp_path / RESULTS_FILE
    writer = StreamWriter(path)
    for record in ONE_OF_EACH:
        writer.write(record)
    writer.close()
    back = list(read_stream(path))
    assert back == ONE_OF_EACH
    assert [type(r) for r in back] == [type(r) for r in ONE_OF_EACH]
    assert [r.seq for r in back] == list(range(1, len(ONE_OF_EACH) + 1))
    assert back[0].schema == SCHEMA
    assert back[1] != Req(T0 + 0.1, "SMTP", "DATA", 12.5)  # a test that can fail
    for record in ONE_OF_EACH:  # the dicts a worker ships decode to the same record
        assert decode(to_dict(record)) == record


@pytest.mark.parametrize("record", [
    Req(T0, "SMTP", "session", 10.0),
    Req(T0 + 0.123456789, "IMAP", "LOGIN", 0.5, 0, False, 'ImapReplyError: NO "é" \\ x', "NO",
        None),
    Req(T0, "SMTP", "CONNECT", 1e-7, 7, False, "ConnectionRefusedError: [Errno 111] x",
        "ECONNREFUSED", "smtp", lag_ms=12.0, worker="192.168.0.1_abc"),
    Req(T0, "SMTP", "RCPT", float("nan"), 0, False, "SMTPResponseException: 550 no", 550, "s"),
    Req(T0, "HTTP", "POLL", 3, 0, False, "ServerError: \u2603\n\t\"x\"", 503, "w", lag_ms=2),
])
def test_req_fast_path_equals_the_generic_encoder(record: Req) -> None:
    fast = CODECS["req"].encode(record, 42)
    assert fast == generic_codec(Req).encode(record, 42)
    assert json.loads(fast.replace("NaN", "null"))["seq"] == 42


def test_request_listener_writes_the_record_of_the_event(tmp_path: Path) -> None:
    """Locust's request event through the writer's listener gives the line of `req_record`."""
    error = ConnectionRefusedError(111, "Connection refused")
    event = {"request_type": "SMTP", "name": "CONNECT", "response_time": 1.23456,
             "response_length": None, "exception": error, "start_time": T0,
             "context": {"scenario": "smtp", "lag_ms": 2.5}}
    writer = StreamWriter(tmp_path / RESULTS_FILE)
    writer.on_request(**event)
    writer.close()
    line = (tmp_path / RESULTS_FILE).read_text().rstrip("\n")
    record = req_record(**event)
    assert line == CODECS["req"].encode(record, 1)
    assert req_dict(**event) == to_dict(record)  # what a worker ships
    assert record.code == "ECONNREFUSED" and record.err == \
        "ConnectionRefusedError: [Errno 111] Connection refused"
    assert record.ms == 1.235 and record.len == 0 and not record.ok


def test_a_cut_off_last_line_is_skipped(tmp_path: Path) -> None:
    folder = write_stream(tmp_path / "run", [req(0.1, "SMTP", "DATA", 5.0)])
    path = folder / RESULTS_FILE
    whole = list(read_stream(path))
    with path.open("a") as out:
        out.write('{"kind":"req","seq":99,"ts":1.0,"type":"SMTP","na')
    assert list(read_stream(path)) == whole


def test_a_stream_without_schema_is_schema_1_and_reads(tmp_path: Path) -> None:
    path = tmp_path / RESULTS_FILE
    lines = [{"kind": "run", "seq": 1, "ts": T0, "profile": {"name": "old"}, "target": {}},
             {"kind": "req", "seq": 2, "ts": T0, "type": "SMTP", "name": "DATA", "ms": 3,
              "len": 0, "ok": False, "err": "SMTPResponseException: 421 busy", "sc": "s"},
             {"kind": "step", "seq": 3, "ts": T0, "users": 10, "held": 10, "start": T0,
              "end": T0 + 1, "requests": 1, "failures": 1, "p_latency_ms": 3, "good": False,
              "reasons": ["x"], "errors": {"SMTPResponseException: 421 busy": 1}},
             {"kind": "future-kind", "seq": 4, "ts": T0}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    header, request, step = read_stream(path)
    assert isinstance(header, Header) and header.schema == 1
    assert isinstance(request, Req) and request.code is None and request.ms == 3
    assert isinstance(step, Step) and step.codes is None
    # without codes, the reply code is read from the text (the schema 1 fallback)
    assert failure_cause(request.err, request.code) == "SMTPResponseException 421: busy"
    assert attribute_cause(None, step, [], [])[0].startswith("server reply 421")


def test_a_newer_schema_is_refused_naming_both_versions(tmp_path: Path) -> None:
    from loadtests.cli import EXIT_BAD_INPUT, main

    path = tmp_path / RESULTS_FILE
    path.write_text(json.dumps({"kind": "run", "seq": 1, "ts": T0, "schema": SCHEMA + 1,
                                "version": "99.0"}) + "\n")
    with pytest.raises(StreamVersionError, match=f"schema {SCHEMA + 1} .*schema {SCHEMA} "):
        list(read_stream(path))
    assert main(["report", str(tmp_path)]) == EXIT_BAD_INPUT


def test_readme_field_table_matches_the_definition() -> None:
    text = README.read_text(encoding="utf-8")
    assert BEGIN in text and END in text
    documented = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert documented == render_field_table(), \
        "README's stream fields are stale: paste `python -m loadtests.stream.fields` there"


def test_codes_decide_the_cause_where_records_have_them() -> None:
    assert failure_cause("ImapReplyError: LOGIN NO [LIMIT] x", "NO") == \
        "ImapReplyError NO: LOGIN NO [LIMIT] x"
    assert failure_cause("SMTPResponseException: 421 busy", 421) == \
        "SMTPResponseException 421: busy"
    # schema 2: a 421 in the text (a port) without the code is not a 421 reply
    port = Step(T0, 10, errors={"OSError: connect to 127.0.0.1:4210 failed": 5}, codes={})
    assert attribute_cause(None, port, [], [])[0] == "unknown"
    coded = Step(T0, 10, errors={"SMTPResponseException: busy": 5}, codes={"421": 5})
    assert attribute_cause(None, coded, [], [])[0].startswith("server reply 421")
    emfile = Step(T0, 10, errors={"OSError: x": 2}, codes={"EMFILE": 2})
    assert attribute_cause(None, emfile, [], [])[0] == "generator: open files limit"


def test_http_sockets_sum_the_web_ports() -> None:
    system = {"tcp": {"ports": {"80": {"remote": {"ESTABLISHED": 4, "TIME_WAIT": 1},
                                       "local": {"ESTABLISHED": 4, "TIME_WAIT": 2}},
                                "8080": {"remote": {"ESTABLISHED": 1}}}}}
    web = http_sockets(system, ["80", "8080", "443"])
    assert (web.connections, web.time_wait_client, web.time_wait_target) == (5, 1, 2)
    assert web.time_wait == 3


def test_the_end_of_a_run_reads_the_stream_once(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """finish_run: one pass builds summary (QoS inside, written once), report and tables."""
    import loadtests.analysis.stream as analysis_stream

    folder = write_stream(tmp_path / "run", [req(i / 10, "SMTP", "DATA", 5.0)
                                             for i in range(20)])
    passes: list[Path] = []
    real = analysis_stream.read_stream

    def counted(path: Path):  # type: ignore[no-untyped-def]
        passes.append(path)
        return real(path)

    monkeypatch.setattr(analysis_stream, "read_stream", counted)
    summary = finish_run(folder)
    assert len(passes) == 1
    saved = json.loads((folder / "summary.json").read_text())
    assert saved == summary and saved["qos"]["pass"] is True
    assert (folder / "report.html").is_file() and (folder / "requests.csv").is_file()


@pytest.mark.parametrize("first", [b"\xff\xd8\xff\xe0 binary\x00\n", b"[1, 2, 3]\n",
                                   b'"just a string"\n', b'{"kind": "run", "ts": "today"}\n',
                                   b'{"kind": "req", "ts": 1}\n'])
def test_a_stream_not_starting_with_a_header_is_refused(tmp_path: Path, first: bytes,
                                                       capsys: pytest.CaptureFixture) -> None:
    """report and compare: a clear message and exit 2, never a traceback."""
    from loadtests.cli import EXIT_BAD_INPUT, main
    from loadtests.stream import StreamError

    good = write_stream(tmp_path / "good", [req(0.1, "SMTP", "DATA", 5.0)])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / RESULTS_FILE).write_bytes(first + (good / RESULTS_FILE).read_bytes())
    with pytest.raises(StreamError, match="line 1"):
        list(read_stream(bad / RESULTS_FILE))
    assert main(["report", str(bad)]) == EXIT_BAD_INPUT
    assert main(["compare", str(good), str(bad)]) == EXIT_BAD_INPUT
    assert "not a mailswarm results stream" in capsys.readouterr().err


def test_bad_lines_in_the_middle_are_skipped_and_counted(tmp_path: Path) -> None:
    folder = write_stream(tmp_path / "run", [req(0.1, "SMTP", "DATA", 5.0),
                                             req(0.2, "SMTP", "DATA", 6.0)])
    path = folder / RESULTS_FILE
    lines = path.read_bytes().splitlines(keepends=True)
    bad = [b"{}\n", b"null\n", b"\x80\x81\n", b'{"kind":"tick","ts":1,"scenarios":[1]}\n',
           b'{"kind":"req","ts":1.0,"type":"SMTP","name":"DATA","ms":"fast","ok":true}\n',
           b'{"kind":"req","ts":1.0,"type":"SMTP","name":"DATA","ms":1,"ok":"yes"}\n']
    path.write_bytes(b"".join(lines[:3] + bad + lines[3:]))
    reader = read_stream(path)
    records = list(reader)
    assert [type(r) for r in records] == [Header, Phase, Req, Req, End]
    assert [n for n, _ in reader.skipped] == [4, 5, 6, 7, 8, 9]
    assert "not UTF-8" in reader.skipped[2][1] and "ms" in reader.skipped[4][1]
