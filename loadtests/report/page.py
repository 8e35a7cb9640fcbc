"""HTML building blocks shared by the run report and the comparison page: one self-contained
document (inline CSS, the inlined Apache ECharts library and the charts' options as JSON,
nothing fetched), full width, readable on a laptop and when printed.

`headline_band` draws the answer first (loadtests.report.headline): the verdict, the headline
figures, the ceiling's evidence and the warnings. `chart_grid` places the charts (`<div
class="chart">` each, drawn by the script at the end of the page from `#ms-charts`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from html import escape
from importlib.resources import files
from typing import Any

from loadtests.report.charts import Chart, echarts_option
from loadtests.report.headline import Headline

__all__ = ["ECHARTS_VERSION", "badge", "chart_grid", "collapsed", "headline_band", "html_table",
           "json_for_script", "page", "section"]

ECHARTS_VERSION = "6.1.0"
_ECHARTS_FILE = "echarts.common.min.js"

_CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;padding:16px 24px;
 color:#1d1d1f;background:#f6f7f9}
h1{font-size:20px;margin:0 0 2px}h2{font-size:16px;margin:22px 0 8px;color:#333}
.meta{color:#555;margin:0 0 10px}
.band{display:grid;grid-template-columns:minmax(260px,1fr) 3fr;gap:14px;background:#fff;
 border:1px solid #dde1e6;border-left:8px solid #888;border-radius:6px;padding:14px 18px}
.band.pass{border-left-color:#2a7d2e}.band.fail{border-left-color:#b3261e}
.verdict{font-size:24px;font-weight:700}.verdict.pass{color:#2a7d2e}.verdict.fail{color:#b3261e}
.failed{margin:6px 0 0;padding:0;list-style:none;font-size:13px}
.failed b{display:inline-block;min-width:46px}
.figures{display:flex;flex-wrap:wrap;gap:10px}
.fig{flex:1 1 170px;max-width:340px;background:#f8f9fb;border:1px solid #e3e6ea;
 border-radius:5px;padding:8px 12px}
.fig .l{font-size:12px;color:#555}.fig .v{font-size:20px;font-weight:650;
 font-variant-numeric:tabular-nums}.fig .n{font-size:12px;color:#666}
.fig.bad{border-color:#e8b4b0;background:#fdf3f2}.fig.bad .v{color:#b3261e}
.evidence{margin:8px 0 0;font-size:13px}.evidence li{margin:2px 0}
.warn{margin:10px 0 0;padding:8px 12px;background:#fff8e1;border:1px solid #f0d98c;
 border-radius:5px;font-size:13px}.warn li{margin:2px 0}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,620px),1fr));gap:12px}
.chart{min-width:0;overflow:hidden;height:360px;background:#fff;border:1px solid #e1e4e8;
 border-radius:6px;padding:4px}
.chart.wide{grid-column:1/-1;height:420px}
table{border-collapse:collapse;margin:6px 0 12px;background:#fff;font-size:13px}
th,td{border:1px solid #e1e4e8;padding:3px 8px;text-align:right;font-variant-numeric:tabular-nums}
th{background:#f0f2f5}td.l,th.l{text-align:left}
details{background:#fff;border:1px solid #e1e4e8;border-radius:6px;margin:8px 0;padding:6px 12px}
details>summary{cursor:pointer;font-weight:600}
.pass-b{color:#fff;background:#2a7d2e;padding:1px 8px;border-radius:3px}
.fail-b{color:#fff;background:#b3261e;padding:1px 8px;border-radius:3px}
.note{background:#fff8e1;border:1px solid #f0d98c;padding:6px 10px;margin:8px 0}
footer{color:#777;font-size:12px;margin-top:24px}
@media (max-width:900px){.band{grid-template-columns:1fr}}
@media print{
 body{background:#fff;padding:0;font-size:11px}
 .band,.chart,details,table{break-inside:avoid}
 .charts{grid-template-columns:1fr 1fr}.chart{height:300px;border-color:#ccc}
 .chart.wide{height:320px}
 details{border:none;padding:0}details>summary{list-style:none}
 footer{display:none}
}
"""

# Draws every chart of #ms-charts into its div (SVG renderer: crisp when printed), redraws on
# resize and before printing; expands the collapsed tables for print.
_SCRIPT = """
(function(){
 var specs=JSON.parse(document.getElementById('ms-charts').textContent), charts=[];
 specs.forEach(function(opt,i){
  var el=document.getElementById('chart-'+i);
  if(!el||typeof echarts==='undefined')return;
  var c=echarts.init(el,null,{renderer:'svg'});c.setOption(opt);charts.push(c);
 });
 window.msCharts=charts;
 function resize(){charts.forEach(function(c){c.resize();});}
 window.addEventListener('resize',resize);
 window.addEventListener('beforeprint',function(){
  document.querySelectorAll('details').forEach(function(d){d.open=true;});resize();});
 window.addEventListener('afterprint',resize);
 var print=window.matchMedia&&window.matchMedia('print');
 if(print&&print.addEventListener)print.addEventListener('change',resize);
})();
"""


