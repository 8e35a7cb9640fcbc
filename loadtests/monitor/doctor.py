"""`mailswarm doctor`: the host limits the seeds tune, read once and explained in plain words.

`collect_values()` is the thin I/O (rlimits, /proc/sys); `evaluate(values, role, connections)`
is pure: it turns the values into `Check`s saying what each setting allows for a generator or a
target host and what to change; `verdict()` and `render()` summarise. The agent serves
`collect_values()` of its host at /doctor, so a target host is judged by the same code.
"""

from __future__ import annotations

import math
import platform
import resource
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from loadtests.monitor.procfs import read_sysctl

__all__ = ["SYSCTLS", "Check", "collect_values", "ephemeral_capacity", "evaluate", "render",
           "verdict"]

Role = Literal["generator", "target"]
Status = Literal["ok", "warn", "info"]

SYSCTLS = (
    "fs.file-max", "fs.file-nr", "kernel.threads-max", "kernel.pid_max", "vm.max_map_count",
    "net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_syncookies",
    "net.ipv4.ip_local_port_range", "net.ipv4.tcp_max_tw_buckets", "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_tw_reuse",
)
TIME_WAIT_SECONDS = 60  # fixed in the Linux kernel (TCP_TIMEWAIT_LEN); no sysctl changes it
FDS_PER_SESSION = 2  # seed: a socket plus an open mailbox or temp file per connection


@dataclass(frozen=True)
class Check:
    key: str
    value: str
    status: Status
    says: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _limit_pair(soft: int | None, hard: int | None) -> tuple[int | None, int | None]:
    inf = resource.RLIM_INFINITY
    return (None if soft in (None, inf) else soft, None if hard in (None, inf) else hard)


