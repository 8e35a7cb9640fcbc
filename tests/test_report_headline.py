"""The headline (pure: summary in, verdict / figures / warnings out) for each kind of run, and
its terminal lines."""

from typing import Any

from loadtests.report.headline import headline, headline_lines


def _qos(*failed: tuple[str, str, float]) -> dict[str, Any]:
    checks = [{"name": "SMTP DATA: share under 5 s", "kind": "latency", "step": "SMTP DATA",
               "measured": 99.0, "pass": True, "text": "> 95% of operations under 5 s"}]
    checks += [{"name": f"{step}: error rate", "kind": "errors", "step": step,
                "measured": measured, "pass": False, "text": rule}
               for step, rule, measured in failed]
    return {"pass": not failed, "checks": checks}


def _figures(summary: dict[str, Any]) -> dict[str, str]:
    return {f.label: f.value for f in headline(summary).figures}


def test_open_model_pass() -> None:
    summary = {"end": "completed", "qos": _qos(), "duration_s": 10.0,
               "arrival": {"smtp": {"intended_per_s": 50.0, "achieved_per_s": 49.9,
                                    "window_s": 10.0, "intended": 500, "late": 2, "dropped": 0,
                                    "in_flight_max": 3, "max_in_flight": 100}},
               "requests": [{"type": "SMTP", "name": "session", "count": 499, "failures": 0,
                             "p95_ms": 14.12, "p99_ms": 180.4}]}
    h = headline(summary)
    assert (h.kind, h.verdict, h.verdict_text) == ("open", "pass", "QoS PASS (1 checks)")
    assert _figures(summary) == {"smtp: achieved / intended": "49.9 / 50 per s",
                                 "smtp: late / dropped": "2 / 0",
                                 "SMTP session p95 / p99": "14.1 ms / 180 ms"}
    assert h.warnings == [] and not h.failed


def test_failed_checks_grouped_by_protocol_and_shortfall_warned() -> None:
    summary = {"end": "completed", "arrival": {"smtp": {"intended_per_s": 50,
                                                        "achieved_per_s": 30.0, "dropped": 9}},
               "qos": _qos(("SMTP DATA", "< 1% failed", 2.5), ("DNS MX", "< 1% failed", 4.0),
                           ("SMTP RCPT", "< 1% failed", 3.0))}
    h = headline(summary)
    assert h.verdict == "fail" and h.verdict_text == "QoS FAIL: 3 of 4 checks"
    assert list(h.failed) == ["SMTP", "DNS"]
    assert h.failed["SMTP"] == ["DATA: error rate 2.50% (needs < 1% failed)",
                                "RCPT: error rate 3% (needs < 1% failed)"]
    assert [f.bad for f in h.figures] == [True, True]
    assert any("achieved 30/s of the intended 50/s" in w for w in h.warnings)
    lines = headline_lines(h)
    assert lines[0] == "QoS FAIL: 3 of 4 checks" and lines[1].startswith("  SMTP: DATA")


def test_ceiling_with_cause_evidence_and_memory_per_connection() -> None:
    summary = {"end": "completed", "qos": _qos(),
               "ceiling": {"protocol": "IMAP", "sessions": 200, "step": 200,
                           "failed_step": 250, "cause": "target imap: thread limit",
                           "evidence": ["threads flat at 203"]},
               "steps": [{"good": True}, {"good": True}, {"good": False}],
               "target_resources": {"imap": {"connections_max": 250, "threads_max": 203,
                                             "per_connection": {"pss_bytes": 55910.4}}}}
    h = headline(summary)
    assert h.kind == "ceiling" and h.evidence == ["threads flat at 203"]
    figures = _figures(summary)
    assert figures["ceiling"] == "200 IMAP sessions"
    assert figures["cause"] == "target imap: thread limit"
    assert figures["steps"] == "2 good of 3"
    assert figures["imap: memory per connection"] == "54.6 KiB PSS"
    assert h.warnings == []


