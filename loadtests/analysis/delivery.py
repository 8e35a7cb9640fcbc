"""Delivery in the summary and the QoS verdict: counts of copies delivered, corrupt, duplicate
and lost, the latency percentiles of the delivered ones, and the SPECmail check "95% delivered
within 60 s, none lost" (thresholds from the profile's `delivery:` section in the run header).

Every copy (message x recipient) the tracker expected ends as exactly one of delivered,
corrupt or lost; duplicates are extra copies, counted apart. `tracking` says how often the
tracker failed to look, per way of finding (the first cause): copies it could not see are
reported lost, which is then no verdict on the server.
"""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Any

from loadtests.analysis.stream import RunRecords

__all__ = ["delivery_checks", "delivery_summary"]

_DEFAULTS: dict[str, Any] = {"qos": True, "qos_percent": 95.0, "qos_within": 60.0,
                             "max_lost": 0}


def delivery_summary(run: RunRecords) -> dict[str, Any] | None:
    """The `delivery` section of the summary; None when the run did not track delivery."""
    from loadtests.analysis.summary import percentile  # summary.py imports this module
    settings = (run.header.profile or {}).get("delivery")
    if settings is None and not run.deliveries:
        return None
    settings = {**_DEFAULTS, **(settings or {})}
    outcomes = Counter(d.outcome for d in run.deliveries)
    latencies = sorted(d.latency_s for d in run.deliveries
                       if d.outcome == "delivered" and d.latency_s is not None)
    tracked = outcomes["delivered"] + outcomes["corrupt"] + outcomes["lost"]
    within = float(settings["qos_within"])
    return {
        "sent": len(run.sent),
        "copies": sum(len(s.rcpt) for s in run.sent),
        "tracked": tracked,
        "delivered": outcomes["delivered"], "corrupt": outcomes["corrupt"],
        "duplicate": outcomes["duplicate"], "lost": outcomes["lost"],
        "corrupt_parts": dict(Counter(d.part or "?" for d in run.deliveries
                                      if d.outcome == "corrupt")),
        "latency_s": {f"p{q}": percentile(latencies, q) for q in (50, 95, 99)}
        | {"max": latencies[-1]} if latencies else None,
        "within_s": within,
        "share_within": round(100.0 * bisect.bisect_right(latencies, within) / tracked, 3)
        if tracked else None,
        "queue_peak": _queue_peaks(run),
        "tracking": _tracking(run),
        "settings": {k: settings[k] for k in _DEFAULTS},
    }


def _queue_peaks(run: RunRecords) -> dict[str, dict[str, int]] | None:
    """Per sampled queue source, the largest count seen of each queue and of their sum."""
    peaks: dict[str, dict[str, int]] = {}
    for q in run.queues:
        peak = peaks.setdefault(q.source, {})
        for name, n in {**q.counts, "total": sum(q.counts.values())}.items():
            peak[name] = max(peak.get(name, 0), n)
    return peaks or None


def _tracking(run: RunRecords) -> dict[str, dict[str, Any]] | None:
    """Per way of finding, the tracker's failures to look: their count, successful looks, the
    first and the latest cause (from its last `tracking` record); None: it never failed."""
    out: dict[str, dict[str, Any]] = {}
    for t in run.trackings:
        first = (out.get(t.via) or {}).get("first_error")
        out[t.via] = {"errors": t.errors, "looked": t.looked,
                      "first_error": first or t.first_error, "last_error": t.last_error}
    return {via: t for via, t in out.items() if t["errors"]} or None


def delivery_checks(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """QoS checks of the summary's `delivery` section (none when untracked or turned off)."""
    d = summary.get("delivery")
    if not d or not d["settings"]["qos"]:
        return []
    s = d["settings"]
    share = d["share_within"] if d["share_within"] is not None else 0.0
    within = f"{d['within_s']:g} s"
    bad = d["lost"] + d["corrupt"]
    return [
        {"name": f"delivery share delivered within {within}", "kind": "delivery",
         "step": "delivery", "threshold": s["qos_percent"], "measured": share,
         "pass": d["tracked"] > 0 and share >= s["qos_percent"], "count": d["tracked"],
         "text": f">= {s['qos_percent']:g}% of copies delivered intact within {within}"},
        {"name": "delivery lost or corrupt", "kind": "delivery", "step": "delivery",
         "threshold": s["max_lost"], "measured": bad, "pass": bad <= s["max_lost"],
         "count": d["tracked"], "lost": d["lost"], "corrupt": d["corrupt"],
         "text": "none lost or corrupt" if s["max_lost"] == 0
         else f"at most {s['max_lost']} lost or corrupt"},
    ]
