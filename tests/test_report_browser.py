"""The HTML reports of real short runs (SMTP open model, IMAP idle, a ceiling ramp against a
thread-limited embedded target, WebUser) and a compare page, opened in headless Chromium with
the network disabled: no console errors, the charts drawn by the inlined ECharts, the header
band's verdict and figures matching summary.json, and a tooltip with a value on hover.

Screenshots (the first screen and the full page) go to $REPORT_SHOTS, else the test's tmp
folder; their paths are printed (`pytest -s`)."""

import json
import os
import shutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pytest
import yaml
from runs import ROOT, run_all, shrunk_profile

from loadtests.report import build_report
from loadtests.report.headline import headline

pytestmark = pytest.mark.skipif(
    not (shutil.which("chromium") and find_spec("playwright")),
    reason="needs Debian's chromium (scripts/test-deps) and the playwright package")

CASES = {
    "smtp": ("smtp-50mps.yaml", {"duration": "6s"}),
    "smtp-b": ("smtp-50mps.yaml", {"duration": "6s"}),  # B of the compare page
    "imap": ("imap-idle-corporate.yaml", {"users": 200, "duration": "6s"}),
    "ceiling": ("ceiling-imap-idle.yaml", {"duration": "40s", "scenarios_ramp": True}),
    "webuser": ("webuser-3000-sessions.yaml", {"users": 60, "duration": "8s"}),
}


def _ramp(profile: Path) -> None:
    """Steps of 4 s (50, 100, 150, 200 users) against an embedded target of 100 threads, with
    a 3 s greeting timeout (shorter than a step): the third step's extra clients time out
    inside it, so the ceiling (100 sessions, the thread limit) is found in about 15 s."""
    data = yaml.safe_load(profile.read_text())
    schedule = data["scenarios"][0]["schedule"]
    schedule.update(start=50, step=50, max=200, hold="4s")
    data["scenarios"][0]["imap"]["connect_timeout"] = "3s"
    data["embedded"] = {"mode": "thread", "thread_limit": 100}
    profile.write_text(yaml.safe_dump(data))


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("REPORT_SHOTS") or tmp_path_factory.mktemp("shots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("reports")
    jobs = []
    for name, (source, options) in CASES.items():
        options = dict(options)
        ramp = options.pop("scenarios_ramp", False)
        profile = shrunk_profile(source, folder, name, **options)
        if ramp:
            _ramp(profile)
        jobs.append((profile, folder / name))
    run_all(jobs)
    pages = {out.name: build_report(out) for _, out in jobs}
    compare = folder / "compare.html"
    proc = subprocess.run([str(Path(sys.executable).with_name("mailswarm")), "compare",
                           str(folder / "smtp"), str(folder / "smtp-b"), "--html",
                           str(compare), "--resamples", "200"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pages["compare"] = compare
    return pages


def _open(page: Path, shot: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "browser_check.py"), str(page),
                           str(shot)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    print(f"\nscreenshots of {page.name}: {', '.join(result['shots'])}")
    return result


def _assert_clean(result: dict[str, Any]) -> None:
    errors = [m for m in result["console"] if m["type"] in ("error", "warning")]
    assert not errors and not result["page_errors"] and not result["failed_requests"], result
    assert result["echarts"], "the inlined ECharts did not load"
    charts = result["charts"]
    assert charts and all(c["paths"] >= 5 and c["height"] >= 250 for c in charts), charts
    tips = [t for t in result["tooltips"] if t["tooltip"]]
    assert tips and any(ch.isdigit() for ch in tips[0]["tooltip"]), result["tooltips"]
    assert result["top_ink"] > 0.01  # the first screen is not blank


@pytest.mark.parametrize("case", ["smtp", "imap", "ceiling", "webuser"])
def test_report_header_charts_and_tooltips(reports: dict[str, Path], shots: Path,
                                           case: str) -> None:
    result = _open(reports[case], shots / f"{case}.png")
    _assert_clean(result)
    summary = json.loads((reports[case].parent / "summary.json").read_text())
    expected = headline(summary)
    band = result["band"]
    assert band["verdict"] == expected.verdict_text
    assert band["kind"] == expected.kind == {"smtp": "open", "imap": "idle",
                                             "ceiling": "ceiling", "webuser": "webuser"}[case]
    assert band["figures"] == {f.label: f.value for f in expected.figures}
    titles = [c["title"] for c in result["charts"]]
    if case == "smtp":
        arrival = summary["arrival"]["smtp"]
        assert band["figures"]["smtp: late / dropped"] == \
            f"{arrival['late']:,} / {arrival['dropped']:,}"
        assert any("intended vs achieved" in t for t in titles)
        assert summary["qos"]["pass"] == band["verdict"].startswith("QoS PASS")
    if case == "imap":
        assert band["figures"]["IMAP sessions held"] == f"{summary['sessions']['IMAP']['peak']:,}"
    if case == "ceiling":
        ceiling = summary["ceiling"]
        assert ceiling["cause"] != "not reached", ceiling
        assert band["figures"]["ceiling"] == f"{ceiling['sessions']:,} IMAP sessions"
        assert band["figures"]["cause"] == ceiling["cause"]
        assert band["evidence"] == ceiling["evidence"]
        assert titles[0].startswith("Ceiling search") and "percentiles per step" in titles[1]
    if case == "webuser":
        http = summary["http"]
        assert band["figures"]["HTTP sessions / connections"] == \
            f"{http['peak_sessions']:,} / {http['peak_connections']:,}"
        assert any("sessions vs connections" in t for t in titles)
    assert any(t == "Target open fds" for t in titles)


def test_compare_page(reports: dict[str, Path], shots: Path) -> None:
    result = _open(reports["compare"], shots / "compare.png")
    _assert_clean(result)
    band = result["band"]
    assert band["kind"] == "compare"
    assert band["verdict"] in ("no significant change", "B differs from A")
    assert set(band["figures"]) == {"A", "B"}
    assert (band["verdict"] == "B differs from A") == bool(band["differences"])
    assert any(t == "Achieved operations per second" for t in
               [c["title"] for c in result["charts"]])
