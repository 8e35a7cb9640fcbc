"""Locust's web UI for a `mailswarm run --web HOST:PORT`, with a "Target" tab.

`attach_web_ui` starts Locust's own web UI on the run's Environment and adds, through the UI's
extension points (see Locust's examples/extend_web_ui.py):

- a "Target" tab: `extended_tabs` / `extended_tables` in the page's template args (the React UI
  turns every key of `window.templateArgs` into camelCase, so they arrive as `extendedTabs` /
  `extendedTables`), one row per monitored process group and one for the generator: the
  resources of loadtests.monitor.resources marked `live` (processes, threads, open fds / fd
  limit, RSS and PSS in MiB, CPU %);
- the rows of both tabs as `extended_stats` in each `/stats/requests` answer (added by an
  `after_request` hook), which the UI polls every 2 s while the run goes;
- a "Headline" tab: the figures of the report's headline (loadtests.report.headline) computed
  from Locust's request statistics so far (operations, failed %, the slowest p95), the same
  function the report and the console use;
- `GET /mailswarm/target`: the newest monitor sample as JSON (`{}` before the first one);
- a link to that JSON on the UI's "Download Data" tab.

Only imported when `--web` is given, so runs without the UI never load Flask. The server binds to
the host it is given; the CLI accepts only loopback unless `--allow-remote`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

from loadtests.monitor.resources import Resource, resources_with
from loadtests.report.headline import headline

__all__ = ["HEADLINE_KEY", "HEADLINE_STRUCTURE", "TABLE_STRUCTURE", "TAB_KEY", "TARGET_PATH",
           "attach_web_ui", "headline_rows", "target_rows"]

logger = logging.getLogger(__name__)

TAB_KEY = "target"
HEADLINE_KEY = "headline"
TARGET_PATH = "/mailswarm/target"
_LIVE = resources_with("live")

# `key`s are snake_case here; the UI camel-cases both these and the rows' keys, so they match.
TABLE_STRUCTURE: list[dict[str, str]] = [
    {"key": "group", "title": "Group"},
    *({"key": r.live[0], "title": r.live[1]} for r in _LIVE if r.live),
]

HEADLINE_STRUCTURE: list[dict[str, str]] = [
    {"key": "figure", "title": "Figure"}, {"key": "value", "title": "Value"},
    {"key": "note", "title": "Note"}]


def headline_rows(stats: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The headline's figures from the `stats` rows of Locust's `/stats/requests` (every row
    but the `Aggregated` one becomes a summary `requests` row; its total rate gives the
    elapsed time)."""
    rows: list[dict[str, Any]] = []
    total_rps = 0.0
    for s in stats:
        if s.get("name") == "Aggregated":
            total_rps = float(s.get("total_rps") or 0.0)
            continue
        rows.append({"type": s.get("method") or "", "name": s.get("name") or "",
                     "count": int(s.get("num_requests") or 0),
                     "failures": int(s.get("num_failures") or 0),
                     "p95_ms": s.get("response_time_percentile_0.95"),
                     "p99_ms": s.get("response_time_percentile_0.99")})
    count = sum(r["count"] for r in rows)
    duration = count / total_rps if total_rps > 0 else 0.0
    figures = headline({"requests": rows, "duration_s": duration}).figures
    return [{"figure": f.label, "value": f.value, "note": f.note} for f in figures]


def _cell(res: Resource, values: dict[str, Any]) -> Any:
    """A resource as the tab shows it: with its limit (`fds / limit`), scaled and rounded to
    one decimal (MiB, CPU %), or as it is (counts)."""
    value = values.get(res.key)
    if res.limit:
        limit = values.get(res.limit)
        if value is None:
            return ""
        return f"{value:,} / {limit:,}" if isinstance(value, int) and isinstance(limit, int) \
            else f"{value:,}"
    if isinstance(value, float) or (res.scale != 1.0 and isinstance(value, int)):
        return round(value * res.scale, 1)
    return value


