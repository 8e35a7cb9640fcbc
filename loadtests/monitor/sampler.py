"""`Sampler`: one synchronous, thread-safe `sample()` of named target trees, the host's TCP and
memory state, and the generator process itself, as a plain JSON-able dict.

Call it from a native thread (psutil-free /proc reads block); it imports neither gevent nor
locust. A sample looks like::

    {"ts": 1718000000.12,
     "cost": {"wall_ms": 3.1, "cpu_ms": 2.9},
     "targets": {"imap": {"alive": true, "processes": 12, "zombies": 0, "threads": 12,
                          "open_fds": 140, "fd_limit": 65536, "fd_limit_hard": 65536,
                          "fd_max_ratio": 0.002, "fd_max_ratio_pid": 4242,
                          "rss_bytes": 51200000, "pss_bytes": 20100000,
                          "cpu_seconds": 1.52, "cpu_percent": 3.0,
                          "roots": [{"ref": "pid_file=/run/dovecot.pid", "pid": 4242,
                                     "error": null}]}},
     "system": {"tcp": {"states": {...}, "local": {"ESTABLISHED": 10}, "remote": {...},
                        "ports": {"10143": {"local": {...}, "remote": {...},
                                            "listen_queue": 0}}},
                "listen": {"ListenOverflows": 0, "ListenDrops": 0, "TCPTimeWaitOverflow": 0},
                "memory": {"total_bytes": ..., "available_bytes": ...},
                "file_handles": {"allocated": 1024, "max": 9223372036854775807}},
     "generator": {"pid": 100, "processes": 1, ..., "fd_limit": 20000, "cpu_percent": 45.0,
                   "ephemeral_ports": {"in_use": 50, "max_per_destination": 50,
                                       "range": [32768, 60999], "range_size": 28232,
                                       "source_addresses": 1, "capacity_per_destination": 28232}}}

`cpu_percent` is per cent of one core since the previous sample (None on the first one or
after the root pid changed). With several refs under one name, each entry of `roots` also
carries that root tree's own totals (e.g. nginx and Dovecot apart).

Cost (the `cost` field): a 2,000-process tree takes ~70 ms of one core per sample (PSS every
10th); see bench/monitor_overhead. The process table re-reads only the monitored trees'
processes and new pids each sample, and the whole of /proc every `rescan_every` samples
(`tree.ProcessScanner`); TCP states come from netlink sock_diag, with /proc/net/tcp as the
fallback (`net.count_tcp`).
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from loadtests.clients.source import most_per_destination
from loadtests.monitor.doctor import ephemeral_capacity
from loadtests.monitor.groups import monitor_groups, target_ports
from loadtests.monitor.net import count_tcp, local_port_range, read_listen_counters
from loadtests.monitor.procfs import parse_meminfo, read_bytes, read_sysctl
from loadtests.monitor.resolve import Resolver, describe_ref
from loadtests.monitor.tree import PidMetrics, ProcessScanner, ProcessTable, tree_stats
from loadtests.targets import ProcessRef, Target

__all__ = ["Sampler"]


def _native_lock() -> Any:
    """A real OS lock even when gevent has patched threading (the runner samples from a native
    thread while greenlets may also call in)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None:
        return monkey.get_original("_thread", "allocate_lock")()
    return threading.Lock()


