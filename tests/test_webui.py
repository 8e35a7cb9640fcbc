"""`mailswarm run --web`: Locust's web UI serves the target's processes, threads, fds and memory
(`/mailswarm/target`, the rows in `/stats/requests`) and shows them in a "Target" tab, checked
in headless Chromium against a real short run of the embedded target.

The browser part runs in a separate process (the tests' own process is gevent-patched):
    python tests/test_webui.py URL SHOT.png
prints, as JSON, the console messages, page errors, failed requests, the tab labels and the
Target tab's table (headers and rows).
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from browser_check import CHROMIUM_ARGS

CHROMIUM = "/usr/bin/chromium"


def browse(url: str, shot: Path) -> dict[str, Any]:
    """Open the web UI, click its Target tab, read the table there, screenshot it."""
    from playwright.sync_api import sync_playwright

    result: dict[str, Any] = {"console": [], "page_errors": [], "failed_requests": []}
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 720})
        page = context.new_page()
        page.on("console", lambda m: result["console"].append({"type": m.type, "text": m.text}))
        page.on("pageerror", lambda e: result["page_errors"].append(str(e)))
        page.on("requestfailed", lambda r: result["failed_requests"].append(r.url))
        page.goto(url)
        page.wait_for_load_state("load")
        page.get_by_role("tab").first.wait_for(timeout=15_000)
        result["tabs"] = [t.inner_text().strip() for t in page.get_by_role("tab").all()]
        page.get_by_role("tab", name="Target").click()
        row = page.locator("table tbody tr", has_text="smtp").first
        row.wait_for(timeout=15_000)  # the rows come with the next /stats/requests poll
        result["url"] = page.url
        result["headers"] = [h.inner_text().strip() for h in page.locator("table thead th").all()]
        result["rows"] = [[c.inner_text().strip() for c in tr.locator("td").all()]
                          for tr in page.locator("table tbody tr").all()]
        page.wait_for_timeout(600)  # the tab indicator's slide
        page.screenshot(path=str(shot), full_page=True)
        context.close()
    return result


if __name__ == "__main__":
    print(json.dumps(browse(sys.argv[1], Path(sys.argv[2]))))
    sys.exit(0)

import pytest  # noqa: E402  (the browser process above needs neither pytest nor gevent)
from cli import start_cli  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and find_spec("playwright")),
    reason=f"needs Debian's chromium at {CHROMIUM} (scripts/test-deps) and the playwright "
           "package")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _poll(what: str, proc: subprocess.Popen[str], fetch: Callable[[], Any],
          ready: Callable[[Any], bool], timeout: float = 25) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended ({proc.returncode}) before {what}: "
                                 f"{proc.stdout.read()[-2000:] if proc.stdout else ''}")
        try:
            last = fetch()
        except OSError as exc:  # not listening yet
            last = exc
        else:
            if ready(last):
                return last
        time.sleep(0.3)
    raise AssertionError(f"{what} never showed the target: {last!r}")


@pytest.fixture
def web_run(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """A run of profiles/smtp-50mps.yaml with --web on a free loopback port: (URL, process)."""
    port = _free_port()
    proc = start_cli("run", "profiles/smtp-50mps.yaml", "--duration", "45s", "--out",
                     str(tmp_path / "out"), "--quiet", "--web", f"127.0.0.1:{port}",
                     stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}", proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # keeps what was measured, exits within seconds
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def _smtp_group(groups: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    return next(((name, values) for name, values in groups.items()
                 if "smtp" in name and (values.get("processes") or 0) >= 1), None)


def test_web_ui_shows_the_target_tab(web_run: tuple[str, subprocess.Popen[str]],
                                     tmp_path: Path) -> None:
    t0 = time.monotonic()
    url, proc = web_run
    sample = _poll("/mailswarm/target", proc, lambda: _get(f"{url}/mailswarm/target"),
                   lambda s: _smtp_group(s.get("targets") or {}) is not None)
    group, values = _smtp_group(sample["targets"])  # type: ignore[misc]
    assert values["threads"] >= 1 and values["open_fds"] >= 1 and values["fd_limit"] > 0
    assert sample["generator"]["processes"] == 1

    stats = _poll("/stats/requests", proc, lambda: _get(f"{url}/stats/requests"),
                  lambda s: any(group in r["group"] for e in s.get("extended_stats", [])
                                if e["key"] == "target" for r in e["data"]))
    rows = next(e["data"] for e in stats["extended_stats"] if e["key"] == "target")
    row = next(r for r in rows if r["group"] == group)
    assert row["processes"] >= 1 and row["threads"] >= 1, row
    assert " / " in row["fds"] and row["rss_mib"] > 0, row
    assert rows[-1]["group"].startswith("generator"), rows
    figures = next(e["data"] for e in stats["extended_stats"] if e["key"] == "headline")
    assert figures[0]["figure"] == "operations" and figures[0]["value"].isdigit(), figures

    shot = tmp_path / "target-tab.png"
    browser = subprocess.run([sys.executable, __file__, f"{url}/", str(shot)],
                             capture_output=True, text=True, timeout=60)
    assert browser.returncode == 0, browser.stderr[-3000:]
    result = json.loads(browser.stdout)
    errors = [m for m in result["console"] if m["type"] == "error"]
    assert not errors and not result["page_errors"] and not result["failed_requests"], result
    assert "TARGET" in [t.upper() for t in result["tabs"]], result["tabs"]  # CSS upper-cases
    assert "HEADLINE" in [t.upper() for t in result["tabs"]], result["tabs"]
    assert "tab=target" in result["url"], result["url"]
    headers = [h.lower() for h in result["headers"]]
    assert headers[:4] == ["group", "processes", "threads", "open fds / limit"], result
    shown = next(r for r in result["rows"] if r and group in r[0])
    assert int(shown[1]) >= 1 and int(shown[2]) >= 1 and " / " in shown[3], result["rows"]
    assert any(r and r[0].startswith("generator") for r in result["rows"]), result["rows"]
    assert shot.stat().st_size > 10_000
    assert time.monotonic() - t0 < 60
