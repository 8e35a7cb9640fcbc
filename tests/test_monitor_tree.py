"""Process-tree sampling on real processes the test starts (and kills, by pid)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from loadtests.monitor import Sampler
from loadtests.monitor.procfs import read_stat
from loadtests.monitor.tree import PidMetrics, ProcessScanner, ProcessTable, tree_stats
from loadtests.targets import ProcessRef

# A parent that names itself, optionally listens, forks N children holding K files each, starts
# one extra thread, prints "PORT CHILD..." when all are ready and waits for stdin to close.
TREE_SCRIPT = r"""
import ctypes, os, socket, sys, threading, time
n, k, name, listen = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
if name != "-":
    ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)   # PR_SET_NAME: our comm
port = 0
if listen:
    srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(8)
    port = srv.getsockname()[1]
r, w = os.pipe()
kids = []
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        os.close(r)
        files = [open(os.devnull) for _ in range(k)]
        os.write(w, b"x"); os.close(w)
        time.sleep(300); os._exit(0)
    kids.append(pid)
os.close(w)
got = 0
while got < n:
    got += len(os.read(r, n))
threading.Thread(target=time.sleep, args=(300,), daemon=True).start()
print(port, *kids, flush=True)
sys.stdin.read()
"""


@dataclass
class Tree:
    proc: subprocess.Popen[str]
    port: int
    children: list[int]

    @property
    def pid(self) -> int:
        return self.proc.pid


@contextlib.contextmanager
def process_tree(n: int = 3, k: int = 5, name: str = "-", listen: bool = False) -> Iterator[Tree]:
    """Start the tree; on exit kill the children and the parent by pid."""
    proc = subprocess.Popen([sys.executable, "-c", TREE_SCRIPT, str(n), str(k), name,
                             "1" if listen else "0"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    tree = None
    try:
        assert proc.stdout is not None
        port, *kids = (int(x) for x in proc.stdout.readline().split())
        tree = Tree(proc, port, kids)
        yield tree
    finally:
        for pid in tree.children if tree else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.kill()
        proc.wait(timeout=10)


def wait_for(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_tree_counts_processes_fds_threads_memory() -> None:
    n, k = 4, 6
    with process_tree(n, k) as tree:
        sampler = Sampler({"tree": [ProcessRef(pid=tree.pid)]}, pss_every=1)
        first = sampler.sample()
        s = sampler.sample()["targets"]["tree"]
        assert s["alive"] is True
        assert s["processes"] == n + 1
        assert s["zombies"] == 0
        assert s["open_fds"] >= n * k
        assert s["threads"] >= n + 2  # the parent runs a second thread
        assert s["rss_bytes"] > 0 and s["pss_bytes"] > 0
        assert s["pss_bytes"] < s["rss_bytes"]  # forked children share pages
        assert s["fd_limit"] and s["fd_limit_hard"] and s["fd_limit"] <= s["fd_limit_hard"]
        assert 0 < s["fd_max_ratio"] < 1 and s["fd_max_ratio_pid"] in [tree.pid, *tree.children]
        assert s["cpu_seconds"] >= 0 and s["cpu_percent"] is not None
        assert first["targets"]["tree"]["cpu_percent"] is None
        assert s["roots"] == [{"ref": f"pid={tree.pid}", "pid": tree.pid, "error": None,
                               "fd_limit": s["fd_limit"], "fd_limit_hard": s["fd_limit_hard"]}]


def test_zombie_child_and_dead_root() -> None:
    with process_tree(3, 1) as tree:
        victim = tree.children[0]
        os.kill(victim, signal.SIGKILL)  # the parent never reaps it: it stays a zombie
        wait_for(lambda: (st := read_stat(victim)) is not None and st.zombie)
        sampler = Sampler({"tree": [ProcessRef(pid=tree.pid)], "victim": [ProcessRef(pid=victim)]})
        s = sampler.sample()["targets"]
        assert (s["tree"]["processes"], s["tree"]["zombies"]) == (3, 1)
        assert s["victim"]["alive"] is False and "zombie" in s["victim"]["roots"][0]["error"]
        assert s["victim"]["cpu_percent"] is None


def test_process_vanishing_mid_sample() -> None:
    proc = subprocess.Popen(["sleep", "60"])
    try:
        table = ProcessTable()  # snapshot while it runs
        assert proc.pid in table.procs
    finally:
        proc.kill()
        proc.wait()
    stats = tree_stats(table, PidMetrics(), [proc.pid])  # its /proc entries are gone now
    assert stats["processes"] == 0 and stats["open_fds"] == 0
    gone = Sampler({"gone": [ProcessRef(pid=proc.pid)]}).sample()["targets"]["gone"]
    assert gone["alive"] is False and "not running" in gone["roots"][0]["error"]


def test_pid_file_follows_a_restart(tmp_path: Path) -> None:
    pid_file = tmp_path / "server.pid"
    sampler = Sampler({"srv": [ProcessRef(pid_file=pid_file)]})
    missing = sampler.sample()["targets"]["srv"]
    assert missing["alive"] is False and "cannot read pid file" in missing["roots"][0]["error"]
    with process_tree(1, 1) as first:
        pid_file.write_text(f"{first.pid}\n")
        sampler.sample()
        s = sampler.sample()["targets"]["srv"]
        assert s["roots"][0]["pid"] == first.pid and s["processes"] == 2
        assert s["cpu_percent"] is not None
    with process_tree(2, 1) as second:
        pid_file.write_text(f"{second.pid}\n")
        s = sampler.sample()["targets"]["srv"]
        assert s["roots"][0]["pid"] == second.pid and s["processes"] == 3
        assert s["cpu_percent"] is None  # a new root: no CPU rate across the restart


def test_listen_port_and_process_name_resolve_to_the_parent() -> None:
    name = f"msw-t{os.getpid() % 100000}"
    with process_tree(2, 1, name=name, listen=True) as tree:
        # the children inherited both the listening socket and the name: oldest wins
        sampler = Sampler({"by_port": [ProcessRef(listen_port=tree.port)],
                           "by_name": [ProcessRef(process_name=name)]}, [tree.port])
        s = sampler.sample()
        for key in ("by_port", "by_name"):
            assert s["targets"][key]["roots"][0]["pid"] == tree.pid, key
            assert s["targets"][key]["processes"] == 3
        assert s["system"]["tcp"]["ports"][str(tree.port)]["local"] == {"LISTEN": 1}
        again = sampler.sample()  # the port owner is cached while it lives
        assert again["targets"]["by_port"]["roots"][0]["pid"] == tree.pid
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    s = Sampler({"none": [ProcessRef(listen_port=port)],
                 "nobody": [ProcessRef(process_name="no-such-proc-x")]}).sample()["targets"]
    assert "nothing listens" in s["none"]["roots"][0]["error"]
    assert "no process named" in s["nobody"]["roots"][0]["error"]


def test_several_refs_are_summed_once_and_kept_apart() -> None:
    with process_tree(2, 1) as a, process_tree(1, 1) as b:
        s = Sampler({"pair": [ProcessRef(pid=a.pid), ProcessRef(pid=b.pid),
                              ProcessRef(pid=a.children[0])]}).sample()["targets"]["pair"]
        assert s["processes"] == 3 + 2  # a's child is inside a's tree: counted once
        assert [r.get("processes") for r in s["roots"]] == [3, 2, 1]


def test_generator_section_and_cost() -> None:
    s = Sampler().sample()
    gen = s["generator"]
    assert gen["pid"] == os.getpid() and gen["processes"] >= 1 and gen["open_fds"] > 0
    assert gen["fd_limit"] is None or gen["fd_limit"] > 0
    assert gen["ephemeral_ports"]["range_size"] > 0
    assert s["cost"]["wall_ms"] >= 0 and s["targets"] == {}
    assert s["system"]["memory"]["available_bytes"] > 0
    assert Sampler(generator=False).sample()["generator"] is None


@pytest.mark.parametrize("every", [0, 3])
def test_pss_can_be_off_or_refreshed_every_nth_sample(every: int) -> None:
    with process_tree(2, 1) as tree:
        sampler = Sampler({"t": [ProcessRef(pid=tree.pid)]}, pss_every=every, generator=False)
        values = [sampler.sample()["targets"]["t"]["pss_bytes"] for _ in range(4)]
        if every == 0:
            assert values == [None] * 4 and sampler.metrics.pss_reads == 0
        else:
            assert all(v and v > 0 for v in values)
            assert sampler.metrics.pss_reads < 4 * 3  # 3 processes, not read every time


def test_scanner_rereads_only_the_trees_and_new_pids() -> None:
    with process_tree(2, 1) as tree:
        scanner = ProcessScanner(rescan_every=1000)
        first = scanner.table()  # a full scan
        assert first.fresh is not None and set(first.procs) == first.fresh
        walked = set(first.tree(tree.pid))
        assert walked == {tree.pid, *tree.children}
        second = scanner.table()
        assert second.fresh is not None
        new = set(second.procs) - set(first.procs)
        assert second.fresh <= walked | new  # nobody else was read again
        outside = set(second.procs) - walked - new
        assert outside and not outside & second.fresh  # pid 1, pytest's parents...: cached
        assert set(second.tree(tree.pid)) == walked
        whole = ProcessScanner(rescan_every=1)
        whole.table()
        again = whole.table()
        assert again.fresh == set(again.procs)


def test_a_cached_process_is_read_again_once_it_joins_a_tree(tmp_path: Path) -> None:
    pid_file = tmp_path / "late.pid"
    with process_tree(2, 1) as tree:
        sampler = Sampler({"late": [ProcessRef(pid_file=pid_file)]}, rescan_every=1000,
                          generator=False)  # (the generator's tree would hold it)
        sampler.sample()
        sampler.sample()  # the tree is outside every monitored tree: its stats are cached
        os.kill(tree.children[0], signal.SIGKILL)  # a zombie now; the cache says sleeping
        wait_for(lambda: (st := read_stat(tree.children[0])) is not None and st.zombie)
        pid_file.write_text(f"{tree.pid}\n")
        s = sampler.sample()["targets"]["late"]
        assert s["roots"][0]["pid"] == tree.pid
        assert (s["processes"], s["zombies"]) == (2, 1)


def test_children_forked_between_samples_are_found() -> None:
    parent = subprocess.Popen([sys.executable, "-c", "import subprocess, sys\n"
                               "sys.stdin.readline()\n"
                               "kids = [subprocess.Popen(['sleep', '60']) for _ in range(3)]\n"
                               "print(*[k.pid for k in kids], flush=True)\n"
                               "sys.stdin.read()\n"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    kids: list[int] = []
    try:
        assert parent.stdin is not None and parent.stdout is not None
        sampler = Sampler({"p": [ProcessRef(pid=parent.pid)]}, rescan_every=1000)
        assert sampler.sample()["targets"]["p"]["processes"] == 1
        parent.stdin.write("go\n")
        parent.stdin.flush()
        kids = [int(x) for x in parent.stdout.readline().split()]
        assert sampler.sample()["targets"]["p"]["processes"] == 4
        for pid in kids:
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: all((st := read_stat(p)) is None or st.zombie for p in kids))
        s = sampler.sample()["targets"]["p"]
        assert s["processes"] == 1 and s["zombies"] + s["processes"] == 4
    finally:
        for pid in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        parent.kill()
        parent.wait(timeout=10)
