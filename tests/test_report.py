"""The report's pure parts on crafted records: series, tables, the ECharts options of a chart
(limits, markers, decimation, JSON safe inside a script), and build_report writing one
self-contained page (the library inlined, nothing fetched) and its CSV files."""

import json
from pathlib import Path

from streams import T0, header, req, write_stream

from loadtests.analysis.stream import collect
from loadtests.report import build_report
from loadtests.report.build import report_charts
from loadtests.report.charts import Band, Chart, Limit, Marker, Series, decimate, echarts_option
from loadtests.report.page import json_for_script
from loadtests.report.series import (
    arrival_series,
    delivery_queue_series,
    failing_resource,
    failure_cause,
    failure_series,
    http_series,
    latency_series,
    rate_series,
    resource_series,
    step_percentile_curves,
    step_spans,
)
from loadtests.report.tables import failure_rows, to_csv
from loadtests.stream import Delivery, End, Phase, Queue, Sample, Sent, Step, Tick


def _tick(t: float, **counters: int) -> Tick:
    return Tick(T0 + t, t, "running", 10, {"smtp": counters},
                {"SMTP": {"open": counters.get("in_flight", 0), "peak": 5, "opened": 0,
                          "dropped": 0}})


def test_rates_and_latency_percentiles_per_second() -> None:
    run = collect([req(0.1, "SMTP", "DATA", 10), req(0.5, "SMTP", "DATA", 30, ok=False,
                                                          err="SMTPResponseException: 421 busy"),
                   req(1.2, "SMTP", "DATA", 20), req(1.3, "SMTP", "session", 99)])
    rates = rate_series(run.requests, T0, T0 + 2)
    assert rates["SMTP ops ok/s"] == [(0.0, 1.0), (1.0, 1.0), (2.0, 0.0)]
    assert rates["SMTP ops failed/s"][0] == (0.0, 1.0)
    assert rates["SMTP sessions ok/s"][1] == (1.0, 1.0)
    lat = latency_series(run.requests, T0)["SMTP"]
    assert lat["p50"] == [(0.0, 10), (1.0, 20)] and lat["p99"][0] == (0.0, 30)


def test_failure_causes_group_by_kind_and_reply_code() -> None:
    assert failure_cause("SMTPResponseException: 421 4.3.2 busy") == \
        "SMTPResponseException 421: 4.3.2 busy"
    assert failure_cause("ConnectionRefusedError: [Errno 111] refused") == \
        "ConnectionRefusedError: [Errno 111] refused"
    assert failure_cause(None) == "unknown"
    run = collect([req(0, "IMAP", "LOGIN", 1, ok=False, err=f"E{i}: x") for i in range(8)])
    series = failure_series(run.requests, T0, T0 + 1, top=3)
    assert set(series) == {"E0: x", "E1: x", "E2: x", "other"} and series["other"][0] == (0.0, 5.0)


def test_arrival_counters_become_rates() -> None:
    ticks = [_tick(0, intended=0, started=0, completed=0, late=0, dropped=0, in_flight=0),
             _tick(1, intended=50, started=48, completed=45, late=2, dropped=2, in_flight=3),
             _tick(2, intended=100, started=95, completed=90, late=2, dropped=5, in_flight=5)]
    s = arrival_series(ticks, T0)["smtp"]
    assert s["intended/s"] == [(1.0, 50.0), (2.0, 50.0)]
    assert s["dropped/s"] == [(1.0, 2.0), (2.0, 3.0)] and s["in flight"][-1] == (2.0, 5.0)


def test_resources_with_fd_limit_and_http_connections() -> None:
    samples = [Sample(T0 + t,
                      {"dovecot": {"open_fds": 100 * t, "fd_limit": 1024, "threads": 1,
                                   "processes": 2, "rss_bytes": 2**20}},
                      {"tcp": {"ports": {"8080": {"remote": {"ESTABLISHED": 7},
                                                  "local": {"TIME_WAIT": 3}}}}})
               for t in range(3)]
    series, limits = resource_series(samples, T0)
    assert series["open fds"]["dovecot"] == [(0.0, 0), (1.0, 100), (2.0, 200)]
    assert series["RSS MB"]["dovecot"][0] == (0.0, 1.0) and "PSS MB" not in series
    assert limits == {"open fds": {"dovecot": 1024.0}}
    ticks = [Tick(T0, sessions={"HTTP": {"open": 5, "peak": 5}})]
    assert http_series([], samples, T0, ["8080"]) == {}
    web = http_series(ticks, samples, T0, ["8080"])
    assert web["connections"][0] == (0.0, 7.0) and web["TIME_WAIT"][0] == (0.0, 3.0)


def _step(users: int, start: float, end: float, good: bool = True) -> Step:
    """A `step` record as the ceiling search writes it: at the end of the step."""
    return Step(T0 + end, users, users, T0 + start, T0 + end, good=good)


