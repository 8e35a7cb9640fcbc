"""Reports over a saved results stream: `build_report(out_dir)` writes `report.html` (one
self-contained file, plots as inline SVG) and CSV files of its tables."""

from loadtests.report.build import REPORT_FILE, build_report, render_report

__all__ = ["REPORT_FILE", "build_report", "render_report"]
