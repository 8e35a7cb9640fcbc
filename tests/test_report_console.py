"""The live view: a progress bar and a per-scenario table on a terminal, lines elsewhere."""

import io

from loadtests.console import ProgressPrinter, format_summary, live_headline, progress_bar
from loadtests.run.progress import Progress


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _progress(second: int) -> Progress:
    return Progress(float(second), 10.0, "running", 5, 10 * second, 0, 5 * second,
                    {"smtp": {"in_flight": 2, "late": 1, "dropped": 0, "completed": 5 * second}})


def test_progress_bar() -> None:
    assert progress_bar(5, 10, width=10) == "[#####.....]  50%"
    assert progress_bar(20, 10, width=4) == "[####] 100%"


def test_tty_table_redrawn_in_place_with_p95_of_last_seconds() -> None:
    out = _Tty()
    printer = ProgressPrinter(out)
    for second in range(3):
        printer.observe("SMTP", "DATA", 100.0 + second, None, {"scenario": "smtp"})
        printer(_progress(second))
    text = out.getvalue()
    assert text.count("\033[4F") == 2  # moved up over the previous table (4 lines) twice
    last = text.rsplit("\033[4F", 1)[1]
    assert "[######" in last and "smtp" in last and "102" in last and "5.0" in last


def test_non_tty_prints_lines() -> None:
    out = io.StringIO()
    printer = ProgressPrinter(out, every=1)
    printer(_progress(1))
    assert out.getvalue().endswith("dropped 0]\n")


def test_summary_shows_http_sessions_against_connections() -> None:
    http = {"peak_sessions": 3000, "peak_connections": 140, "time_wait_peak": 2910,
            "held_samples": 40, "held_connections_max": 122, "held_connections_mean": 49.2}
    text = format_summary({"requests": [], "http": http})
    assert ("HTTP: 3000 sessions at the peak on 140 connections at the peak, 49.2 on average "
            "while all sessions were open (max 122); TIME_WAIT peak 2910") in text
    del http["held_connections_max"]
    assert "on average" not in format_summary({"requests": [], "http": http})


def test_arrival_line_counts_interrupted_and_qos_lines_name_the_step() -> None:
    arrival = {"intended_per_s": 5.0, "achieved_per_s": 4.5, "window_s": 100.0,
               "intended": 500, "started": 480, "completed": 450, "interrupted": 30,
               "late": 2, "dropped": 20, "in_flight_max": 7, "max_in_flight": 50}
    qos = {"pass": False, "checks": [
        {"name": "POP3 RETR: share under 5 s", "step": "POP3 RETR", "kind": "latency",
         "threshold": 95.0, "measured": 90.0, "pass": False,
         "text": "> 95% of operations under 5 s"},
        {"name": "IMAP LOGIN: error rate", "step": "IMAP LOGIN", "kind": "errors",
         "threshold": 1.0, "measured": 3.0, "pass": False, "text": "< 1% failed"}]}
    text = format_summary({"requests": [], "arrival": {"smtp": arrival}, "qos": qos})
    assert "interrupted 30" in text
    assert "  POP3: RETR: share under 5 s 90% (needs > 95% of operations under 5 s)" in text
    assert "  IMAP: LOGIN: error rate 3% (needs < 1% failed)" in text


def test_summary_leads_with_the_verdict_and_headline() -> None:
    summary = {"end": "completed", "requests": [],
               "qos": {"pass": False, "checks": [
                   {"name": "IMAP LOGIN: error rate", "step": "IMAP LOGIN", "kind": "errors",
                    "measured": 20.0, "pass": False, "text": "< 1% failed"}]},
               "ceiling": {"protocol": "IMAP", "sessions": 200, "step": 200, "failed_step": 250,
                           "cause": "target imap: thread limit", "evidence": ["threads flat"]}}
    lines = format_summary(summary).splitlines()
    assert lines[0] == "QoS FAIL: 1 of 1 checks"
    assert lines[1] == "  IMAP: LOGIN: error rate 20% (needs < 1% failed)"
    assert lines[2].startswith("ceiling: 200 IMAP sessions")
    assert lines[3] == "cause: target imap: thread limit" and lines[4] == "  - threads flat"


def test_live_view_leads_with_the_headline_figures() -> None:
    out = _Tty()
    printer = ProgressPrinter(out)
    printer(Progress(10.0, 30.0, "running", 5, 100, 0, 50,
                     {"smtp": {"intended": 500, "completed": 490, "late": 3, "dropped": 1,
                               "in_flight": 2}}))
    first = out.getvalue().split("\n", 1)[0]
    assert first == ("\033[Know: smtp: achieved / intended 49 / 50 per s  |  "
                     "smtp: late / dropped 3 / 1")
    assert live_headline(Progress(2.0, 10.0, "running", 5, 40, 4, 0, {})) == \
        "operations 40  |  failed 10.00%"
    assert live_headline(Progress(2.0, 10.0, "running", 5, 40, 4, 0, {}), 12.5) == \
        "operations 40  |  failed 10.00%  |  slowest p95: all operations 12.5 ms"
