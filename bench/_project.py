"""What every bench script shares: running in the checkout's own environment, and small process
helpers (find a tool, a free loopback port, a process's CPU, stopping a child by its PID).

`use_project_env()` must run before anything imports gevent, Locust or loadtests: when the
script was started by another interpreter (`python3 bench/x`, `bench/x` through
`/usr/bin/env python3`), it re-executes the script with the checkout's `.venv/bin/python`, so
no PATH tricks are needed; with no `.venv` it says to run `scripts/setup`.

`loadtests` comes from this checkout, unless PYTHONPATH names another tree (e.g. a worktree
of an older commit: `PYTHONPATH=/work/before bench/x`): then from there, so the same bench code
measures two trees. `tree_env(tree)` is the environment of a child process that runs `tree`'s
loadtests (benches use it for their `@before` variants, alternated in one invocation).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

__all__ = ["HOST", "ROOT", "find_tool", "free_port", "proc_cpu_s", "stop_pid", "tree_env",
           "use_project_env"]

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
_REEXEC = "MAILSWARM_BENCH_REEXEC"  # set across the re-exec: never loop


def use_project_env() -> None:
    """Continue in the checkout's `.venv` interpreter (re-exec if needed); loadtests from ROOT."""
    python = VENV / "bin" / "python"
    if Path(sys.prefix).resolve() != VENV.resolve():
        if not python.exists():
            sys.exit(f"{ROOT} has no .venv: run `{ROOT / 'scripts' / 'setup'}` first "
                     f"(it creates the environment the benches run in)")
        if os.environ.get(_REEXEC) != "1":
            os.environ[_REEXEC] = "1"
            os.execv(python, [str(python), os.path.abspath(sys.argv[0]), *sys.argv[1:]])
    if str(ROOT) not in sys.path:
        if os.environ.get("PYTHONPATH"):
            sys.path.append(str(ROOT))  # PYTHONPATH's loadtests (another tree) comes first
        else:
            sys.path.insert(0, str(ROOT))  # loadtests from this tree, whatever the directory


def tree_env(tree: str | Path | None) -> dict[str, str]:
    """The environment of a child that imports `tree`'s loadtests (None: this checkout's)."""
    env = dict(os.environ)
    if tree is None:
        env.pop("PYTHONPATH", None)
    else:
        env["PYTHONPATH"] = str(tree)
    return env


def find_tool(name: str, hint: str) -> str:
    """The path of a system tool (also looked for in the sbin directories), or exit with `hint`."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin")
    if path is None:
        sys.exit(f"{name} not found (Debian: {hint})")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a running process (seconds), from /proc/PID/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def stop_pid(pid: int) -> None:
    """Stop one child we started, by its PID: TERM, then KILL; reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done:
                return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
