"""Fast readers of /proc files (no psutil): tiny I/O helpers and pure parsers over the text.

Everything here is Linux-only and cheap: one `open`/`read` per file with `os.open`, no
TextIOWrapper. Readers return None when the process or file went away (or is not ours to read),
so callers can sample trees whose members vanish mid-sample.
"""

from __future__ import annotations

import os
import re
import resource
from typing import NamedTuple

__all__ = [
    "CLK_TCK",
    "PAGE_SIZE",
    "ProcStat",
    "count_fds",
    "parse_limit",
    "parse_meminfo",
    "parse_netstat",
    "parse_pss",
    "parse_stat",
    "read_bytes",
    "read_nofile_limit",
    "read_pss",
    "read_stat",
    "read_sysctl",
    "scan_processes",
]

PROC = "/proc"
CLK_TCK: int = os.sysconf("SC_CLK_TCK")
PAGE_SIZE: int = os.sysconf("SC_PAGE_SIZE")
_GONE = (FileNotFoundError, ProcessLookupError, PermissionError)


def read_bytes(path: str, small: bool = False) -> bytes:
    """The whole file (proc files report size 0, so read until EOF). `small`: one read, for
    files that fit in 4 KiB (like /proc/PID/stat); seq files such as /proc/net/tcp return
    short reads before EOF. Raises OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if small:
            return os.read(fd, 4096)
        chunks = []
        while chunk := os.read(fd, 262144):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class ProcStat(NamedTuple):
    """The fields of /proc/PID/stat we use; times in clock ticks, rss in pages."""

    pid: int
    comm: str
    state: str
    ppid: int
    utime: int
    stime: int
    cutime: int
    cstime: int
    threads: int
    starttime: int
    rss_pages: int

    @property
    def zombie(self) -> bool:
        return self.state in ("Z", "X")

    @property
    def cpu_ticks(self) -> int:
        """Own user+sys time plus that of children it has reaped (so a tree's sum grows)."""
        return self.utime + self.stime + self.cutime + self.cstime


def parse_stat(pid: int, data: bytes) -> ProcStat:
    """Parse /proc/PID/stat; the command name may contain spaces and parentheses."""
    right = data.rindex(b")")
    comm = data[data.index(b"(") + 1 : right].decode(errors="replace")
    f = data[right + 2 :].split(None, 22)  # fields 3..24 (rss); the other ~28 stay unsplit
    return ProcStat(pid, comm, f[0].decode(), int(f[1]), int(f[11]), int(f[12]), int(f[13]),
                    int(f[14]), int(f[17]), int(f[19]), int(f[21]))


def read_stat(pid: int) -> ProcStat | None:
    try:
        return parse_stat(pid, read_bytes(f"{PROC}/{pid}/stat", small=True))
    except _GONE:
        return None


def scan_processes() -> dict[int, ProcStat]:
    """Every process on the host, pid -> stat (one read each; vanished ones are skipped)."""
    procs: dict[int, ProcStat] = {}
    for name in os.listdir(PROC):
        if name.isdigit():
            st = read_stat(int(name))
            if st is not None:
                procs[st.pid] = st
    return procs


def count_fds(pid: int) -> int | None:
    """Open fds of a process: st_size of /proc/PID/fd (Linux >= 6.2), else its entries."""
    path = f"{PROC}/{pid}/fd"
    try:
        size = os.stat(path).st_size
        return size if size > 0 else len(os.listdir(path))
    except _GONE:
        return None


_LIMIT_VALUE = re.compile(r"\s+(\S+)\s+(\S+)")


def parse_limit(text: str, name: str = "Max open files") -> tuple[int | None, int | None]:
    """(soft, hard) of one line of /proc/PID/limits; None means unlimited or not found."""
    for line in text.splitlines():
        if line.startswith(name):
            m = _LIMIT_VALUE.match(line, len(name))
            if m:
                soft, hard = (None if v == "unlimited" else int(v) for v in m.groups())
                return soft, hard
    return None, None


def read_nofile_limit(pid: int) -> tuple[int | None, int | None] | None:
    """(soft, hard) open-files limit of a process, None if it is gone. One prlimit(2) call
    (~1 µs) where we may (same user, or CAP_SYS_RESOURCE), else /proc/PID/limits (~15 µs:
    the kernel prints all 16 limits)."""
    try:
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    except ProcessLookupError:
        return None
    except OSError:  # EPERM (another user's process), or prlimit refused by a sandbox
        pass
    else:
        inf = resource.RLIM_INFINITY
        return (None if soft == inf else soft), (None if hard == inf else hard)
    try:
        return parse_limit(read_bytes(f"{PROC}/{pid}/limits").decode())
    except _GONE:
        return None


_PSS = re.compile(rb"^Pss:\s+(\d+) kB", re.M)


def parse_pss(data: bytes) -> int | None:
    """Pss in bytes from smaps_rollup (or smaps: all Pss lines are summed)."""
    values = _PSS.findall(data)
    return sum(int(v) for v in values) * 1024 if values else None


def read_pss(pid: int) -> int | None:
    """Proportional set size of a process. The kernel walks all its page tables: ~20-200 µs."""
    try:
        # one record of ~20 lines (~700 bytes): one read; "Pss:" is the third line
        return parse_pss(read_bytes(f"{PROC}/{pid}/smaps_rollup", small=True))
    except _GONE:
        return None
    except OSError:  # e.g. EINVAL/ESRCH on a process exiting right now
        return None


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo as bytes per key (`kB` values are multiplied out)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            out[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return out


def parse_netstat(text: str) -> dict[str, dict[str, int]]:
    """/proc/net/netstat (or snmp): header/value line pairs -> {"TcpExt": {"ListenDrops": n}}."""
    out: dict[str, dict[str, int]] = {}
    lines = text.splitlines()
    for head, values in zip(lines[::2], lines[1::2], strict=False):
        names, nums = head.split(), values.split()
        if names and nums and names[0] == nums[0]:
            out[names[0].rstrip(":")] = {k: int(v) for k, v in zip(names[1:], nums[1:],
                                                                    strict=False)}
    return out


def read_sysctl(name: str) -> str | None:
    """`net.core.somaxconn` -> its value as text (whitespace collapsed), None if absent."""
    try:
        return " ".join(read_bytes(f"{PROC}/sys/{name.replace('.', '/')}").decode().split())
    except OSError:
        return None
