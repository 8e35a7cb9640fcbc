"""Short real runs against the embedded target, for the report and compare tests: a profile from
profiles/ shrunk (users, duration) and written next to the run, several runs at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def shrunk_profile(source: str, folder: Path, name: str, *, users: int | None = None,
                   duration: str = "6s", **top: Any) -> Path:
    data = yaml.safe_load((ROOT / "profiles" / source).read_text())
    data.update({"duration": duration, "drain": "2s", **top})
    for sc in data["scenarios"]:
        schedule = sc["schedule"]
        if users is not None and "users" in schedule:
            schedule["users"] = users
            schedule["spawn_rate"] = max(users, 1)
        if "session_length" in (sc.get("web") or {}):
            sc["web"].update(session_length="20s", poll_interval="2s")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_all(jobs: list[tuple[Path, Path]], timeout: float = 150) -> None:
    """Run `mailswarm run PROFILE --out DIR` for each (profile, out) at once; fail on errors."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = {out: subprocess.Popen([sys.executable, "-m", "loadtests.cli", "run", str(profile),
                                    "--out", str(out), "--quiet"], cwd=ROOT, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for profile, out in jobs}
    for out, proc in procs.items():
        output, _ = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"{out}: {output[-2000:]}"
