"""The live view: a progress bar and a per-scenario table on a terminal, lines elsewhere."""

import io

from loadtests.console import ProgressPrinter, format_summary, progress_bar
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
    assert text.count("\033[3F") == 2  # moved up over the previous table twice
    last = text.rsplit("\033[3F", 1)[1]
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
    assert "POP3 RETR: > 95% of operations under 5 s (measured 90%)" in text
    assert "IMAP LOGIN: < 1% failed (measured 3%)" in text
