"""Bringing services up and down, and telling their state, from records in the run folder.

For every daemon it starts, the stack writes `pids/NAME.pid` (the pid, for monitors) and
`pids/NAME.owner` (pid, process group and start time). Only a process whose start time still
matches its record counts as ours, so `down` never signals a process it did not start, even
after pid reuse; it stops the whole process group because Dovecot's logged-in imap processes,
perdition's children and Postfix's daemons outlive a SIGTERM to their master.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from loadtests.stack import packages
from loadtests.stack.procs import (
    ProcInfo,
    group_members,
    listening_ports,
    port_open,
    proc_info,
    read_pid_file,
    reap,
    stop_group,
)
from loadtests.stack.services import Daemon, Service, resolve
from loadtests.stack.settings import DovecotLimits, StackConfig
from loadtests.stack.targetfile import render_target
from loadtests.stack.tls import ensure_pki

__all__ = [
    "ServiceState",
    "StackError",
    "down",
    "install",
    "render",
    "status",
    "up",
]


class StackError(RuntimeError):
    """A service did not come up (or a port is taken); names the service and its log."""

    def __init__(self, service: str, message: str, log: Path | None = None) -> None:
        self.service = service
        self.log = log
        super().__init__(f"{service}: {message}")


@dataclass
class ServiceState:
    """What `up`, `down` and `status` report per service."""

    name: str
    running: bool
    ports: dict[str, int]
    pids: dict[str, int | None] = field(default_factory=dict)
    listening: list[int] = field(default_factory=list)
    log: Path | None = None
    action: str = ""  # started, restarted, already running, stopped, not running

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "running": self.running, "ports": self.ports,
                "pids": self.pids, "listening": self.listening,
                "log": str(self.log) if self.log else None, "action": self.action}


@contextlib.contextmanager
def _locked(cfg: StackConfig) -> Iterator[None]:
    """One up/down at a time per run folder (two callers would race on the same records), and
    none while another process holds the stack with session.exclusive()."""
    from loadtests.stack.session import wait_while_held_elsewhere

    wait_while_held_elsewhere(cfg)
    cfg.run_dir.mkdir(parents=True, exist_ok=True)
    with open(cfg.run_dir / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _config(run_dir: str | Path | None, limits: DovecotLimits | None,
            config: StackConfig | None) -> StackConfig:
    if config is not None:
        return config if limits is None else replace(config, limits=limits)
    kwargs: dict[str, object] = {"limits": limits or DovecotLimits()}
    if run_dir is not None:
        kwargs["run_dir"] = Path(run_dir)
    return StackConfig(**kwargs)  # type: ignore[arg-type]


# --- records -------------------------------------------------------------------------------

def _owner_file(cfg: StackConfig, daemon: str) -> Path:
    return cfg.pid_dir / f"{daemon}.owner"


def _record(cfg: StackConfig, daemon: str, info: ProcInfo) -> None:
    cfg.pid_dir.mkdir(parents=True, exist_ok=True)
    _owner_file(cfg, daemon).write_text(f"{info.pid} {info.pgid} {info.start_ticks}\n")
    cfg.pid_file(daemon).write_text(f"{info.pid}\n")


def _read_record(cfg: StackConfig, daemon: str) -> tuple[int, int, int] | None:
    try:
        pid, pgid, start = (int(x) for x in _owner_file(cfg, daemon).read_text().split()[:3])
    except (OSError, ValueError):
        return None
    return pid, pgid, start


def _owned(cfg: StackConfig, daemon: str) -> ProcInfo | None:
    """The daemon's master process if it runs and is the very process we started."""
    record = _read_record(cfg, daemon)
    if record is None:
        return None
    info = proc_info(record[0])
    if info and info.running and info.start_ticks == record[2]:
        return info
    return None


def _forget(cfg: StackConfig, daemon: str) -> None:
    _owner_file(cfg, daemon).unlink(missing_ok=True)
    cfg.pid_file(daemon).unlink(missing_ok=True)


# --- files ---------------------------------------------------------------------------------

def _write_files(service: Service, cfg: StackConfig) -> bool:
    """Write the service's configs; True when any file changed."""
    changed = False
    for rel, text in service.files(cfg).items():
        path = cfg.run_dir / rel
        try:
            if path.read_text() == text:
                continue
        except OSError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        changed = True
    return changed