@cache
def _echarts_js() -> str:
    return (files("loadtests.report") / "vendor" / _ECHARTS_FILE).read_text(encoding="utf-8")


def json_for_script(data: Any) -> str:
    """JSON safe inside a `<script>` element: every `<` (only ever inside a string) is written
    `\\u003c`, so `</script>` cannot close it nor `<!--` open a comment."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False,
                      default=str).replace("<", "\\u003c")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "pass" if value else "FAIL"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"
    return escape(str(value))


def html_table(rows: Sequence[dict[str, Any]], left: Sequence[str] = (),
               css_class: str = "") -> str:
    """Rows as a table; columns named in `left` are left-aligned (text)."""
    if not rows:
        return '<p class="meta">(none)</p>'
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    head = "".join(f'<th class="{"l" if c in left else ""}">{escape(c)}</th>' for c in columns)
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if c in left else ""}">{_cell(row.get(c))}</td>'
                         for c in columns) + "</tr>"
        for row in rows)
    return f'<table class="{css_class}"><tr>{head}</tr>{body}</table>'


def badge(ok: bool | None, text: str) -> str:
    return f'<span class="{"pass-b" if ok else "fail-b"}">{escape(text)}</span>'


def section(title: str, *parts: str) -> str:
    return f"<section><h2>{escape(title)}</h2>\n" + "\n".join(parts) + "\n</section>"


def collapsed(title: str, body: str, *, open_: bool = False, rows: int | None = None) -> str:
    """A `<details>` block: `title` (with the row count) always shown, `body` on a click."""
    count = f" ({rows})" if rows is not None else ""
    return (f'<details{" open" if open_ else ""}><summary>{escape(title)}{count}</summary>\n'
            f"{body}\n</details>")


def headline_band(h: Headline, meta: str = "") -> str:
    """The header band: verdict and failed checks (per protocol) on the left, the figures on
    the right, then the evidence of a ceiling's cause and the warnings."""
    state = {"pass": "pass", "fail": "fail"}.get(h.verdict, "none")
    failed = "".join(f"<li><b>{escape(proto)}</b> {escape('; '.join(checks[:3]))}"
                     + (f" (+{len(checks) - 3} more)" if len(checks) > 3 else "") + "</li>"
                     for proto, checks in h.failed.items())
    left = (f'<div><div class="verdict {state}" id="verdict">{escape(h.verdict_text)}</div>'
            + (f'<ul class="failed">{failed}</ul>' if failed else "")
            + (f'<p class="meta">{meta}</p>' if meta else "") + "</div>")
    figures = "".join(
        f'<div class="fig{" bad" if f.bad else ""}" data-label="{escape(f.label)}">'
        f'<div class="l">{escape(f.label)}</div><div class="v">{escape(f.value)}</div>'
        + (f'<div class="n">{escape(f.note)}</div>' if f.note else "") + "</div>"
        for f in h.figures)
    right = f'<div><div class="figures" id="figures">{figures}</div>'
    if h.evidence:
        right += ('<ul class="evidence" id="evidence"><b>Evidence</b>'
                  + "".join(f"<li>{escape(e)}</li>" for e in h.evidence) + "</ul>")
    if h.warnings:
        right += ('<ul class="warn" id="warnings">'
                  + "".join(f"<li>{escape(w)}</li>" for w in h.warnings) + "</ul>")
    right += "</div>"
    return f'<header class="band {state}" data-kind="{escape(h.kind)}">{left}{right}</header>'


def chart_grid(charts: Sequence[Chart], first: int = 0, wide: Sequence[str] = ()) -> str:
    """`<div class="chart">` per chart (ids `chart-<first + i>`), in a responsive grid; charts
    whose title is in `wide` span the full width."""
    cells = "".join(
        f'<div class="chart{" wide" if c.title in wide else ""}" id="chart-{first + i}" '
        f'data-title="{escape(c.title)}" role="img" aria-label="{escape(c.title)}"></div>'
        for i, c in enumerate(charts))
    return f'<div class="charts">{cells}</div>'


def page(title: str, header_html: str, sections: Sequence[str],
         charts: Sequence[Chart] = ()) -> str:
    """The document: title, header, sections, then the library and the charts' options."""
    specs = json_for_script([echarts_option(c) for c in charts])
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            f"<h1>{escape(title)}</h1>\n{header_html}\n" + "\n".join(sections)
            + f"\n<footer>charts: Apache ECharts {ECHARTS_VERSION} (Apache-2.0), inlined"
            "</footer>\n"
            f'<script type="application/json" id="ms-charts">{specs}</script>\n'
            f"<script>{_echarts_js()}</script>\n<script>{_SCRIPT}</script>\n"
            "</body></html>\n")
