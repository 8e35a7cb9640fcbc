"""`mailswarm compare A B`: registered on the main parser by `register(subparsers)`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["register"]

_EPILOG = """\
method: differences B - A with 95% bootstrap intervals (seeded): per-second samples for rates,
sessions and resources (block bootstrap), requests for latency percentiles, the ramp's step
resolution for the ceiling. Significant = interval excludes 0 and the change reaches
--min-effect % of A. See `python -m pydoc loadtests.analysis.compare`.

exit status: 0 compared (whatever the verdict), 2 a folder holds no results: no stream, one
this version cannot read, or one with no request recorded (a header-only stream: "not
comparable").
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare", help="compare two runs (A is the baseline) with confidence intervals",
        description="Compare two runs of the same profile: ceiling, throughput, latency "
                    "percentiles per step, target resources; each difference with a bootstrap "
                    "confidence interval and a plain verdict.",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", type=Path, metavar="A", help="the baseline run's folder")
    p.add_argument("b", type=Path, metavar="B", help="the other run's folder")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument("--html", type=Path, metavar="FILE",
                   help="also write an HTML page with both runs overlaid")
    p.add_argument("--resamples", type=int, default=2000, metavar="N",
                   help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--min-effect", type=float, default=25.0, metavar="PCT",
                   help="smallest change in %% of A called significant (default 25)")
    p.set_defaults(func=_cmd_compare)


def _cmd_compare(args: argparse.Namespace) -> int:
    from loadtests.analysis.compare import compare_records, format_compare, load_run
    from loadtests.stream import RESULTS_FILE, StreamError

    for folder in (args.a, args.b):
        if not (folder / RESULTS_FILE).is_file():
            print(f"mailswarm compare: no {RESULTS_FILE} in {folder}", file=sys.stderr)
            return 2
    try:
        a, b = load_run(args.a), load_run(args.b)
    except StreamError as exc:
        print(f"mailswarm compare: {exc}", file=sys.stderr)
        return 2
    result = compare_records(a, b, resamples=args.resamples, seed=args.seed,
                             min_effect=args.min_effect)
    result["a"]["dir"], result["b"]["dir"] = str(args.a), str(args.b)
    if args.html is not None:
        from loadtests.report.compare_page import render_compare

        args.html.write_text(render_compare(result, a, b), encoding="utf-8")
    from loadtests.printable import printable

    # causes are servers' words: no control character reaches the terminal
    print(json.dumps(result, indent=2) if args.json
          else printable(format_compare(result), keep_newlines=True))
    if args.html is not None and not args.json:
        print(f"page: {args.html}")
    return 0 if result["comparable"] else 2
