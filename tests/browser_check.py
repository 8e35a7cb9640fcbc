"""Open an HTML file in headless Chromium (Debian's /usr/bin/chromium through Playwright) and
print, as JSON: console errors and page errors, failed requests, and per `svg.chart` the number
of drawn series paths and the share of non-white pixels inside its plot area (from a screenshot).

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

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


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


def check(page_file: Path, shot: Path) -> dict[str, object]:
    from playwright.sync_api import sync_playwright

    result: dict[str, object] = {"console": [], "page_errors": [], "failed_requests": []}
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1000, "height": 800})
        page = context.new_page()
        page.on("console", lambda m: result["console"].append(  # type: ignore[union-attr]
            {"type": m.type, "text": m.text}))
        page.on("pageerror", lambda e: result["page_errors"].append(str(e)))  # type: ignore[union-attr]
        page.on("requestfailed", lambda r: result["failed_requests"].append(r.url))  # type: ignore[union-attr]
        page.goto(page_file.resolve().as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(shot), full_page=True)
        charts = []
        for svg in page.query_selector_all("svg.chart"):
            title = svg.get_attribute("aria-label")
            paths = svg.query_selector_all("path.series")
            points = [int(p.get_attribute("data-points") or 0) for p in paths]
            plot = svg.query_selector("rect.plot")
            box = plot.bounding_box() if plot else None
            ink = 0.0
            if box:
                svg.scroll_into_view_if_needed()
                box = plot.bounding_box()
                clip = {"x": box["x"] + 2, "y": box["y"] + 2, "width": box["width"] - 4,
                        "height": box["height"] - 4}
                ink = ink_share(page.screenshot(clip=clip))
            charts.append({"title": title, "paths": len(paths), "points": points, "ink": ink})
        result["charts"] = charts
        context.close()
    return result


if __name__ == "__main__":
    print(json.dumps(check(Path(sys.argv[1]), Path(sys.argv[2]))))
