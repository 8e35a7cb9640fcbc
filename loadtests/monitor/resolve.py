"""Find the root pid of a monitored process tree from a ProcessRef.

pid file -> the pid it holds (re-read every time, so a restarted daemon is followed);
pid -> itself; process_name -> the oldest live process of that name; listen_port -> the oldest
process holding a socket that listens on that port (e.g. nginx's master, not a worker).
A zombie is not running: PID 1 here reaps late, and a zombie still answers `kill -0`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from loadtests.monitor.net import listening_inodes
from loadtests.monitor.procfs import PROC, ProcStat, read_bytes
from loadtests.targets import ProcessRef

__all__ = ["Resolution", "Resolver", "describe_ref", "socket_holders"]


@dataclass(frozen=True, slots=True)
class Resolution:
    pid: int | None
    error: str | None = None


def describe_ref(ref: ProcessRef) -> str:
    """`pid_file=/run/x.pid`, `pid=42`, `process_name=nginx` or `listen_port=143`."""
    for key in ("pid_file", "pid", "process_name", "listen_port"):
        value = getattr(ref, key)
        if value:
            return f"{key}={value}"
    return "?"


def _running(pid: int, procs: Mapping[int, ProcStat]) -> Resolution:
    st = procs.get(pid)
    if st is None:
        return Resolution(None, f"process {pid} is not running")
    if st.zombie:
        return Resolution(None, f"process {pid} is a zombie (exited, not yet reaped)")
    return Resolution(pid)


def _matches_name(st: ProcStat, name: str) -> bool:
    if st.comm == name:
        return True
    if len(name) <= 15 or not name.startswith(st.comm):  # comm is cut to 15 characters
        return False
    try:
        argv0 = read_bytes(f"{PROC}/{st.pid}/cmdline").split(b"\0", 1)[0].decode()
    except OSError:
        return False
    return os.path.basename(argv0) == name


def socket_holders(inodes: set[int]) -> list[int]:
    """Pids holding any of these socket inodes (scans every process's fds: use sparingly)."""
    wanted = {f"socket:[{i}]" for i in inodes}
    holders = []
    for name in os.listdir(PROC):
        if not name.isdigit():
            continue
        fd_dir = f"{PROC}/{name}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"{fd_dir}/{fd}") in wanted:
                    holders.append(int(name))
                    break
            except OSError:
                continue
    return holders


class Resolver:
    """Resolves one ProcessRef per call against a fresh process table; remembers the owner of
    a listening port (finding it scans every fd on the host) while that process lives."""

    def __init__(self, ref: ProcessRef) -> None:
        self.ref = ref
        self._port_owner: tuple[int, int] | None = None  # (pid, starttime)

    def resolve(self, procs: Mapping[int, ProcStat]) -> Resolution:
        ref = self.ref
        if ref.pid is not None:
            return _running(ref.pid, procs)
        if ref.pid_file is not None:
            return self._from_pid_file(procs)
        if ref.process_name is not None:
            found = [st for st in procs.values()
                     if not st.zombie and _matches_name(st, ref.process_name)]
            if not found:
                return Resolution(None, f"no process named {ref.process_name!r}")
            return Resolution(min(found, key=lambda s: (s.starttime, s.pid)).pid)
        assert ref.listen_port is not None
        return self._from_port(ref.listen_port, procs)

    def _from_pid_file(self, procs: Mapping[int, ProcStat]) -> Resolution:
        path = self.ref.pid_file
        try:
            text = read_bytes(str(path)).decode(errors="replace").split()
        except OSError as exc:
            return Resolution(None, f"cannot read pid file {path}: {exc.strerror}")
        if not text or not text[0].isdigit():
            return Resolution(None, f"pid file {path} holds no pid")
        return _running(int(text[0]), procs)

    def _from_port(self, port: int, procs: Mapping[int, ProcStat]) -> Resolution:
        if self._port_owner is not None:
            pid, start = self._port_owner
            st = procs.get(pid)
            if st is not None and st.starttime == start and not st.zombie:
                return Resolution(pid)
            self._port_owner = None
        inodes = listening_inodes(port)
        if not inodes:
            return Resolution(None, f"nothing listens on port {port}")
        holders = [procs[p] for p in socket_holders(inodes) if p in procs]
        holders = [st for st in holders if not st.zombie]
        if not holders:
            return Resolution(None, f"no visible process holds the socket listening on {port}")
        owner = min(holders, key=lambda s: (s.starttime, s.pid))
        self._port_owner = (owner.pid, owner.starttime)
        return Resolution(owner.pid)
