"""A run whose users run in N local worker processes, this process being their Locust master.

Each worker (`python -m loadtests.run.worker`) runs 1/N of the users and of every arrival rate;
its records reach this process's stream through Locust's messaging (one process holds at most
~19,000 sockets here, so large runs need several).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections import defaultdict
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import STATE_RUNNING, MasterRunner

from loadtests.profiles import Profile
from loadtests.run.core import Counters, RunParts
from loadtests.run.messages import FINAL, FINISH, REPORT_KEY, START, job_for_worker
from loadtests.run.options import RunError, RunOptions
from loadtests.stream import Req, StreamWriter, decode
from loadtests.targets import Target

__all__ = ["MasterDriver", "WorkerFeed"]

CONNECT_TIMEOUT = 60.0  # seconds for every worker process to connect
FINAL_GRACE = 10.0  # seconds beyond the drain for every worker's final report


class WorkerFeed:
    """Master side: records and counters arriving from the worker processes."""

    def __init__(self, writer: StreamWriter, counters: Counters) -> None:
        self.writer = writer
        self.counters = counters
        self.pacers: dict[str, dict[str, dict[str, int]]] = {}
        self.sessions_by_worker: dict[str, dict[str, dict[str, int]]] = {}
        self.finished: set[str] = set()
        self._peaks: dict[str, int] = defaultdict(int)

    def _take(self, worker: str, data: dict[str, Any] | None) -> None:
        if not data:
            return
        for shipped in data["records"]:
            shipped["worker"] = worker
            record = decode(shipped)
            if record is None:
                continue
            self.writer.write(record)
            if type(record) is Req:
                self.counters.count(record.name, record.ok, record.ms, record.err, record.code)
        self.pacers[worker] = data["pacers"]
        self.sessions_by_worker[worker] = data["sessions"]

    def on_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        self._take(client_id, data.get(REPORT_KEY))

    def on_final(self, environment: Environment, msg: Any, **_: Any) -> None:
        self._take(msg.node_id, msg.data)
        self.finished.add(msg.node_id)

    def pacer_snapshots(self) -> dict[str, dict[str, int]]:
        total: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for per_worker in self.pacers.values():
            for name, counts in per_worker.items():
                for key, value in counts.items():
                    total[name][key] += value  # in_flight_max: sum of the workers' maxima
        return {name: dict(c) for name, c in total.items()}

    def sessions(self) -> dict[str, dict[str, int]]:
        total: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for per_worker in self.sessions_by_worker.values():
            for proto, counts in per_worker.items():
                for key in ("open", "opened", "dropped"):
                    total[proto][key] += counts[key]
        for proto, counts in total.items():  # peak of the sum, as sampled each second
            self._peaks[proto] = max(self._peaks[proto], counts["open"])
            counts["peak"] = self._peaks[proto]
        return {proto: dict(c) for proto, c in total.items()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_workers(profile: Profile, target: Target, options: RunOptions,
                   port: int) -> list[subprocess.Popen[bytes]]:
    procs = []
    for index in range(options.workers):
        proc = subprocess.Popen(
            [sys.executable, "-m", "loadtests.run.worker", "--master-port", str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=(options.out_dir / f"worker{index}.log").open("ab"))
        assert proc.stdin is not None
        proc.stdin.write(job_for_worker(profile, target, allow_remote=options.allow_remote,
                                        workers=options.workers, index=index).encode())
        proc.stdin.close()
        procs.append(proc)
    return procs


def _stop_workers(procs: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class MasterDriver:
    """Starts the worker processes, sends them the load's start and finish, and merges their
    reports; this process's own pacers stay unused (the workers pace)."""

    def __init__(self, parts: RunParts) -> None:
        self.profile, self.target, self.options = parts.profile, parts.target, parts.options
        self.port = _free_port()
        self.runner: MasterRunner = parts.env.create_master_runner("127.0.0.1", self.port)
        self.feed = WorkerFeed(parts.writer, parts.counters)
        parts.events.worker_report.add_listener(self.feed.on_report)
        self.runner.register_message(FINAL, self.feed.on_final)
        self.procs: list[subprocess.Popen[bytes]] = []

    def pacer_snapshots(self) -> dict[str, dict[str, int]]:
        return self.feed.pacer_snapshots()

    def sessions(self) -> dict[str, dict[str, int]]:
        return self.feed.sessions()

    def connect(self) -> None:
        options = self.options
        self.procs = _start_workers(self.profile, self.target, options, self.port)
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while self.runner.worker_count < options.workers:
            if time.monotonic() > deadline or options.stop.wait(timeout=0.2):
                raise RunError(f"only {self.runner.worker_count} of {options.workers} worker "
                               f"processes connected; see {options.out_dir}/worker*.log")

    def spawning(self) -> bool:
        return not (self.runner.state == STATE_RUNNING
                    and getattr(self.runner, "spawning_completed", False))

    def start_load(self, duration: float) -> None:
        self.runner.send_message(START, {"duration": duration})

    def stop_arrivals(self) -> None:
        pass  # each worker stops its own on FINISH

    def drain(self, seconds: float) -> None:
        """Each worker drains its sessions, then sends its final report; wait for them all."""
        self.runner.send_message(FINISH, {"drain": seconds})
        wait_until = time.monotonic() + seconds + FINAL_GRACE
        # a worker that died (no heartbeat) is no longer counted: don't wait for it
        while (len(self.feed.finished) < min(self.options.workers, self.runner.worker_count)
               and time.monotonic() < wait_until):
            gevent.sleep(0.1)

    def after_stop(self) -> None:
        pass

    def close(self) -> None:
        _stop_workers(self.procs)