def _base_dirs(cfg: StackConfig) -> None:
    """The run folder with its logs, pid records and test PKI, and target.yaml describing it."""
    for path in (cfg.run_dir, cfg.log_dir, cfg.pid_dir):
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o755)
    ensure_pki(cfg)  # before any service renders or reads its certificate
    (cfg.run_dir / "target.yaml").write_text(render_target(cfg))


def render(services: list[str] | None = None, *, run_dir: str | Path | None = None,
           dovecot_limits: DovecotLimits | None = None,
           config: StackConfig | None = None) -> list[Path]:
    """Write the configs of the services into the run folder without starting anything."""
    cfg = _config(run_dir, dovecot_limits, config)
    _base_dirs(cfg)
    written = []
    for service in resolve(services):
        _write_files(service, cfg)
        written += [cfg.run_dir / rel for rel in service.files(cfg)]
    return written


# --- starting ------------------------------------------------------------------------------

def _tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n".join("    " + line for line in text)


def _fail(service: Service, cfg: StackConfig, daemon: Daemon, why: str) -> StackError:
    log = service.log_file(cfg)
    out = cfg.log_dir / f"{daemon.name}.out"
    detail = "\n".join(f"  {p}:\n{t}" for p in (log, out) if (t := _tail(p)))
    if extra := service.diagnose(cfg):
        detail += "\n  check:\n" + "\n".join("    " + line for line in extra.splitlines()[-8:])
    return StackError(service.name, f"{why}; see {log} and {out}" + (f"\n{detail}" if detail
                                                                      else ""), log)


def _probe_host(cfg: StackConfig) -> str:
    return "127.0.0.1" if cfg.listen in ("0.0.0.0", "127.0.0.1", "") else cfg.listen


def _spawn(service: Service, cfg: StackConfig, daemon: Daemon, timeout: float) -> ProcInfo:
    out = open(cfg.log_dir / f"{daemon.name}.out", "ab")  # noqa: SIM115 - handed to the child
    env = {**os.environ, **dict(daemon.env)}
    with out:
        child = subprocess.Popen(daemon.argv, cwd=cfg.run_dir, stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT, env=env,
                                 start_new_session=True)
    if not daemon.daemonizes:
        info = proc_info(child.pid)
        if info is None:
            raise _fail(service, cfg, daemon, f"{daemon.argv[0]} exited at once")
        return info
    try:
        code = child.wait(timeout)
    except subprocess.TimeoutExpired:
        code = None
    if code != 0:
        raise _fail(service, cfg, daemon, f"`{' '.join(daemon.argv)}` failed (exit {code})")
    assert daemon.own_pid_file is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = read_pid_file(daemon.own_pid_file)
        info = proc_info(pid) if pid else None
        if info and info.running:
            return info
        time.sleep(0.05)
    raise _fail(service, cfg, daemon, f"no live pid in {daemon.own_pid_file}")


def _wait_ready(service: Service, cfg: StackConfig, daemon: Daemon, info: ProcInfo,
                timeout: float) -> None:
    host = _probe_host(cfg)
    deadline = time.monotonic() + timeout
    while True:
        now = proc_info(info.pid)
        if now is None or not now.running or now.start_ticks != info.start_ticks:
            reap(info.pid)
            raise _fail(service, cfg, daemon, f"{daemon.name} exited while starting")
        if all(port_open(host, port) for port in daemon.ports):
            return
        if time.monotonic() > deadline:
            raise _fail(service, cfg, daemon,
                        f"ports {daemon.ports} not accepting after {timeout:.0f} s")
        time.sleep(0.05)


def _start(service: Service, cfg: StackConfig, timeout: float) -> None:
    for daemon in service.daemons(cfg):
        taken = sorted(listening_ports(set(daemon.ports)))
        if taken:
            raise StackError(service.name, f"port(s) {taken} already in use by a process "
                             "this stack did not start; stop it first", service.log_file(cfg))
        info = _spawn(service, cfg, daemon, timeout)
        _record(cfg, daemon.name, info)
        try:
            _wait_ready(service, cfg, daemon, info, timeout)
        except StackError:
            _stop(service, cfg)
            raise


