"""Short real runs against the embedded target, for the report and compare tests: a profile from
profiles/ shrunk (users, duration) and written next to the run, several runs at once."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from cli import ROOT, start_cli


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
    procs = {out: start_cli("run", str(profile), "--out", str(out), "--quiet",
                            stderr=subprocess.STDOUT)
             for profile, out in jobs}
    for out, proc in procs.items():
        output, _ = proc.communicate(timeout=timeout)
        assert proc.returncode == 0, f"{out}: {output[-2000:]}"
