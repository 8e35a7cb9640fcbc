"""The HTML report of real short runs (SMTP open model, IMAP idle, a ceiling ramp, WebUser)
opened in headless Chromium: no console errors, and the plots are drawn (series paths with
points, and non-white pixels inside the plot areas of a screenshot)."""

import json
import shutil
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest
from runs import ROOT, run_all, shrunk_profile

from loadtests.report import build_report

pytestmark = pytest.mark.skipif(
    not (shutil.which("chromium") and find_spec("playwright")),
    reason="needs Debian's chromium (scripts/test-deps) and the playwright package")

CASES = {
    "smtp": ("smtp-50mps.yaml", {"duration": "6s"}),
    "imap": ("imap-idle-corporate.yaml", {"users": 200, "duration": "6s"}),
    "ceiling": ("ceiling-imap-idle.yaml", {"duration": "20s", "scenarios_ramp": True}),
    "webuser": ("webuser-3000-sessions.yaml", {"users": 60, "duration": "8s"}),
}


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("reports")
    jobs = []
    for name, (source, options) in CASES.items():
        if not (ROOT / "profiles" / source).exists():
            continue
        options = dict(options)
        ramp = options.pop("scenarios_ramp", False)
        profile = shrunk_profile(source, folder, name, **options)
        if ramp:  # 3 steps of 2 s: 50, 100, 150 sessions
            import yaml

            data = yaml.safe_load(profile.read_text())
            data["scenarios"][0]["schedule"].update(start=50, step=50, max=150, hold="2s")
            profile.write_text(yaml.safe_dump(data))
        jobs.append((profile, folder / name))
    run_all(jobs)
    return {out.name: build_report(out) for _, out in jobs}


def _open(page: Path) -> dict:
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "browser_check.py"), str(page),
                           str(page.with_suffix(".png"))], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("case", list(CASES))
def test_report_opens_without_errors_and_plots_are_drawn(reports: dict[str, Path],
                                                         case: str) -> None:
    if case not in reports:
        pytest.skip(f"no profile {CASES[case][0]}")
    result = _open(reports[case])
    errors = [m for m in result["console"] if m["type"] in ("error", "warning")]
    assert not errors and not result["page_errors"] and not result["failed_requests"], result
    charts = result["charts"]
    titles = [c["title"] for c in charts]
    assert len(charts) >= 5, titles
    for chart in charts:
        assert chart["paths"] >= 1 and max(chart["points"]) >= 2, chart
    inked = [c for c in charts if c["ink"] > 0.002]
    assert len(inked) >= len(charts) // 2, charts
    assert Path(reports[case]).with_suffix(".png").stat().st_size > 20_000
    html = reports[case].read_text()
    if case == "smtp":
        assert any("intended vs achieved" in t for t in titles)
        assert any("late and dropped" in t for t in titles)
    if case == "ceiling":
        assert 'class="marker"' in html and "Ceiling:" in html
    if case == "webuser":
        assert any("sessions vs connections" in t for t in titles)
    assert any(t == "Target open fds" for t in titles) and "fd limit" in html