def test_step_spans_from_step_records() -> None:
    run = collect([header(), Phase(T0, "load_start"),
                   req(1, "IMAP", "LOGIN", 5), _step(100, 0, 10),
                   req(11, "IMAP", "LOGIN", 50, ok=False, err="x"), req(12, "IMAP", "LOGIN", 7),
                   _step(200, 10, 20, good=False),
                   End(T0 + 20, load_end=T0 + 20)])
    rows = step_spans(run)
    assert [(r["step"], r["users"], r["good"], r["start_s"], r["end_s"]) for r in rows] == \
        [(1, 100, True, 0.0, 10.0), (2, 200, False, 10.0, 20.0)]
    assert rows[1]["count"] == 2 and rows[1]["error_percent"] == 50.0


def test_percentile_curve_per_step_and_failing_resource() -> None:
    run = collect([header(), Phase(T0, "load_start"),
                   *[req(1 + i / 100, "IMAP", "LOGIN", float(i)) for i in range(1, 101)],
                   _step(100, 0, 10), req(11, "IMAP", "LOGIN", 9000.0, ok=False, err="x"),
                   _step(200, 10, 20, good=False)])
    curves = step_percentile_curves(run)
    assert list(curves) == ["step 1: 100 users", "step 2: 200 users (failed)"]
    assert dict(curves["step 1: 100 users"])["p50"] == 50.0
    assert dict(curves["step 1: 100 users"])["max"] == 100.0
    samples = [Sample(T0 + t, {"imap": {"threads": 10 * t}}, {}, {"cpu_percent": 95.0})
               for t in range(3)]
    label, axis, points = failing_resource(samples, "target imap: thread limit", T0)
    assert (label, axis, points[-1]) == ("imap threads", "threads", (2.0, 20.0))
    assert failing_resource(samples, "generator: CPU", T0)[2][0] == (0.0, 95.0)
    assert failing_resource(samples, "server reply 421: service not available", T0) is None


def test_echarts_option_limits_markers_bands() -> None:
    chart = Chart("fds", "open fds",
                  [Series("imap", [(0, 10), (1, 900), (2, None)]), Series("smtp", [(0, 1)])],
                  [Limit("imap fd limit 1024", 1024, "imap"),
                   Limit("smtp fd limit 1M", 1_048_576, "smtp")],
                  [Marker(1.0, "200 users"), Marker(1.5, "ceiling 200 IMAP", strong=True)],
                  [Band(1.5, 2.0, "step 250 users failed")])
    opt = echarts_option(chart)
    imap, smtp, steps = opt["series"]
    assert imap["data"] == [[0, 10], [1, 900], [2, None]]
    assert imap["markLine"]["data"][0]["yAxis"] == 1024 and "markLine" not in smtp
    assert "smtp fd limit 1M: off the scale" in opt["title"]["subtext"]
    assert opt["yAxis"][0]["max"] >= 1024  # the drawn limit stays in view
    assert [d["xAxis"] for d in steps["markLine"]["data"]] == [1.0, 1.5]
    assert steps["markArea"]["data"][0][0]["xAxis"] == 1.5
    assert opt["tooltip"]["className"] == "ms-tooltip" and opt["dataZoom"]
    assert "markLine" in imap and opt["legend"]
    json.dumps(opt, allow_nan=False)


def test_decimate_keeps_peaks_and_bounds_points() -> None:
    points = [(float(i), float(i % 100)) for i in range(20_000)]
    points[12_345] = (12_345.0, 5000.0)
    out = decimate(points, 2000)
    assert len(out) <= 2000 and (12_345.0, 5000.0) in out
    assert [x for x, _ in out] == sorted(x for x, _ in out)
    assert decimate(points[:10], 2000) == points[:10]


def test_json_cannot_close_the_script_element() -> None:
    text = json_for_script({"err": "</script><script>alert(1)</script><!--"})
    assert "</" not in text and "<!--" not in text
    assert json.loads(text) == {"err": "</script><script>alert(1)</script><!--"}


def test_failures_grouped_by_cause_with_one_example() -> None:
    run = collect([req(0, "SMTP", "DATA", 1, ok=False,
                       err="SMTPResponseException: 421 busy after 12 connections", code=421),
                   req(0, "SMTP", "RCPT", 1, ok=False,
                       err="SMTPResponseException: 421 busy after 13 connections", code=421),
                   req(0, "SMTP", "DATA", 1, ok=False, err="TimeoutError: slow")])
    rows = failure_rows(run.requests)
    assert rows[0] == {"cause": "SMTPResponseException 421: busy after <n> connections",
                       "count": 2, "steps": "SMTP DATA x1, SMTP RCPT x1",
                       "example": "SMTPResponseException: 421 busy after 12 connections"}
    assert rows[1]["cause"] == "TimeoutError: slow"


