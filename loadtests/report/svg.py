"""Line charts as inline SVG strings: no JavaScript, no network, the same bytes for the same
input (golden-file tests). A chart is data (`Chart`); `render_chart` draws it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape

__all__ = ["PALETTE", "Chart", "Limit", "Marker", "Series", "nice_ticks", "render_chart"]

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#7f7f7f", "#bcbd22"]

Point = tuple[float, float | None]


@dataclass(frozen=True)
class Series:
    """One line; a None value breaks it (no data that second)."""

    label: str
    points: list[Point]
    color: str | None = None
    dashed: bool = False


@dataclass(frozen=True)
class Limit:
    """A horizontal line, e.g. the target's fd limit."""

    label: str
    value: float
    color: str = "#b00"


@dataclass(frozen=True)
class Marker:
    """A vertical line at x, e.g. a ramp step or the ceiling."""

    x: float
    label: str
    color: str = "#888"
    strong: bool = False


@dataclass(frozen=True)
class Chart:
    title: str
    y_label: str
    series: list[Series]
    limits: list[Limit] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    x_label: str = "seconds since the load started"
    log_y: bool = False


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 5 x 10^n steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / max(1, count)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(value, 10))
    return ticks


def _fmt(value: float) -> str:
    if abs(value) >= 1e9:
        return f"{value / 1e9:g}G"
    if abs(value) >= 1e6:
        return f"{value / 1e6:g}M"
    if abs(value) >= 1e4:
        return f"{value / 1e3:g}k"
    return f"{value:g}"


def _path(points: list[tuple[float, float]]) -> str:
    return "M" + "L".join(f"{x:.1f},{y:.1f}" for x, y in points)


def render_chart(chart: Chart, width: int = 900, height: int = 280) -> str:
    """The chart as one `<svg>` element. Lines carry `class="series"` and `data-points`."""
    left, right, top, bottom = 64, 16, 28, 58
    pw, ph = width - left - right, height - top - bottom
    xs = [x for s in chart.series for x, _ in s.points] + [m.x for m in chart.markers]
    ys = [y for s in chart.series for _, y in s.points if y is not None]
    ys += [lim.value for lim in chart.limits]
    x_ticks = nice_ticks(min(xs, default=0.0), max(xs, default=1.0), 8)
    y_lo = min(0.0, min(ys, default=0.0))
    y_max = max(ys, default=1.0) or 1.0
    y_ticks = nice_ticks(y_lo, y_max + 0.05 * (y_max - y_lo), 5)
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def sx(x: float) -> float:
        return left + (x - x0) / ((x1 - x0) or 1) * pw

    def sy(y: float) -> float:
        return top + ph - (y - y0) / ((y1 - y0) or 1) * ph

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{escape(chart.title)}">',
           f'<text x="{left}" y="16" class="title">{escape(chart.title)}</text>',
           f'<rect class="plot" x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" '
           f'stroke="#ccc"/>']
    for t in y_ticks:
        y = sy(t)
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="#eee"/><text x="{left - 6}" y="{y + 4:.1f}" class="ytick" '
                   f'text-anchor="end">{_fmt(t)}</text>')
    for t in x_ticks:
        x = sx(t)
        out.append(f'<text x="{x:.1f}" y="{top + ph + 16}" class="xtick" '
                   f'text-anchor="middle">{_fmt(t)}</text>')
    out.append(f'<text x="{left + pw / 2:.0f}" y="{top + ph + 32}" class="axis" '
               f'text-anchor="middle">{escape(chart.x_label)}</text>')
    out.append(f'<text transform="translate(14,{top + ph / 2:.0f}) rotate(-90)" class="axis" '
               f'text-anchor="middle">{escape(chart.y_label)}</text>')
    for m in chart.markers:
        x = sx(m.x)
        width_attr = 2 if m.strong else 1
        out.append(f'<line class="marker" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" '
                   f'y2="{top + ph}" stroke="{m.color}" stroke-width="{width_attr}" '
                   f'stroke-dasharray="{"" if m.strong else "3,3"}"><title>{escape(m.label)}'
                   f'</title></line>')
        if m.strong or len(chart.markers) <= 12:
            right_half = x > left + pw / 2
            out.append(f'<text x="{x - 3 if right_half else x + 3:.1f}" y="{top + 11}" '
                       f'class="mlabel" text-anchor="{"end" if right_half else "start"}" '
                       f'fill="{m.color}">{escape(m.label)}</text>')
    for lim in chart.limits:
        y = sy(lim.value)
        out.append(f'<line class="limit" x1="{left}" x2="{left + pw}" y1="{y:.1f}" '
                   f'y2="{y:.1f}" stroke="{lim.color}" stroke-width="1.5" '
                   f'stroke-dasharray="6,4"><title>{escape(lim.label)}</title></line>'
                   f'<text x="{left + pw - 4}" y="{y - 4:.1f}" class="mlabel" '
                   f'text-anchor="end" fill="{lim.color}">{escape(lim.label)}</text>')
    legend_x = left + 8
    for i, s in enumerate(chart.series):
        color = s.color or PALETTE[i % len(PALETTE)]
        runs: list[list[tuple[float, float]]] = [[]]
        for x, value in s.points:
            if value is None:
                if runs[-1]:
                    runs.append([])
                continue
            runs[-1].append((sx(x), sy(value)))
        d = " ".join(_path(r) for r in runs if r)
        n = sum(len(r) for r in runs)
        dash = ' stroke-dasharray="5,3"' if s.dashed else ""
        if d:
            out.append(f'<path class="series" data-points="{n}" d="{d}" fill="none" '
                       f'stroke="{color}" stroke-width="1.6"{dash}><title>{escape(s.label)}'
                       f'</title></path>')
        out.append(f'<line x1="{legend_x}" x2="{legend_x + 14}" y1="{top + ph + 46}" '
                   f'y2="{top + ph + 46}" stroke="{color}" stroke-width="2"{dash}/>'
                   f'<text x="{legend_x + 18}" y="{top + ph + 50}" class="legend">'
                   f'{escape(s.label)}</text>')
        legend_x += 26 + 7 * len(s.label)
    if not any(s.points for s in chart.series):
        out.append(f'<text x="{left + pw / 2:.0f}" y="{top + ph / 2:.0f}" class="axis" '
                   f'text-anchor="middle">no data</text>')
    out.append("</svg>")
    return "\n".join(out)
