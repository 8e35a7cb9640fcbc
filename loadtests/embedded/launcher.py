"""Starting the embedded target as a child process and stopping it again, by its PID only.

Its test CA and server certificate go into the run folder (`<workdir>/tls`); the target it
hands the run names the TLS endpoints with that CA file, so the run verifies them:
`smtp-starttls`, `submission` (STARTTLS + AUTH), `smtps`, `imap-starttls`, `imaps`,
`pop3-starttls`, `pop3s`, `https`, next to the plain `smtp`, `dns`, `pop3`, `imap` and `http`.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from loadtests.clients.tls import TlsMode
from loadtests.embedded.config import EmbeddedSettings
from loadtests.embedded.mailstore import password_for
from loadtests.embedded.stats import TargetStats
from loadtests.targets import PROTOCOLS, Endpoint, ProcessRef, Target, UserPattern

__all__ = ["EmbeddedTarget", "TargetStartError"]


_TLS_ENDPOINTS: dict[str, tuple[str, str, TlsMode]] = {
    "smtp-starttls": ("smtp", "smtp_port", "starttls"),
    "submission": ("smtp", "submission_port", "starttls"),
    "smtps": ("smtp", "smtps_port", "implicit"),
    "imap-starttls": ("imap", "imap_port", "starttls"),
    "imaps": ("imap", "imaps_port", "implicit"),
    "pop3-starttls": ("pop3", "pop3_port", "starttls"),
    "pop3s": ("pop3", "pop3s_port", "implicit"),
    "https": ("http", "https_port", "implicit"),
}
"""The embedded target's TLS endpoints: name -> (protocol, its port in the ready line, mode)."""

_PLAIN = {"imaps": "imap_port", "pop3s": "pop3_port"}
"""Implicit-TLS endpoints' plaintext ports (`plain_port`: sessions a `tls_share` leaves plain)."""


class TargetStartError(RuntimeError):
    """The embedded target did not come up; the message holds what it printed."""


class EmbeddedTarget:
    """`with EmbeddedTarget(settings, workdir) as t: t.target` — a Target pointing at it."""

    def __init__(self, settings: EmbeddedSettings, workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        self.stats_file = workdir / "embedded-target-stats.json"
        self.log_file = workdir / "embedded-target.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}

    def start(self, timeout: float = 15.0) -> Target:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_file.open("ab")
        cmd = [sys.executable, "-m", "loadtests.embedded", "--settings-json",
               self.settings.model_dump_json(), "--stats-file", str(self.stats_file),
               "--tls-dir", str(self.workdir / "tls"), "--die-with-parent"]
        # own session: a Ctrl-C in the terminal reaches the runner, which stops us in order
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log,
                                        start_new_session=True)
        log.close()
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        waiting = select.poll()  # not select(): it fails on a descriptor past 1023
        waiting.register(self.process.stdout, select.POLLIN)
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            if waiting.poll(200):
                chunk = os.read(self.process.stdout.fileno(), 4096)
                if not chunk:
                    break
                line += chunk
            elif self.process.poll() is not None:
                break
        try:
            self.ready = json.loads(line)
        except ValueError:
            self.stop()
            tail = self.log_file.read_text(errors="replace")[-2000:]
            raise TargetStartError(
                f"the embedded target did not start (log {self.log_file}):\n{tail}"
            ) from None
        return self.target

    @property
    def target(self) -> Target:
        host = self.ready["host"]
        watch = [ProcessRef(pid=self.ready["pid"])]  # its own process: measured apart from us
        endpoints: dict[str, Endpoint] = {
            proto: Endpoint(protocol=proto, host=host, port=self.ready[f"{proto}_port"],
                            monitor=watch)
            for proto in PROTOCOLS if f"{proto}_port" in self.ready}
        ca_file = self.ready.get("ca_file")
        if ca_file:
            for name, (proto, port_key, mode) in _TLS_ENDPOINTS.items():
                if port_key in self.ready:
                    endpoints[name] = Endpoint(protocol=proto, host=host,
                                               port=self.ready[port_key], tls=mode,
                                               ca_file=Path(ca_file),
                                               plain_port=self.ready.get(_PLAIN.get(name, "")))
        return Target(name="embedded", domain=self.ready["domain"],
                      users=UserPattern(count=self.ready["users"]),
                      password=SecretStr(password_for("")), endpoints=endpoints)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stats(self) -> TargetStats | None:
        return TargetStats.read(self.stats_file)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM to our child, then SIGKILL after `timeout`; reaps it (no zombie left)."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> EmbeddedTarget:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
