"""Reports over a saved results stream: `build_report(out_dir)` writes `report.html` (one
self-contained file: the headline first, interactive charts drawn by the inlined Apache ECharts,
the tables collapsed) and CSV files of its tables; `finish_run(out_dir)`
writes summary.json (with the QoS verdict) and the report from one pass over the stream."""

from loadtests.report.build import REPORT_FILE, build_report, render_report, write_report
from loadtests.report.finish import finish_run

__all__ = ["REPORT_FILE", "build_report", "finish_run", "render_report", "write_report"]
