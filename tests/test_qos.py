"""QoS verdict on crafted streams: the share under a bound comes from the distribution."""

from pathlib import Path

from streams import req, write_stream

from loadtests.analysis.qos import evaluate_qos
from loadtests.analysis.summary import summarize
from loadtests.profiles import QosSettings


def _run(tmp_path: Path, records: list[dict]) -> tuple[dict, Path]:
    folder = write_stream(tmp_path / "run", records)
    return summarize(folder), folder


def _check(result: dict, name: str) -> dict:
    return next(c for c in result["checks"] if c["name"].startswith(name))


def test_share_under_bound_passes_above_percent(tmp_path: Path) -> None:
    records = [req(i / 10, "SMTP", "DATA", 100.0) for i in range(96)]
    records += [req(9.7 + i / 100, "SMTP", "DATA", 6000.0) for i in range(4)]
    summary, folder = _run(tmp_path, records)
    result = evaluate_qos(summary, QosSettings(), out_dir=folder)
    latency = _check(result, "SMTP DATA: share under 5 s")
    assert latency["measured"] == 96.0 and latency["threshold"] == 95.0
    assert latency["pass"] and latency["basis"] == "distribution"
    assert _check(result, "SMTP DATA: error rate")["measured"] == 0.0
    assert result["pass"] is True


def test_exactly_percent_under_fails_and_step_override_rescues(tmp_path: Path) -> None:
    records = [req(i / 10, "SMTP", "DATA", 100.0) for i in range(95)]
    records += [req(9.7 + i / 100, "SMTP", "DATA", 7000.0) for i in range(5)]
    summary, folder = _run(tmp_path, records)
    assert evaluate_qos(summary, QosSettings(), out_dir=folder)["pass"] is False
    relaxed = evaluate_qos(summary, {"steps": {"SMTP DATA": 10.0}}, out_dir=folder)
    assert relaxed["pass"] is True
    assert _check(relaxed, "SMTP DATA: share under 10 s")["measured"] == 100.0


def test_fast_failures_do_not_count_as_under_and_fail_the_error_rate(tmp_path: Path) -> None:
    records = [req(i / 10, "IMAP", "LOGIN", 10.0) for i in range(97)]
    records += [req(9.8, "IMAP", "LOGIN", 1.0, ok=False, err="IMAPError: NO [LIMIT]")] * 3
    summary, folder = _run(tmp_path, records)
    result = evaluate_qos(summary, QosSettings(), out_dir=folder)
    share = _check(result, "IMAP LOGIN: share under")
    assert share["measured"] == 97.0 and "succeeded in under 5 s" in share["text"]
    errors = _check(result, "IMAP LOGIN: error rate")
    assert errors["measured"] == 3.0 and not errors["pass"]
    assert result["pass"] is False


def test_sessions_excluded_by_default(tmp_path: Path) -> None:
    records = [req(i, "IMAP", "session", 3_600_000.0) for i in range(5)]
    records += [req(i, "IMAP", "SELECT", 5.0) for i in range(5)]
    summary, folder = _run(tmp_path, records)
    result = evaluate_qos(summary, QosSettings(), out_dir=folder)
    assert result["pass"] is True
    assert not [c for c in result["checks"] if "session" in c["name"]]
    judged = evaluate_qos(summary, {"exclude": []}, out_dir=folder)
    assert judged["pass"] is False


def test_without_the_stream_falls_back_to_percentiles(tmp_path: Path) -> None:
    summary, _ = _run(tmp_path, [req(i / 10, "POP3", "RETR", 50.0) for i in range(50)])
    result = evaluate_qos(summary, QosSettings())
    check = _check(result, "POP3 RETR: share under")
    assert check["basis"] == "percentiles" and check["pass"]


def test_no_operations_is_a_failure() -> None:
    result = evaluate_qos({"requests": []}, QosSettings())
    assert result["pass"] is False and result["checks"][0]["name"] == "operations recorded"
