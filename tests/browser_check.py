"""Open a report (or compare) page in headless Chromium (Debian's /usr/bin/chromium through
Playwright) with the network disabled, and print, as JSON: console messages, page errors,
failed requests; the header band (verdict, figures by label, evidence, warnings); per chart
its title and how much it drew (SVG paths); the tooltip shown when hovering the first charts;
and the share of non-white pixels of the first screen. Saves a full-page PNG screenshot and
one of the first screen (`SHOT` with `-top` before `.png`).

Run as a separate process (the tests' own process is gevent-patched):
    python tests/browser_check.py PAGE.html SHOT.png
"""

from __future__ import annotations

import json
import struct
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Any

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1440, "height": 900}  # a laptop screen


def decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, bytes per pixel, raw unfiltered rows) of an 8-bit RGB/RGBA PNG."""
    pos, chunks, width = 8, [], 0
    height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    out = bytearray()
    prev = bytearray(stride)
    i = 0
    for _ in range(height):
        f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - channels] if x >= channels else 0
            b = prev[x]
            c = prev[x - channels] if x >= channels else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += line
        prev = line
    return width, height, channels, bytes(out)


def ink_share(png: bytes) -> float:
    """Share of pixels that are not near-white (drawn lines, text)."""
    width, height, channels, pixels = decode_png(png)
    inked = sum(1 for i in range(0, len(pixels), channels)
                if min(pixels[i], pixels[i + 1], pixels[i + 2]) < 200)
    return inked / max(1, width * height)


def _band(page: Any) -> dict[str, Any]:
    figures = {f.get_attribute("data-label"): f.query_selector(".v").inner_text().strip()
               for f in page.query_selector_all("#figures .fig")}
    return {"verdict": page.inner_text("#verdict").strip(), "figures": figures,
            "kind": page.get_attribute("header.band", "data-kind"),
            "evidence": [li.inner_text() for li in page.query_selector_all("#evidence li")],
            "warnings": [li.inner_text() for li in page.query_selector_all("#warnings li")],
            "failed": [li.inner_text() for li in page.query_selector_all(".failed li")],
            "differences": [li.inner_text()
                            for li in page.query_selector_all("#differences li")]}


def _hover(page: Any, chart: Any) -> str:
    """Move the mouse across the chart's plot until a tooltip with a number shows."""
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    for share in (0.5, 0.35, 0.65, 0.2, 0.8):
        page.mouse.move(box["x"] + box["width"] * share, box["y"] + box["height"] * 0.45)
        page.wait_for_timeout(250)
        for tip in page.query_selector_all(".ms-tooltip"):
            text = tip.inner_text().strip()
            if tip.is_visible() and any(ch.isdigit() for ch in text):
                return text
    return ""


def check(page_file: Path, shot: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    result: dict[str, Any] = {"console": [], "page_errors": [], "failed_requests": []}
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS,
            viewport=VIEWPORT)
        context.set_offline(True)  # the page must need nothing from the network
        context.route("**/*", lambda route: route.continue_()
                      if route.request.url.startswith("file:") else route.abort())
        page = context.new_page()
        page.on("console", lambda m: result["console"].append({"type": m.type, "text": m.text}))
        page.on("pageerror", lambda e: result["page_errors"].append(str(e)))
        page.on("requestfailed", lambda r: result["failed_requests"].append(r.url))
        page.goto(page_file.resolve().as_uri())
        page.wait_for_load_state("load")
        page.wait_for_timeout(300)
        top = shot.with_name(shot.stem + "-top.png")
        page.screenshot(path=str(top))
        result["top_ink"] = ink_share(top.read_bytes())
        result["band"] = _band(page)
        result["echarts"] = page.evaluate("typeof echarts !== 'undefined' && echarts.version")
        charts = []
        for el in page.query_selector_all("div.chart"):
            charts.append({"title": el.get_attribute("data-title"),
                           "paths": len(el.query_selector_all("svg path")),
                           "height": (el.bounding_box() or {}).get("height", 0)})
        result["charts"] = charts
        tips = []
        for el in page.query_selector_all("div.chart")[:3]:
            tips.append({"title": el.get_attribute("data-title"), "tooltip": _hover(page, el)})
        result["tooltips"] = tips
        page.mouse.move(0, 0)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(shot), full_page=True)
        result["shots"] = [str(top), str(shot)]
        context.close()
    return result


if __name__ == "__main__":
    print(json.dumps(check(Path(sys.argv[1]), Path(sys.argv[2]))))