def _row(name: str, values: dict[str, Any], last_pss: dict[str, float]) -> dict[str, Any]:
    row: dict[str, Any] = {"group": name if values.get("alive", True)
                           else f"{name} (not running)"}
    for res in _LIVE:
        assert res.live is not None
        row[res.live[0]] = _cell(res, values)
    pss = row.get("pss_mib")
    if pss is None:  # PSS is read every few samples only: show the last one seen
        row["pss_mib"] = last_pss.get(name)
    else:
        last_pss[name] = pss
    return row


def target_rows(sample: dict[str, Any],
                last_pss: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """The Target tab's rows for one monitor sample: each target group, then the generator."""
    memo = {} if last_pss is None else last_pss
    rows = [_row(name, values, memo)
            for name, values in sorted((sample.get("targets") or {}).items())
            if isinstance(values, dict)]
    generator = sample.get("generator")
    if isinstance(generator, dict):
        rows.append(_row("generator (mailswarm)", generator, memo))
    return rows


@contextlib.contextmanager
def _no_locust_command_line() -> Iterator[None]:
    """Locust's `update_template_args` lists the UI's extra options by parsing `sys.argv` with
    Locust's own parser, which fails (exits) on mailswarm's command line; mailswarm has no such
    options. Swapped for the (synchronous, greenlet-safe) duration of one call."""
    from locust import argument_parser

    original = argument_parser.ui_extra_args_dict
    argument_parser.ui_extra_args_dict = lambda args=None: {}
    try:
        yield
    finally:
        argument_parser.ui_extra_args_dict = original


def attach_web_ui(environment: Any, host: str, port: int,
                  latest_sample: Callable[[], dict[str, Any]]) -> None:
    """Serve Locust's web UI for `environment` on host:port, with the Target tab and route."""
    from flask import Response, jsonify, request

    with _no_locust_command_line():
        web_ui = environment.create_web_ui(host, port, delayed_start=True)
    update_template_args = web_ui.update_template_args

    def update_template_args_here() -> None:
        with _no_locust_command_line():
            update_template_args()

    web_ui.update_template_args = update_template_args_here  # index() calls it on each load
    app = web_ui.app
    last_pss: dict[str, float] = {}

    def sample() -> dict[str, Any]:
        try:
            return latest_sample() or {}
        except Exception:  # a live view must never end the run
            logger.exception("web UI: reading the latest monitor sample failed")
            return {}

    @app.route(TARGET_PATH)
    @web_ui.auth_required_if_enabled
    def mailswarm_target() -> Response:
        return jsonify(sample())

    @app.after_request
    def add_target_stats(response: Response) -> Response:
        if request.path != "/stats/requests" or response.status_code != 200:
            return response
        try:
            data = response.get_json(silent=True)
            if isinstance(data, dict):
                data["extended_stats"] = [
                    {"key": TAB_KEY, "data": target_rows(sample(), last_pss)},
                    {"key": HEADLINE_KEY, "data": headline_rows(data.get("stats") or [])}]
                response.set_data(json.dumps(data))
        except Exception:
            logger.exception("web UI: adding the target's rows to /stats/requests failed")
        return response

    web_ui.template_args.update({  # kept by update_template_args, which merges into these
        "extended_tabs": [{"title": "Target", "key": TAB_KEY},
                          {"title": "Headline", "key": HEADLINE_KEY}],
        "extended_tables": [{"key": TAB_KEY, "structure": TABLE_STRUCTURE},
                            {"key": HEADLINE_KEY, "structure": HEADLINE_STRUCTURE}],
        "extended_csv_files": [{"href": f".{TARGET_PATH}",
                                "title": "Latest target sample (JSON)"}],
    })
    web_ui.start()
    logger.info("Locust web UI (with a Target tab) at http://%s:%d/", host, port)
