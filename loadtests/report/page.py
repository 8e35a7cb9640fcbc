"""HTML building blocks shared by the run report and the comparison page: one self-contained
document (inline CSS, inline SVG, no scripts, nothing fetched)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

__all__ = ["badge", "html_table", "page", "section"]

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:6px 0 12px;background:#fff}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:right;font-variant-numeric:tabular-nums}
th{background:#f0f0f0}td.l,th.l{text-align:left}
.meta{color:#555}.pass{color:#fff;background:#2a7d2e;padding:1px 8px;border-radius:3px}
.fail{color:#fff;background:#b3261e;padding:1px 8px;border-radius:3px}
.note{background:#fff8e1;border:1px solid #f0d98c;padding:6px 10px;margin:8px 0}
svg.chart{display:block;margin:8px 0;background:#fff;border:1px solid #e4e4e4}
svg .title{font:bold 13px system-ui,sans-serif}svg .axis{font:11px system-ui,sans-serif;fill:#555}
svg .xtick,svg .ytick,svg .legend,svg .mlabel{font:11px system-ui,sans-serif}
svg .xtick,svg .ytick{fill:#666}
"""


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
    return f'<span class="{"pass" if ok else "fail"}">{escape(text)}</span>'


def section(title: str, *parts: str) -> str:
    return f"<section><h2>{escape(title)}</h2>\n" + "\n".join(parts) + "\n</section>"


def page(title: str, header_html: str, sections: Sequence[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{_CSS}</style></head>\n<body>\n"
            f"<h1>{escape(title)}</h1>\n{header_html}\n" + "\n".join(sections)
            + "\n</body></html>\n")