def test_csv_uses_every_column() -> None:
    assert to_csv([{"a": 1}, {"a": None, "b": "x,y"}]) == 'a,b\n1,\n,"x,y"\n'


def test_build_report_writes_page_and_csvs(tmp_path: Path) -> None:
    records = [*[req(i / 5, "SMTP", "DATA", 5 + i) for i in range(40)], _step(10, 0, 4),
               req(4, "SMTP", "DATA", 9, ok=False, err="SMTPResponseException: 421 busy"),
               _step(20, 4, 8, good=False)]
    folder = write_stream(tmp_path / "run", records)
    (folder / "summary.json").write_text(json.dumps({
        "profile": "crafted", "duration_s": 8, "requests": [
            {"type": "SMTP", "name": "DATA", "count": 41, "failures": 1, "p50_ms": 25,
             "p95_ms": 43, "p99_ms": 44, "max_ms": 44}],
        "ceiling": {"protocol": "SMTP", "sessions": 10, "step": 10, "failed_step": 20,
                    "cause": "421 replies", "evidence": ["reply 421"]},
        "qos": {"pass": False, "checks": [{"name": "SMTP DATA: error rate", "threshold": 1,
                                           "measured": 2.4, "pass": False}]}}))
    page = build_report(folder)
    html = page.read_text()
    assert page.name == "report.html" and "<script src" not in html and "<link" not in html
    assert "echarts" in html and 'id="ms-charts"' in html and "<svg" not in html
    band = html[html.index('<header class="band'):html.index("</header>")]
    assert 'data-kind="ceiling"' in band and "QoS FAIL: 1 of 1 checks" in band
    assert "10 SMTP sessions" in band and "421 replies" in band and "reply 421" in band
    assert band.index("QoS FAIL") < band.index("421 replies")
    assert html.index('class="chart') < html.index("<table")  # charts before tables
    assert "ceiling 10 SMTP" in html and "20 users" in html
    assert "SMTPResponseException 421" in html and "<details" in html
    for name in ("requests", "steps", "failures", "qos", "timeseries"):
        assert (folder / f"{name}.csv").read_text().count("\n") >= 2, name


def test_delivery_queue_chart_with_latency_and_arrival(tmp_path: Path) -> None:
    """`queue` and `delivery` records: the queue's size (left axis) next to the latency of what
    was sent each second (p50/p95/max) and the messages accepted per second; the page has it."""
    sent = [Sent(T0 + s + i / 4, f"<{s}.{i}>", ["u@x"]) for s in range(3) for i in range(4)]
    deliveries = [Delivery(m.ts + 0.5 + s, m.id, "u@x", "delivered", 0.5 + s)
                  for s in range(3) for m in sent[4 * s:4 * s + 4]]
    deliveries[-1] = Delivery(T0 + 9, "<2.3>", "u@x", "lost")
    queues = [Queue(T0 + t, "postfix", {"incoming": t, "active": 2 * t, "deferred": 0})
              for t in range(4)]
    run = collect([Phase(T0, "load_start", "*"), *sent, *deliveries, *queues])
    lines = delivery_queue_series(run.sent, run.deliveries, run.queues, T0)
    assert lines["queue"] == {"postfix queue": [(0.0, 0.0), (1.0, 3.0), (2.0, 6.0), (3.0, 9.0)]}
    assert lines["latency"]["p50 s"] == [(0.0, 0.5), (1.0, 1.5), (2.0, 2.5)]
    assert lines["latency"]["max s"][2] == (2.0, 2.5)  # the lost copy has no latency
    assert lines["arrival"]["accepted/s"] == [(0.0, 4.0), (1.0, 4.0), (2.0, 4.0)]
    assert delivery_queue_series([], [], [], T0) == {}

    chart = next(c for section, c in report_charts(run, {}) if section == "Delivery")
    option = echarts_option(chart)
    assert [a["name"] for a in option["yAxis"]] == [
        "messages queued", "latency s (by send second)", "accepted/s"]
    data = {s["name"]: s["data"] for s in option["series"]}
    assert data["postfix queue"][-1] == [3, 9] and data["latency p95 s"][0] == [0, 0.5]
    assert data["accepted/s"] == [[0, 4], [1, 4], [2, 4]]

    folder = write_stream(tmp_path / "run", [*sent, *deliveries, *queues])
    html = build_report(folder).read_text()
    assert "Delivery queue vs delivery latency and arrival rate" in html
    assert "postfix queue" in (folder / "timeseries.csv").read_text()
    without = collect([req(0, "SMTP", "DATA", 5)])
    assert all(section != "Delivery" for section, _ in report_charts(without, {}))
