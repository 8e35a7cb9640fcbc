"""The stream's field table (Markdown), rendered from the record definitions.

README.md carries it between `<!-- stream-fields -->` and `<!-- /stream-fields -->`; a test
checks it is current. `python -m loadtests.stream.fields` prints it (paste it there).
"""

from __future__ import annotations

from dataclasses import fields

from loadtests.stream.codec import RECORD_TYPES
from loadtests.stream.records import SCHEMA, Record

__all__ = ["BEGIN", "END", "render_field_table"]

BEGIN, END = "<!-- stream-fields -->", "<!-- /stream-fields -->"


def _row(kind: str, name: str, type_: str, doc: str) -> str:
    cell = type_.replace("|", "\\|")  # a bare | would end the table cell
    return f"| {kind} | `{name}` | `{cell}` | {doc} |"


def render_field_table() -> str:
    """One row per field of every kind, then the fields every kind has."""
    lines = [f"Stream schema {SCHEMA}. Every record also has `kind` and the fields in the last "
             "rows.", "", "| kind | field | type | meaning |", "|---|---|---|---|"]
    for cls in RECORD_TYPES:
        doc = (cls.__doc__ or "").split(":", 1)[-1].strip().rstrip(".")
        lines.append(f"| `{cls.KIND}` | | | {doc} |")
        for f in fields(cls):
            if f.name not in ("seq", "worker"):
                lines.append(_row("", f.name, str(f.type), f.metadata["doc"]))
    for f in fields(Record):
        lines.append(_row("(all)", f.name, str(f.type), f.metadata["doc"]))
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_field_table())
