"""Processes and sockets seen through /proc: is a pid alive, who is in a process group, who listens.

PID 1 on these machines reaps orphans late, so a killed daemon can linger as a zombie for which
`kill -0` still succeeds; every check here reads the state letter in /proc/PID/stat instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ProcInfo",
    "group_members",
    "listening_ports",
    "port_open",
    "proc_info",
    "read_pid_file",
    "reap",
    "stop_group",
]

_GONE = frozenset("ZXx")  # zombie or dead: the process no longer runs


@dataclass(frozen=True)
class ProcInfo:
    """The fields of /proc/PID/stat this package uses."""

    pid: int
    state: str
    ppid: int
    pgid: int
    start_ticks: int  # since boot; tells a reused pid from the one we started

    @property
    def running(self) -> bool:
        return self.state not in _GONE


def _parse_stat(text: str) -> ProcInfo:
    pid = int(text[: text.index(" ")])
    rest = text[text.rindex(")") + 2 :].split()  # comm may hold spaces and parentheses
    return ProcInfo(pid=pid, state=rest[0], ppid=int(rest[1]), pgid=int(rest[2]),
                    start_ticks=int(rest[19]))


def proc_info(pid: int) -> ProcInfo | None:
    """The process's stat fields, or None when there is no such process."""
    try:
        return _parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError, IndexError):
        return None


def group_members(pgid: int) -> list[ProcInfo]:
    """Every process of the group that still runs (zombies excluded)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            info = proc_info(int(entry.name))
            if info and info.pgid == pgid and info.running:
                found.append(info)
    return found


def read_pid_file(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def reap(pid: int) -> None:
    """Collect the exit status if `pid` is our own child, so it does not stay a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wait_gone(pgid: int, seconds: float, leader: int | None = None) -> bool:
    """Wait until the group (or only its leader) runs no more; reaps our own children."""
    deadline = time.monotonic() + seconds
    while True:
        members = group_members(pgid)
        for member in members:
            reap(member.pid)
        if not [m for m in members if leader is None or m.pid == leader]:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def stop_group(pgid: int, timeout: float = 10.0) -> bool:
    """Stop a process group we started; True when none of it runs any more.

    The leader gets SIGTERM first so it can shut its children down in order; what outlives it
    (Dovecot's logged-in imap processes, perdition's children) gets SIGTERM, then SIGKILL.
    """
    info = proc_info(pgid)
    if info is not None and info.running and info.pgid == pgid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pgid, signal.SIGTERM)
        _wait_gone(pgid, min(timeout, 3.0), leader=pgid)
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if _wait_gone(pgid, 0):
            return True
        _signal_group(pgid, sig)
        if _wait_gone(pgid, wait):
            return True
    return False


def listening_ports(ports: set[int] | None = None) -> set[int]:
    """Local TCP ports in LISTEN state and bound UDP ports (IPv4 and IPv6), optionally filtered."""
    found: set[int] = set()
    for name, listen_state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        try:
            lines = Path(f"/proc/net/{name}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == listen_state:
                found.add(int(fields[1].rsplit(":", 1)[1], 16))
    return found if ports is None else found & ports


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
