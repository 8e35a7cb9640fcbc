"""A run whose users run in N worker processes, this process being their Locust master.

The workers are started here (`--workers N`: `python -m loadtests.run.worker`, their job on
stdin) or by hand anywhere (`--expect-workers N`: `mailswarm worker --master HOST:PORT`, sent
their job once they join; more than N are turned away). The run starts when all N have joined.
Each worker runs its part of the users (Locust divides them)
and every N-th session of each open-model schedule (the parts add up to the schedule exactly);
its records reach this process's stream through Locust's messaging (one process holds at most
~19,000 sockets here, so large runs need several). A worker that dies or falls silent before
its final report is lost: recorded, its unsent part counted (loadtests.run.workers), and the
run fails.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

from locust.env import Environment
from locust.rpc import Message
from locust.runners import STATE_RUNNING, MasterRunner

from loadtests.profiles import Profile
from loadtests.run.core import RunParts
from loadtests.run.master import MasterLoad, missing_cause, set_worker_timeout
from loadtests.run.messages import (
    FINAL,
    HELLO,
    JOB,
    READY,
    REFUSED,
    REPORT_KEY,
    job_for_worker,
)
from loadtests.run.options import RunError, RunOptions, worker_count
from loadtests.run.workers import WorkerBook, WorkerState
from loadtests.schedule.loadplan import build_load
from loadtests.targets import Target

__all__ = ["MasterDriver", "exit_text", "missing_cause"]  # missing_cause: run/master.py's

CONNECT_TIMEOUT = 60.0  # seconds for every local worker process to connect
JOIN_TIMEOUT = 600.0  # seconds for every worker started by hand to join
# a local worker sees its master die by its parent pid at once; the heartbeat timeout is only
# for a master that hangs, and generous (a busy master answers late)
LOCAL_MASTER_TIMEOUT = 30.0

log = logging.getLogger(__name__)


def exit_text(code: int) -> str:
    """A process's exit status in words."""
    if code < 0:
        try:
            return f"killed by signal {-code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_workers(profile: Profile, target: Target, options: RunOptions, port: int,
                   arrival_seed: str) -> list[subprocess.Popen[bytes]]:
    procs = []
    for index in range(options.workers):
        proc = subprocess.Popen(
            [sys.executable, "-m", "loadtests.run.worker", "--master", f"127.0.0.1:{port}",
             "--job-stdin", "--parent-pid", str(os.getpid()),
             "--master-timeout", str(LOCAL_MASTER_TIMEOUT)],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=(options.out_dir / f"worker{index}.log").open("ab"))
        assert proc.stdin is not None
        proc.stdin.write(json.dumps(job_for_worker(
            profile, target, allow_remote=options.allow_remote, workers=options.workers,
            index=index, arrival_seed=arrival_seed)).encode())
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


