"""The end of a run, and `mailswarm report DIR`: one pass over the results stream into
`summary.json` (with the QoS verdict), `report.html` and the CSV tables.

The stream is read once (`load_records`); the summary, the QoS latency distributions and the
report's series and tables are all computed from those records, and `summary.json` is written
once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadtests.analysis.qos import evaluate_qos
from loadtests.analysis.stream import load_records, step_latencies
from loadtests.analysis.summary import summarize_records, write_summary
from loadtests.report.build import write_report

__all__ = ["finish_run"]


def finish_run(out_dir: Path, qos: Any = None) -> dict[str, Any]:
    """Summary (with `qos`, the profile's QosSettings; None: the run header's), report and
    tables of a run folder; returns the summary. Raises loadtests.stream.StreamError when the
    stream cannot be read (e.g. written by a newer mailswarm)."""
    run = load_records(out_dir)
    summary = summarize_records(run)
    if qos is None:
        qos = (run.header.profile or {}).get("qos") or {}
    summary["qos"] = evaluate_qos(summary, qos, latencies=step_latencies(run.requests))
    write_summary(out_dir, summary)
    write_report(out_dir, run, summary)
    return summary
