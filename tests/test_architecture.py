"""docs/architecture.md stays true: every package and top-level module of loadtests/ is named
in its layout block, and nothing it names there is gone."""

from __future__ import annotations

import re

from cli import ROOT

DOC = ROOT / "docs" / "architecture.md"


def _layout_block() -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index("## Packages and what each one does")
    return text[start:text.index("```", text.index("```", start) + 3)]


def _entries() -> set[str]:
    package = ROOT / "loadtests"
    names = {p.name + "/" for p in package.iterdir()
             if p.is_dir() and (p / "__init__.py").is_file()}
    names |= {p.name for p in package.glob("*.py") if p.name != "__init__.py"}
    return names


def test_every_package_and_module_is_described() -> None:
    block = _layout_block()
    missing = sorted(name for name in _entries() if not re.search(
        rf"(?<![\w/]){re.escape(name)}", block))
    assert not missing, f"add to docs/architecture.md's layout: {missing}"


def test_nothing_described_is_gone() -> None:
    block = _layout_block()
    named = set(re.findall(r"^  ([a-z_]+(?:/|\.py))", block, flags=re.M))
    gone = sorted(named - _entries())
    assert not gone, f"docs/architecture.md names what no longer exists: {gone}"