def _stop(service: Service, cfg: StackConfig) -> None:
    for daemon in reversed(service.daemons(cfg)):
        record = _read_record(cfg, daemon.name)
        if record is not None:
            pid, pgid, _ = record
            if _owned(cfg, daemon.name) is not None or group_members(pgid):
                # A live group of a recorded leader can only hold that leader's descendants:
                # Linux never hands out a pid that is still some group's id.
                stop_group(pgid)
            reap(pid)
        _forget(cfg, daemon.name)


def _state(service: Service, cfg: StackConfig, action: str = "") -> ServiceState:
    pids: dict[str, int | None] = {}
    for daemon in service.daemons(cfg):
        info = _owned(cfg, daemon.name)
        pids[daemon.name] = info.pid if info else None
    ports = service.ports()
    return ServiceState(
        name=service.name, running=all(pids.values()), ports=ports, pids=pids,
        listening=sorted(listening_ports(set(ports.values()))), log=service.log_file(cfg),
        action=action)


def install(services: list[str] | None = None, *, log: Path | None = None,
            with_needs: bool = True) -> list[str]:
    """apt-get install the Debian packages the services (and what they need) use; returns
    what was installed. The smoke tests' clients (swaks with its TLS module, openssl, curl)
    come along. Raises packages.PackageError."""
    wanted = [p for s in resolve(services, with_needs=with_needs) for p in s.packages]
    return packages.install([*wanted, *packages.CLIENT_TOOLS], log=log)


def up(services: list[str] | None = None, *, run_dir: str | Path | None = None,
       dovecot_limits: DovecotLimits | None = None, config: StackConfig | None = None,
       install_missing: bool = True, with_needs: bool = True,
       timeout: float = 20.0) -> dict[str, ServiceState]:
    """Start the services (all when None) and what they need; idempotent.

    A named service that already runs with the same configs is left alone; one whose configs
    changed (e.g. other Dovecot limits) is restarted. Services pulled in only as dependencies
    are started when down and otherwise left as they are (`with_needs=False`: not at all, as in
    a container that runs one server). Raises StackError or
    packages.PackageError.
    """
    cfg = _config(run_dir, dovecot_limits, config)
    with _locked(cfg):
        return _up(services, cfg, install_missing, with_needs, timeout)


def _up(services: list[str] | None, cfg: StackConfig, install_missing: bool, with_needs: bool,
        timeout: float) -> dict[str, ServiceState]:
    chosen = resolve(services, with_needs=with_needs)
    named = {s.name for s in resolve(services)}
    _base_dirs(cfg)
    if install_missing:
        packages.install([p for s in chosen for p in s.packages], log=cfg.log_dir / "apt.log")
    states = {}
    for service in chosen:
        live = [d for d in service.daemons(cfg) if _owned(cfg, d.name)]
        complete = len(live) == len(service.daemons(cfg))
        if complete and service.name not in named:
            states[service.name] = _state(service, cfg, "already running")
            continue
        changed = _write_files(service, cfg)
        if complete and not changed:
            states[service.name] = _state(service, cfg, "already running")
            continue
        _stop(service, cfg)
        service.prepare(cfg)
        _start(service, cfg, timeout)
        states[service.name] = _state(service, cfg, "restarted" if live else "started")
    return states


def down(services: list[str] | None = None, *, run_dir: str | Path | None = None,
         config: StackConfig | None = None) -> dict[str, ServiceState]:
    """Stop the services (all when None) that this stack started, whole process groups."""
    cfg = _config(run_dir, None, config)
    states = {}
    with _locked(cfg):
        for service in reversed(resolve(services)):
            was = any(_read_record(cfg, d.name) for d in service.daemons(cfg))
            _stop(service, cfg)
            states[service.name] = _state(service, cfg, "stopped" if was else "not running")
    return dict(reversed(states.items()))


def status(services: list[str] | None = None, *, run_dir: str | Path | None = None,
           config: StackConfig | None = None) -> dict[str, ServiceState]:
    """Each service's pids (None when not running), ports and which of them listen."""
    cfg = _config(run_dir, None, config)
    states = {s.name: _state(s, cfg) for s in resolve(services)}
    for state in states.values():
        state.action = "running" if state.running else "not running"
    return states
