"""Charts as data (`Chart`) and their Apache ECharts options (`echarts_option`): pure, no
JavaScript here; the page (loadtests.report.page) inlines the library and draws the options.

Every chart gets hover tooltips, a legend whose entries toggle their series, and a time-range
zoom (a slider under the plot, the mouse wheel inside it). Limits are horizontal mark lines on
the series they bound (hidden with it); markers (ramp steps, the ceiling's knee) and bands (the
failed step) sit on a series of their own, `steps`, which the legend toggles too.
Series longer than `MAX_POINTS` are decimated (min and max per bucket, so peaks survive).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_POINTS", "PALETTE", "Band", "Chart", "Limit", "Marker", "Series", "decimate",
           "echarts_option", "round_sig"]

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#7f7f7f", "#bcbd22"]
MAX_POINTS = 3000
"""Points per series at most; longer series keep each bucket's min and max."""
_LIMIT_SCALE = 10.0
"""A limit more than this many times the data's peak is named in the subtitle, not drawn (it
would flatten the lines)."""

Point = tuple[float | str, float | None]


@dataclass(frozen=True)
class Series:
    """One line; a None value breaks it (no data that second). `axis`: 0 the left y axis,
    1 and 2 the right ones."""

    label: str
    points: Sequence[Point]
    color: str | None = None
    dashed: bool = False
    axis: int = 0
    width: float = 1.6


@dataclass(frozen=True)
class Limit:
    """A horizontal line, e.g. the target's fd limit, drawn with the series `series` (its
    label; None: the first series)."""

    label: str
    value: float
    series: str | None = None
    color: str = "#b3261e"


@dataclass(frozen=True)
class Marker:
    """A vertical line at x, e.g. a ramp step or the ceiling."""

    x: float
    label: str
    color: str = "#999"
    strong: bool = False


@dataclass(frozen=True)
class Band:
    """A shaded x range, e.g. the step that failed."""

    x0: float
    x1: float
    label: str
    color: str = "rgba(179,38,30,0.10)"


@dataclass(frozen=True)
class Chart:
    title: str
    y_label: str
    series: list[Series]
    limits: list[Limit] = field(default_factory=list)
    markers: list[Marker] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    x_label: str = "seconds since the load started"
    y_labels: tuple[str, ...] = ()  # the right axes' names (series with axis 1, 2)
    categories: list[str] | None = None  # a category x axis (e.g. percentiles), no zoom
    log_y: bool = False
    subtitle: str = ""


def round_sig(value: float | None, digits: int = 4) -> float | None:
    """`value` to `digits` significant digits (smaller JSON, readable tooltips)."""
    if value is None or not math.isfinite(value) or value == 0:
        return None if value is None or not math.isfinite(value) else 0.0
    return round(value, max(0, digits - 1 - math.floor(math.log10(abs(value)))))


