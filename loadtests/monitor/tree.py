"""Process-tree measurements: one process table per sample, per-pid metrics, tree totals.

`ProcessTable` is one sample's snapshot (every process's stat, parent -> children). `PidMetrics`
reads per-process files lazily, once per sample, and caches what rarely changes across samples:
the open-files limit and PSS (reading smaps_rollup walks the page tables) are refreshed for each
process every Nth sample, staggered by pid so the cost is spread evenly, and read at once for a
process seen for the first time. `tree_stats` sums a set of trees, counting each pid once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from loadtests.monitor.procfs import (
    CLK_TCK,
    PAGE_SIZE,
    ProcStat,
    count_fds,
    read_nofile_limit,
    read_pss,
    scan_processes,
)

__all__ = ["PidMetrics", "ProcessTable", "tree_stats"]


class ProcessTable:
    """Every process on the host at one moment, and who is whose child."""

    def __init__(self, procs: Mapping[int, ProcStat] | None = None) -> None:
        self.procs: Mapping[int, ProcStat] = scan_processes() if procs is None else procs
        self.children: dict[int, list[int]] = {}
        for st in self.procs.values():
            self.children.setdefault(st.ppid, []).append(st.pid)

    def tree(self, root: int) -> list[int]:
        """root and all its descendants (root first); empty if root is gone."""
        if root not in self.procs:
            return []
        out, todo = [], [root]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo.extend(self.children.get(pid, ()))
        return out


class PidMetrics:
    """Per-process fds, fd limit and PSS; limits/PSS cached for `limits_every`/`pss_every`
    samples (pss_every=0 turns PSS off)."""

    def __init__(self, *, pss_every: int = 10, limits_every: int = 10) -> None:
        self.pss_every = max(0, pss_every)
        self.limits_every = max(1, limits_every)
        self.sample_no = 0
        self._fds: dict[int, int | None] = {}
        self._limits: dict[tuple[int, int], tuple[int | None, int | None] | None] = {}
        self._pss: dict[tuple[int, int], int | None] = {}
        self.pss_reads = 0

    def begin(self, table: ProcessTable) -> None:
        """Start a sample: forget this sample's fd counts and the caches of dead processes."""
        self.sample_no += 1
        self._fds = {}
        alive = {(st.pid, st.starttime) for st in table.procs.values()}
        for cache in (self._limits, self._pss):
            for key in [k for k in cache if k not in alive]:
                del cache[key]

    def _due(self, key: tuple[int, int], cache: Mapping[tuple[int, int], Any], every: int) -> bool:
        return key not in cache or (self.sample_no + key[0]) % every == 0

    def fds(self, pid: int) -> int | None:
        if pid not in self._fds:
            self._fds[pid] = count_fds(pid)
        return self._fds[pid]

    def nofile(self, st: ProcStat) -> tuple[int | None, int | None] | None:
        key = (st.pid, st.starttime)
        if self._due(key, self._limits, self.limits_every):
            self._limits[key] = read_nofile_limit(st.pid)
        return self._limits[key]

    def pss(self, st: ProcStat) -> int | None:
        if not self.pss_every:
            return None
        key = (st.pid, st.starttime)
        if self._due(key, self._pss, self.pss_every):
            self._pss[key] = read_pss(st.pid)
            self.pss_reads += 1
        return self._pss[key]


def tree_stats(table: ProcessTable, metrics: PidMetrics, roots: Iterable[int],
               flat: bool = False) -> dict[str, Any]:
    """Totals over the trees under `roots` (each pid counted once; `flat`: just these pids).
    Zombies are counted apart and hold no fds or memory; a process that vanishes mid-sample
    simply drops out."""
    seen: dict[int, ProcStat] = {}
    for root in roots:
        for pid in [root] if flat else table.tree(root):
            if pid in table.procs:
                seen.setdefault(pid, table.procs[pid])
    processes = zombies = threads = fds = rss = cpu = 0
    pss: int | None = None
    ratio, ratio_pid = 0.0, None
    for st in seen.values():
        cpu += st.cpu_ticks
        if st.zombie:
            zombies += 1
            continue
        n = metrics.fds(st.pid)
        if n is None:  # gone (or not ours to read) since the table was taken
            continue
        processes += 1
        threads += st.threads
        fds += n
        rss += st.rss_pages * PAGE_SIZE
        limit = metrics.nofile(st)
        if limit and limit[0] and n / limit[0] > ratio:
            ratio, ratio_pid = n / limit[0], st.pid
        p = metrics.pss(st)
        if p is not None:
            pss = (pss or 0) + p
    return {
        "processes": processes, "zombies": zombies, "threads": threads, "open_fds": fds,
        "rss_bytes": rss, "pss_bytes": pss, "cpu_seconds": round(cpu / CLK_TCK, 2),
        "fd_max_ratio": round(ratio, 4), "fd_max_ratio_pid": ratio_pid,
    }