class Sampler:
    """Samples `targets` (name -> process refs), TCP sockets on `ports` and, unless
    `generator=False`, this process's own tree. See the module docstring for the layout.
    `system.tcp.states` counts the sockets on `ports` by state, or with `host_states` every
    socket of the host (a dump of them all: ~1 µs a socket each sample).
    PSS and fd limits are refreshed every `pss_every`/`limits_every` samples per process
    (`tree.PidMetrics`), processes outside the trees every `rescan_every` samples."""

    def __init__(self, targets: Mapping[str, Sequence[ProcessRef]] | None = None,
                 ports: Iterable[int] = (), *, generator: bool = True, pss_every: int = 10,
                 limits_every: int = 10, rescan_every: int = 10,
                 host_states: bool = False) -> None:
        self.targets = {name: [Resolver(r) for r in refs] for name, refs in (targets or {}).items()}
        self.ports = sorted(set(ports))
        self.generator = generator
        self.host_states = host_states
        self.metrics = PidMetrics(pss_every=pss_every, limits_every=limits_every)
        self.scanner = ProcessScanner(rescan_every)
        self._lock = _native_lock()
        self._cpu_prev: dict[str, tuple[float, float, tuple[int, ...]]] = {}

    @classmethod
    def from_target(cls, target: Target, **kwargs: Any) -> Sampler:
        return cls(monitor_groups(target), target_ports(target), **kwargs)

    def sample(self) -> dict[str, Any]:
        with self._lock:
            wall0, cpu0 = time.perf_counter(), time.thread_time()
            out = self._sample()
            out["cost"] = {"wall_ms": round((time.perf_counter() - wall0) * 1000, 2),
                           "cpu_ms": round((time.thread_time() - cpu0) * 1000, 2)}
            return out

    # -- parts ---------------------------------------------------------------------------------

    def _sample(self) -> dict[str, Any]:
        ts = time.time()
        mono = time.monotonic()
        table = self.scanner.table()
        self.metrics.begin(table)
        targets = {name: self._target(name, resolvers, table, mono)
                   for name, resolvers in self.targets.items()}
        eph = local_port_range()
        tcp = count_tcp(self.ports, eph, host_states=self.host_states)
        out: dict[str, Any] = {"ts": round(ts, 3), "targets": targets,
                               "system": self._system(tcp.as_dict()), "generator": None}
        if self.generator:
            # the generator's own tree, without monitored targets it started (embedded target)
            monitored = {p for t in targets.values() for r in t["roots"] if r["pid"]
                         for p in table.tree(r["pid"])}
            own = [p for p in table.tree(os.getpid()) if p not in monitored]
            gen = self._tree("generator", own, table, mono, flat=True)
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            gen.update(pid=os.getpid(), fd_limit=_finite(soft), fd_limit_hard=_finite(hard),
                       ephemeral_ports={
                           "in_use": tcp.ephemeral_in_use,
                           "max_per_destination": tcp.ephemeral_max_per_destination,
                           "range": list(eph) if eph else None,
                           "range_size": eph[1] - eph[0] + 1 if eph else None,
                           "source_addresses": most_per_destination(),
                           "capacity_per_destination": ephemeral_capacity(
                               eph, most_per_destination())})
            out["generator"] = gen
        return out

    def _tree(self, key: str, pids: list[int], table: ProcessTable, mono: float,
              flat: bool = False) -> dict[str, Any]:
        stats = tree_stats(table, self.metrics, pids, flat=flat)
        ident = tuple(pids[:1]) if flat else tuple(pids)  # the roots: a new one resets CPU%
        prev = self._cpu_prev.get(key)
        stats["cpu_percent"] = None
        if pids and prev is not None and prev[2] == ident and mono > prev[0]:
            used = stats["cpu_seconds"] - prev[1]
            stats["cpu_percent"] = round(max(0.0, used) / (mono - prev[0]) * 100, 1)
        self._cpu_prev[key] = (mono, stats["cpu_seconds"], ident)
        return stats

    def _target(self, name: str, resolvers: list[Resolver], table: ProcessTable,
                mono: float) -> dict[str, Any]:
        roots = []
        for resolver in resolvers:
            res = resolver.resolve(table.procs)
            while res.pid is not None and table.refresh(res.pid):  # was cached: decide anew
                res = resolver.resolve(table.procs)
            entry: dict[str, Any] = {"ref": describe_ref(resolver.ref), "pid": res.pid,
                                     "error": res.error}
            if res.pid is not None:
                limit = self.metrics.nofile(table.procs[res.pid]) or (None, None)
                entry.update(fd_limit=limit[0], fd_limit_hard=limit[1])
                if len(resolvers) > 1:
                    entry.update(tree_stats(table, self.metrics, [res.pid]))
            roots.append(entry)
        pids = [r["pid"] for r in roots if r["pid"] is not None]
        first = next((r for r in roots if r["pid"] is not None), {})
        stats = self._tree(f"target:{name}", pids, table, mono)
        stats.update(alive=bool(pids), fd_limit=first.get("fd_limit"),
                     fd_limit_hard=first.get("fd_limit_hard"), roots=roots)
        return stats

    def _system(self, tcp: dict[str, Any]) -> dict[str, Any]:
        try:
            mem = parse_meminfo(read_bytes("/proc/meminfo").decode())
        except OSError:
            mem = {}
        nr = (read_sysctl("fs.file-nr") or "").split()
        return {
            "tcp": tcp,
            "listen": read_listen_counters(),
            "memory": {"total_bytes": mem.get("MemTotal"),
                       "available_bytes": mem.get("MemAvailable")},
            "file_handles": {"allocated": int(nr[0]) if nr else None,
                             "max": int(nr[2]) if len(nr) > 2 else None},
        }


def _finite(value: int) -> int | None:
    return None if value == resource.RLIM_INFINITY else value