def decimate(points: Sequence[Point], max_points: int = MAX_POINTS) -> list[Point]:
    """At most about `max_points` points: in each of `max_points // 2` buckets of consecutive
    points, the lowest and the highest (in x order); a bucket without values keeps a gap."""
    if len(points) <= max_points:
        return list(points)
    buckets = max(1, max_points // 2)
    size = len(points) / buckets
    out: list[Point] = []
    for b in range(buckets):
        chunk = points[int(b * size):int((b + 1) * size)]
        valued = [p for p in chunk if p[1] is not None]
        if not valued:
            if chunk:
                out.append((chunk[0][0], None))
            continue
        lo = min(valued, key=lambda p: p[1])  # type: ignore[arg-type, return-value]
        hi = max(valued, key=lambda p: p[1])  # type: ignore[arg-type, return-value]
        out += [lo] if lo is hi else sorted((lo, hi), key=lambda p: chunk.index(p))
    return out


def _data(points: Sequence[Point], categories: bool) -> list[Any]:
    """ECharts data: values alone on a category axis; else [x, y] pairs, x rounded to whole
    seconds (ticks and samples fall at different fractions of a second: on one grid, the
    tooltip shows every series of the second hovered)."""
    if categories:
        return [round_sig(y) for _, y in points]
    return [[round(float(x)), round_sig(y)] for x, y in decimate(points)]


def _positive(data: list[Any]) -> list[Any]:
    """A log axis cannot show 0: such points become gaps."""
    return [None if (p[1] if isinstance(p, list) else p) == 0 else p for p in data]


def _peak(chart: Chart, label: str | None) -> float:
    values = [y for s in chart.series if label is None or s.label == label
              for _, y in s.points if y is not None]
    return max(values, default=0.0)


def _series_option(chart: Chart, index: int, s: Series) -> dict[str, Any]:
    color = s.color or PALETTE[index % len(PALETTE)]
    data = _data(s.points, chart.categories is not None)
    out: dict[str, Any] = {
        "name": s.label, "type": "line",
        "data": _positive(data) if chart.log_y and s.axis == 0 else data,
        "showSymbol": chart.categories is not None, "symbolSize": 4, "connectNulls": False,
        "yAxisIndex": s.axis, "color": color,
        "lineStyle": {"width": s.width, "type": "dashed" if s.dashed else "solid"},
        "emphasis": {"focus": "series"}}
    lines = []
    for lim in chart.limits:
        if (lim.series or chart.series[0].label) != s.label:
            continue
        if lim.value > _LIMIT_SCALE * max(_peak(chart, lim.series), 1.0):
            continue  # named in the subtitle
        lines.append({"yAxis": lim.value, "name": lim.label,
                      "lineStyle": {"color": lim.color, "type": "dashed", "width": 1.5},
                      "label": {"formatter": lim.label, "position": "insideEndTop",
                                "color": lim.color}})
    if lines:
        out["markLine"] = {"symbol": "none", "silent": True, "data": lines}
    return out


def _steps_series(chart: Chart) -> dict[str, Any]:
    """The markers and bands, on an empty series of their own (toggled by the legend)."""
    many = len(chart.markers) > 14
    lines = [{"xAxis": m.x, "name": m.label,
              "lineStyle": {"color": m.color, "type": "solid" if m.strong else "dotted",
                            "width": 2.5 if m.strong else 1},
              "label": {"show": m.strong or not many, "formatter": m.label,
                        "position": "end" if m.strong else "insideStartTop",
                        "color": m.color if m.strong else "#666",
                        "fontWeight": "bold" if m.strong else "normal", "fontSize": 11}}
             for m in chart.markers]
    areas = [[{"xAxis": b.x0, "name": b.label, "itemStyle": {"color": b.color},
               "label": {"color": "#b3261e", "position": "insideTop"}}, {"xAxis": b.x1}]
             for b in chart.bands]
    out: dict[str, Any] = {"name": "steps", "type": "line", "data": [], "color": "#999",
                           "tooltip": {"show": False}}
    if lines:
        out["markLine"] = {"symbol": "none", "silent": True, "animation": False, "data": lines}
    if areas:
        out["markArea"] = {"silent": True, "data": areas}
    return out


def _y_axes(chart: Chart) -> list[dict[str, Any]]:
    names = [chart.y_label, *chart.y_labels]
    used = max([s.axis for s in chart.series] + [0])
    axes = []
    for i, name in enumerate(names[:used + 1]):
        axis: dict[str, Any] = {"type": "log" if chart.log_y and i == 0 else "value",
                                "name": name, "nameTextStyle": {"color": "#555"},
                                "scale": False, "splitLine": {"show": i == 0}}
        if i == 0:
            axis.update(nameLocation="middle", nameGap=48)
        if i:
            axis.update(position="right", offset=(i - 1) * 64, alignTicks=False,
                        nameGap=8 + 12 * (i - 1))
        limits = [lim.value for lim in chart.limits
                  if lim.value <= _LIMIT_SCALE * max(_peak(chart, lim.series), 1.0)]
        if i == 0 and limits:
            axis["max"] = round_sig(max(max(limits), _peak(chart, None)) * 1.08, 2)
        axes.append(axis)
    return axes


def echarts_option(chart: Chart) -> dict[str, Any]:
    """The ECharts option object of `chart` (JSON-serialisable: no functions)."""
    subtitle = [chart.subtitle] if chart.subtitle else []
    subtitle += [f"{lim.label}: off the scale" for lim in chart.limits
                 if lim.value > _LIMIT_SCALE * max(_peak(chart, lim.series), 1.0)]
    right_axes = max([s.axis for s in chart.series] + [0])
    series = [_series_option(chart, i, s) for i, s in enumerate(chart.series)]
    if chart.markers or chart.bands:
        series.append(_steps_series(chart))
    option: dict[str, Any] = {
        "animation": False,
        "title": {"text": chart.title, "subtext": "; ".join(subtitle)[:160], "left": 8,
                  "textStyle": {"fontSize": 14}, "subtextStyle": {"color": "#b3261e"}},
        "tooltip": {"trigger": "axis", "className": "ms-tooltip", "confine": True,
                    "axisPointer": {"type": "line"}},
        "legend": {"type": "scroll", "bottom": 0, "left": 8, "right": 8},
        "grid": {"left": 64, "right": 24 + 64 * right_axes, "top": 64 if subtitle else 48,
                 "bottom": 92 if chart.categories is None else 60},
        "xAxis": ({"type": "category", "data": chart.categories, "name": chart.x_label,
                   "nameLocation": "middle", "nameGap": 26, "boundaryGap": False}
                  if chart.categories is not None else
                  {"type": "value", "name": chart.x_label, "nameLocation": "middle",
                   "nameGap": 26, "min": "dataMin", "max": "dataMax"}),
        "yAxis": _y_axes(chart),
        "series": series,
    }
    if chart.categories is None:
        option["dataZoom"] = [{"type": "inside", "xAxisIndex": 0, "filterMode": "none"},
                              {"type": "slider", "xAxisIndex": 0, "filterMode": "none",
                               "height": 16, "bottom": 28}]
        option["toolbox"] = {"right": 12, "feature": {"dataZoom": {"yAxisIndex": "none"},
                                                      "restore": {}}}
    return option
