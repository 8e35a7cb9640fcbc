"""Process-tree measurements: one process table per sample, per-pid metrics, tree totals.

`ProcessTable` is one sample's snapshot (every process's stat, parent -> children).
`ProcessScanner` makes one per sample cheaply: it lists /proc, but re-reads /proc/PID/stat only
for processes that were in a monitored tree in the previous sample, pids it has not seen yet, and
everything on a full rescan every Nth sample; the other processes keep their last stat. That is
safe for finding descendants without CONFIG_PROC_CHILDREN: a process outside the trees can only
enter one as a new pid (fork), since a process is reparented only to a subreaper or init that
was already its ancestor. Pid reuse within the rescan period and a cold process's exec (its
comm, for `process_name` refs) are what the full rescan catches. A stat whose text did not
change since the last read (an idle process) is not parsed again. `ProcessTable.tree` re-reads
any cached process it walks into, so trees are always built from this sample's stats.

`PidMetrics` reads per-process files lazily, once per sample, and caches what rarely changes
across samples: the open-files limit and PSS (reading smaps_rollup walks the page tables) are
refreshed for each process every Nth sample, staggered by pid so the cost is spread evenly, and
read at once for a process seen for the first time. `tree_stats` sums a set of trees, counting
each pid once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from loadtests.monitor.procfs import (
    CLK_TCK,
    PAGE_SIZE,
    PROC,
    ProcStat,
    count_fds,
    parse_stat,
    read_bytes,
    read_nofile_limit,
    read_pss,
    scan_processes,
)

__all__ = ["PidMetrics", "ProcessScanner", "ProcessTable", "tree_stats"]

_GONE = (FileNotFoundError, ProcessLookupError, PermissionError)


class ProcessTable:
    """Every process on the host at one moment, and who is whose child.

    Without arguments it reads every process's stat now. Given `procs` from earlier reads, `fresh`
    names the pids read for this sample (None: all of them) and `reread` re-reads one pid; then
    `refresh` and `tree` bring a stale entry up to date on demand. `visited` collects every pid
    returned by `tree` (the scanner's hot set for the next sample)."""

    def __init__(self, procs: Mapping[int, ProcStat] | None = None, *,
                 fresh: set[int] | None = None,
                 reread: Callable[[int], ProcStat | None] | None = None) -> None:
        self.procs: dict[int, ProcStat] = dict(scan_processes() if procs is None else procs)
        self.fresh = fresh if reread is not None else None
        self._reread = reread
        self.visited: set[int] = set()
        self.children: dict[int, list[int]] = {}
        for st in self.procs.values():
            self.children.setdefault(st.ppid, []).append(st.pid)

    def refresh(self, pid: int) -> bool:
        """Re-read `pid` if its stat is from an earlier sample; True if it was (it may have
        moved to another parent or be gone now)."""
        fresh = self.fresh
        if fresh is None or pid in fresh or self._reread is None:
            return False
        fresh.add(pid)
        old = self.procs.get(pid)
        st = self._reread(pid)
        if old is not None and (st is None or st.ppid != old.ppid):
            siblings = self.children.get(old.ppid, [])
            if pid in siblings:
                siblings.remove(pid)
        if st is None:
            self.procs.pop(pid, None)
        else:
            self.procs[pid] = st
            if old is None or st.ppid != old.ppid:
                self.children.setdefault(st.ppid, []).append(pid)
        return True

    def tree(self, root: int) -> list[int]:
        """root and all its descendants (root first); empty if root is gone."""
        fresh = self.fresh
        if fresh is not None and root not in fresh:
            self.refresh(root)
        if root not in self.procs:
            return []
        procs, children = self.procs, self.children
        out, todo = [], [root]
        while todo:
            pid = todo.pop()
            out.append(pid)
            kids = children.get(pid)
            if not kids:
                continue
            if fresh is None or fresh.issuperset(kids):
                todo.extend(kids)
                continue
            for kid in tuple(kids):  # some are cached from earlier samples: check them now
                if self.refresh(kid) and (kid not in procs or procs[kid].ppid != pid):
                    continue
                todo.append(kid)
        self.visited.update(out)
        return out


class ProcessScanner:
    """Makes each sample's `ProcessTable`, reading only what may have changed (module
    docstring); `rescan_every=1` reads every process every time. `reads` counts stat reads."""

    def __init__(self, rescan_every: int = 10) -> None:
        self.rescan_every = max(1, rescan_every)
        self.scans = 0
        self.reads = 0
        self._raw: dict[int, bytes] = {}
        self._stats: dict[int, ProcStat] = {}
        self._last: ProcessTable | None = None

    def read(self, pid: int) -> ProcStat | None:
        """This pid's stat now (parsed again only if its text changed), None if it is gone."""
        try:
            data = read_bytes(f"{PROC}/{pid}/stat", small=True)
        except _GONE:
            self._raw.pop(pid, None)
            self._stats.pop(pid, None)
            return None
        self.reads += 1
        if self._raw.get(pid) != data:
            self._raw[pid] = data
            self._stats[pid] = parse_stat(pid, data)
        return self._stats[pid]

    def table(self) -> ProcessTable:
        """This sample's table: hot, new (and, on a full rescan, all) processes re-read."""
        full = self.scans % self.rescan_every == 0
        self.scans += 1
        hot = self._last.visited if self._last is not None else set()
        stats, read = self._stats, self.read
        procs: dict[int, ProcStat] = {}
        fresh: set[int] = set()
        for name in os.listdir(PROC):
            if not name.isdigit():
                continue
            pid = int(name)
            st = stats.get(pid)
            if full or st is None or pid in hot:
                st = read(pid)
                if st is None:
                    continue
                fresh.add(pid)
            procs[pid] = st
        for pid in [p for p in stats if p not in procs]:  # gone since the last sample
            del stats[pid]
            self._raw.pop(pid, None)
        self._last = ProcessTable(procs, fresh=fresh, reread=read)
        return self._last


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