def collect_values(processes: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """This host's values: own rlimits, the sysctls, and optionally monitored processes'
    open-files limits ({name: {"pid", "fd_limit", "fd_limit_hard"}})."""
    return {
        "host": platform.node(), "kernel": platform.release(),
        "nofile": list(_limit_pair(*resource.getrlimit(resource.RLIMIT_NOFILE))),
        "nproc": list(_limit_pair(*resource.getrlimit(resource.RLIMIT_NPROC))),
        "sysctl": {name: read_sysctl(name) for name in SYSCTLS},
        "processes": dict(processes or {}),
    }


def _int(text: str | None, index: int = 0) -> int | None:
    try:
        return int((text or "").split()[index])
    except (IndexError, ValueError):
        return None


def _n(value: int | None) -> str:
    return "unlimited" if value is None else f"{value:,}"


def _nofile(soft: int | None, hard: int | None, role: Role, conns: int, who: str) -> Check:
    value = f"soft {_n(soft)}, hard {_n(hard)}"
    if role == "generator":
        usable = (hard or 1_000_000) - 100
        workers = max(1, math.ceil(conns / min(usable, 19_000)))
        says = (f"{who}: one generator process can hold ~{usable:,} connections once it raises "
                f"its soft limit to the hard one (Locust raises it to 10,000 when allowed); "
                f"{conns:,} connections need at least {workers} worker process(es) (--workers)")
        ok = hard is None or hard >= 10_000
        fix = None if ok else ("raise the hard limit: `ulimit -Hn 65536` as root before starting, "
                               "nofile in /etc/security/limits.conf, or LimitNOFILE= in a unit")
        return Check("open files per process", value, "ok" if ok else "warn", says, fix)
    sessions = (soft // FDS_PER_SESSION) if soft else None
    says = (f"{who}: a server process with this limit holds at most ~{_n(sessions)} sessions "
            f"(~{FDS_PER_SESSION} fds each: socket + mailbox/temp file); near the limit it "
            f"refuses connections")
    ok = soft is None or soft >= FDS_PER_SESSION * conns
    fix = None if ok else (f"start the server with `ulimit -n {FDS_PER_SESSION * conns + 1000}` "
                           f"(up to the hard limit {_n(hard)}) or LimitNOFILE= in its unit")
    return Check("open files per process", value, "ok" if ok else "warn", says, fix)


def ephemeral_capacity(port_range: tuple[int, int] | None, source_addresses: int = 1) -> int | None:
    """Connections one generator can hold to one server port: a connection is unique by (source
    address, source port, server address, server port), so each source address has the whole
    ip_local_port_range to itself."""
    if port_range is None:
        return None
    return (port_range[1] - port_range[0] + 1) * max(1, source_addresses)


def evaluate(values: Mapping[str, Any], role: Role = "generator",
             connections: int = 10_000, source_addresses: int = 1) -> list[Check]:
    """What each value allows for `connections` concurrent connections (pure); a generator
    reaching one server port from `source_addresses` local addresses has the port range once
    per address."""
    s = values.get("sysctl", {})
    n = connections
    need_fds = n if role == "generator" else FDS_PER_SESSION * n
    checks: list[Check] = []
    soft, hard = [*(values.get("nofile") or []), None, None][:2]
    checks.append(_nofile(soft, hard, role, n, "this process's shell"))
    for name, proc in sorted((values.get("processes") or {}).items()):
        if proc.get("fd_limit") is not None or proc.get("fd_limit_hard") is not None:
            c = _nofile(proc.get("fd_limit"), proc.get("fd_limit_hard"), "target", n,
                        f"{name} (pid {proc.get('pid')})")
            checks.append(Check(f"open files of {name}", c.value, c.status, c.says, c.fix))

    file_max, allocated = _int(s.get("fs.file-max")), _int(s.get("fs.file-nr"))
    if file_max is not None:
        free = file_max - (allocated or 0)
        ok = free >= need_fds
        checks.append(Check(
            "fs.file-max", f"{file_max:,} ({_n(allocated)} in use)", "ok" if ok else "warn",
            f"all processes together can open at most {file_max:,} files and sockets "
            f"({free:,} free now; {n:,} connections need ~{need_fds:,})",
            None if ok else f"sysctl -w fs.file-max={max(need_fds * 2, 1_048_576)}"))

    threads_max = _int(s.get("kernel.threads-max"))
    if threads_max is not None:
        ok = role == "generator" or threads_max >= n + 1000
        checks.append(Check(
            "kernel.threads-max", f"{threads_max:,}", "ok" if ok else "warn",
            f"at most {threads_max:,} threads on the host: a thread-per-connection server "
            f"(the seed's model) stops below that, minus what already runs",
            None if ok else f"sysctl -w kernel.threads-max={2 * (n + 1000)}"))

    pid_max = _int(s.get("kernel.pid_max"))
    if pid_max is not None:
        ok = role == "generator" or pid_max >= n + 2000
        checks.append(Check(
            "kernel.pid_max", f"{pid_max:,}", "ok" if ok else "warn",
            f"every process and thread takes a pid: at most ~{pid_max:,} at once, so a "
            f"process-per-connection server (perdition, Dovecot with service_count=1) cannot "
            f"pass ~{max(0, pid_max - 2000):,} connections",
            None if ok else "sysctl -w kernel.pid_max=4194304"))

    nproc = [*(values.get("nproc") or []), None][0]
    if role == "target" or nproc is not None:
        ok = role == "generator" or nproc is None or nproc >= n + 1000
        checks.append(Check(
            "max user processes (ulimit -u)", _n(nproc), "ok" if ok else "warn",
            f"one user can run at most {_n(nproc)} processes and threads together "
            f"(server processes and threads per connection count against it)",
            None if ok else f"ulimit -u {n + 2000} for the server's user (limits.conf nproc)"))

    maps = _int(s.get("vm.max_map_count"))
    if maps is not None:
        ok = role == "generator" or maps // 2 >= n
        checks.append(Check(
            "vm.max_map_count", f"{maps:,}", "ok" if ok else "warn",
            f"a process can map at most {maps:,} memory areas; each thread stack takes two "
            f"(stack + guard page), so one process runs at most ~{maps // 2:,} threads",
            None if ok else f"sysctl -w vm.max_map_count={max(262_144, 4 * n)}"))

    somaxconn = _int(s.get("net.core.somaxconn"))
    if somaxconn is not None:
        ok = somaxconn >= 1024
        checks.append(Check(
            "net.core.somaxconn", f"{somaxconn:,}", "ok" if ok else "warn",
            f"a listening socket's accept queue is capped at {somaxconn:,}: a burst of more "
            f"connects than that before the server accepts overflows (ListenOverflows rises) "
            f"and clients wait for SYN retries or are reset",
            None if ok else "sysctl -w net.core.somaxconn=4096, and raise the server's own "
                            "listen backlog"))

    syn = _int(s.get("net.ipv4.tcp_max_syn_backlog"))
    if syn is not None:
        cookies = _int(s.get("net.ipv4.tcp_syncookies"))
        ok = syn >= 512
        checks.append(Check(
            "net.ipv4.tcp_max_syn_backlog", f"{syn:,}", "ok" if ok else "warn",
            f"at most {syn:,} half-open connections (SYN received, handshake unfinished) are "
            f"remembered per listener; beyond that "
            + ("SYN cookies answer instead" if cookies else "SYNs are dropped (ListenDrops)"),
            None if ok else "sysctl -w net.ipv4.tcp_max_syn_backlog=4096"))

    reuse = _int(s.get("net.ipv4.tcp_tw_reuse"))
    rng = s.get("net.ipv4.ip_local_port_range")
    lo, hi = _int(rng, 0), _int(rng, 1)
    if lo is not None and hi is not None:
        size = hi - lo + 1
        sources = max(1, source_addresses) if role == "generator" else 1
        capacity = ephemeral_capacity((lo, hi), sources) or size
        ok = capacity >= n
        rate = ("" if reuse in (1, 2) else
                f"; without tcp_tw_reuse a closed port stays in TIME_WAIT for "
                f"{TIME_WAIT_SECONDS} s, so at most ~{capacity // TIME_WAIT_SECONDS:,} new "
                f"connections per second to one port can be sustained")
        if role != "generator":
            who = "from this host (e.g. a proxy to its backend) per backend address and port"
        elif sources == 1:
            who = "from one source address"
        else:
            who = f"from {sources} source addresses ({size:,} ports each)"
        need = math.ceil(n / size)
        checks.append(Check(
            "net.ipv4.ip_local_port_range", f"{lo}-{hi}", "ok" if ok else "warn",
            f"at most ~{capacity:,} connections to one target port {who} (each needs its own "
            f"local port){rate}",
            None if ok else "sysctl -w net.ipv4.ip_local_port_range='1024 65535' or use "
                            f"{need} or more source addresses (the endpoint's "
                            "source_addresses: 127.0.0.2, 127.0.0.3, ...)"
                            if role == "generator" else
                            "sysctl -w net.ipv4.ip_local_port_range='1024 65535'"))

    if reuse is not None:
        words = {0: "off: an outgoing connection never takes a port still in TIME_WAIT",
                 1: "on: outgoing connections may reuse ports in TIME_WAIT (TCP timestamps)",
                 2: "loopback only: ports in TIME_WAIT are reused for 127.0.0.1 traffic, not "
                    "toward other hosts"}
        checks.append(Check(
            "net.ipv4.tcp_tw_reuse", str(reuse), "info",
            words.get(reuse, "unknown value"),
            "sysctl -w net.ipv4.tcp_tw_reuse=1 on a generator that opens many short "
            "connections to a remote target" if reuse != 1 and role == "generator" else None))

    buckets = _int(s.get("net.ipv4.tcp_max_tw_buckets"))
    if buckets is not None:
        checks.append(Check(
            "net.ipv4.tcp_max_tw_buckets", f"{buckets:,}", "info",
            f"at most {buckets:,} sockets are kept in TIME_WAIT; beyond that new ones are "
            f"destroyed at once (TCPTimeWaitOverflow counts them; 'time wait bucket table "
            f"overflow' in the kernel log) — harmless for a load test, but TIME_WAIT counts "
            f"then stop growing"))

    fin = _int(s.get("net.ipv4.tcp_fin_timeout"))
    if fin is not None:
        checks.append(Check(
            "net.ipv4.tcp_fin_timeout", f"{fin} s", "info",
            f"an orphaned connection waits {fin} s in FIN_WAIT2; TIME_WAIT itself lasts "
            f"{TIME_WAIT_SECONDS} s on Linux whatever this says"))
    return checks


def verdict(checks: list[Check], role: Role = "generator", connections: int = 10_000) -> str:
    low = [c.key for c in checks if c.status == "warn"]
    if not low:
        return f"verdict: this {role} host is ready for {connections:,} concurrent connections"
    return (f"verdict: {connections:,} concurrent connections on this {role} host would hit "
            f"{len(low)} limit(s): {', '.join(low)}")


def render(checks: list[Check], title: str, role: Role = "generator",
           connections: int = 10_000) -> str:
    marks = {"ok": "ok  ", "warn": "LOW ", "info": "info"}
    lines = [title]
    for c in checks:
        lines.append(f"  {marks[c.status]} {c.key} = {c.value}")
        lines.append(f"       {c.says}")
        if c.fix:
            lines.append(f"       change: {c.fix}")
    lines.append(verdict(checks, role, connections))
    return "\n".join(lines)