class MasterDriver(MasterLoad):
    """Starts the worker processes, sends them their jobs; the load's start and finish, the
    merged reports and the watch over lost workers are MasterLoad's (as in a plugin's master);
    this process's own pacers stay unused (the workers pace)."""

    def __init__(self, parts: RunParts) -> None:
        self.profile, self.target, self.options = parts.profile, parts.target, parts.options
        self.expected = worker_count(self.options)
        host, self.port = self.options.master_bind or ("127.0.0.1", _free_port())
        set_worker_timeout(self.options.worker_timeout)
        runner: MasterRunner = parts.env.create_master_runner(host, self.port)
        # every worker walks the same arrival schedule, taking its own part of it
        self.arrival_seed = (str(self.profile.seed) if self.profile.seed is not None
                             else secrets.token_hex(8))
        super().__init__(runner, WorkerBook(parts.writer, parts.counters), self._schedule)
        parts.events.worker_report.add_listener(
            lambda client_id, data, **_: self.book.take(client_id, data.get(REPORT_KEY)))
        self.runner.register_message(
            FINAL, lambda environment, msg, **_: self.book.take(msg.node_id, msg.data, True))
        self.runner.register_message(HELLO, self._hello)
        self.runner.register_message(READY, self._ready)
        self.offered: dict[str, tuple[int, dict[str, Any]]] = {}  # sent a job: (index, hello)
        self.closed = False  # all workers joined: no one else may (Locust would move users)
        listen = self.runner.handle_message

        def handle_message(client_id: str, msg: Any) -> None:
            if msg.type == "client_ready" and self.closed and client_id not in self.book.workers:
                # acknowledged, but kept off Locust's list; its HELLO is then refused
                self.runner.server.send_to_client(Message("ack", {"index": -1}, client_id))
                return
            listen(client_id, msg)

        self.runner.handle_message = handle_message  # type: ignore[method-assign]
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    def _hello(self, environment: Environment, msg: Any, **_: Any) -> None:
        """A worker connected: one of ours with its job joins; one started by hand is sent a
        job while the run needs workers, else turned away."""
        data, worker_id = msg.data, msg.node_id
        if self.closed:
            self.runner.send_message(REFUSED, {"reason": "the run has started"},
                                     client_id=worker_id)
            self.late(worker_id, data.get("host", ""), data.get("pid", 0),
                      "joined after the run started: turned away, no part of the load")
            return
        if "index" in data and not self.options.expect_workers:
            self._join(worker_id, data["index"], data["of"], data)
            return
        taken = {index for index, _ in self.offered.values()}
        free = [i for i in range(self.expected) if i not in taken]
        if not self.options.expect_workers or not free:
            why = (f"the run has its {self.expected} workers" if self.options.expect_workers
                   else "this run starts its own workers")
            self.runner.send_message(REFUSED, {"reason": why}, client_id=worker_id)
            return
        self.offered[worker_id] = (free[0], data)
        self.runner.send_message(JOB, job_for_worker(
            self.profile, self.target, allow_remote=self.options.allow_remote,
            workers=self.expected, index=free[0], arrival_seed=self.arrival_seed),
            client_id=worker_id)

    def _ready(self, environment: Environment, msg: Any, **_: Any) -> None:
        """A worker started by hand has built its part of the load."""
        offer = self.offered.get(msg.node_id)
        if offer is not None:
            self._join(msg.node_id, msg.data["index"], msg.data["of"], offer[1])

    def _join(self, worker_id: str, index: int, of: int, hello: dict[str, Any]) -> None:
        self.book.join(WorkerState(worker_id, index, of, hello["host"], hello["pid"]))

    # -- losing a worker ------------------------------------------------------------------
    def _schedule(self, worker: WorkerState) -> dict[str, Iterator[float]]:
        """The offsets of `worker`'s part of every open-model schedule."""
        _, pacers = build_load(self.profile, self.target, allow_remote=self.options.allow_remote,
                               part=(worker.index, worker.of), arrival_seed=self.arrival_seed)
        return {name: pacer.offsets() for name, pacer in pacers.items()}

    def why_lost(self, worker: WorkerState) -> str | None:
        proc = self.procs.get(worker.pid)
        code = proc.poll() if proc is not None else None
        if code is not None:
            return f"its process exited ({exit_text(code)})"
        return missing_cause(self.runner, worker.id)

    # -- the driver -----------------------------------------------------------------------
    def connect(self) -> None:
        """Start the local workers (if any) and wait until every worker has joined (and any
        turned away has left Locust's list, which the users are divided over)."""
        options = self.options
        procs = _start_workers(self.profile, self.target, options, self.port, self.arrival_seed)
        self.procs = {proc.pid: proc for proc in procs}
        deadline = time.monotonic() + (CONNECT_TIMEOUT if procs else JOIN_TIMEOUT)
        where = (f"see {options.out_dir}/worker*.log" if procs else
                 f"start them with `mailswarm worker --master HOST:{self.port}`")
        while (len(self.book.workers) < self.expected
               or self.runner.worker_count > len(self.book.workers)):
            exited = [p for p in procs if p.poll() is not None]
            if exited or time.monotonic() > deadline or options.stop.wait(timeout=0.2):
                raise RunError(f"only {len(self.book.workers)} of {self.expected} workers "
                               f"joined; {where}")
        self.closed = True
        self.watch()

    def spawning(self) -> bool:
        return not (self.runner.state == STATE_RUNNING
                    and getattr(self.runner, "spawning_completed", False))

    def close(self) -> None:
        super().close()
        _stop_workers(list(self.procs.values()))