def test_ceiling_not_reached_and_generator_bottleneck_warn() -> None:
    summary = {"end": "completed", "ceiling": {"protocol": "IMAP", "sessions": 1200,
                                               "step": 1200, "cause": "not reached",
                                               "evidence": []},
               "generator": {"cpu_percent_max": 97.0, "open_fds_max": 900, "fd_limit": 1024}}
    h = headline(summary)
    assert h.verdict == "none" and _figures(summary)["ceiling"] == "not reached (>= 1,200 " \
        "IMAP sessions)"
    text = " | ".join(h.warnings)
    assert "ceiling not reached: every step up to 1200 users was good" in text
    assert "generator CPU peaked at 97%" in text and "generator open files 900 of its " \
        "limit 1,024" in text
    generator = headline({"ceiling": {"cause": "generator: ephemeral ports exhausted"}})
    assert any("generator was the bottleneck" in w for w in generator.warnings)


def test_incomplete_stream_and_user_errors_warn() -> None:
    h = headline({"end": "killed (no end record)", "user_errors": [{"error": "x", "count": 3}]})
    assert h.kind == "closed"
    assert any("incomplete (no end record)" in w for w in h.warnings)
    assert any("3 exceptions escaped" in w for w in h.warnings)


def test_idle_and_webuser_figures() -> None:
    idle = {"sessions": {"IMAP": {"peak": 3000, "mean": 2990.5, "dropped": 0}},
            "target_resources": {"dovecot": {"connections_max": 3000, "processes_max": 3004,
                                             "per_connection": {"pss_bytes": 204800}}}}
    assert headline(idle).kind == "idle"
    figures = _figures(idle)
    assert figures["IMAP sessions held"] == "3,000"
    assert figures["dovecot: memory per connection"] == "200.0 KiB PSS"
    web = {"http": {"peak_sessions": 3000, "peak_connections": 140, "time_wait_peak": 2910,
                    "held_connections_mean": 49.2, "held_connections_max": 122}}
    assert headline(web).kind == "webuser"
    assert _figures(web) == {"HTTP sessions / connections": "3,000 / 140",
                             "TIME_WAIT peak": "2,910"}


def test_web_ui_headline_tab_rows_from_locust_stats() -> None:
    from loadtests.webui import headline_rows

    stats = [{"method": "SMTP", "name": "DATA", "num_requests": 90, "num_failures": 9,
              "response_time_percentile_0.95": 40, "response_time_percentile_0.99": 80},
             {"method": "SMTP", "name": "session", "num_requests": 10, "num_failures": 0,
              "response_time_percentile_0.95": 900},
             {"method": None, "name": "Aggregated", "num_requests": 100, "total_rps": 10.0}]
    rows = headline_rows(stats)
    assert [(r["figure"], r["value"]) for r in rows] == [
        ("operations", "90"), ("failed", "10.00%"), ("slowest p95: SMTP DATA", "40.0 ms")]
    assert rows[0]["note"] == "9.0/s"


def test_a_lost_worker_is_a_warning() -> None:
    summary = {"end": "completed", "requests": [], "workers": {
        "expected": 2, "joined": 2, "lost": [{"index": 1, "of": 2, "at_s": 4.2,
                                               "cause": "killed by signal 9 (SIGKILL)"}]}}
    warnings = headline(summary).warnings
    assert any("worker 1 of 2 was lost at 4.2 s (killed by signal 9" in w for w in warnings)


def test_delivery_tracker_errors_warn_only_when_copies_were_reported_lost() -> None:
    d: dict[str, Any] = {"tracked": 9, "delivered": 9, "corrupt": 0, "duplicate": 0, "lost": 0,
                         "tracking": {"pop3": {"errors": 2, "looked": 40, "first_error": "x"}}}
    assert headline({"end": "completed", "delivery": d}).warnings == []
    d["delivered"], d["lost"] = 6, 3
    assert headline({"end": "completed", "delivery": d}).warnings == [
        "delivery tracking failed at times: pop3 (2 errors, first: x) — some of the 3 copies "
        "reported lost may not be lost"]
    d["tracking"]["pop3"]["looked"] = 0  # it never looked: said even without losses
    d["delivered"], d["lost"] = 9, 0
    assert headline({"end": "completed", "delivery": d}).warnings == [
        "delivery tracking failed: pop3 never looked (2 errors, first: x)"]
