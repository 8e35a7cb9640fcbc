"""mailswarm from plain Locust: the example locustfiles run with the venv's `locust` against the
embedded target (`mailswarm target` on free ports, named by a `--mailswarm-target` file, stopped
by its PID), locally and as --master with two --worker processes; Locust's CSV and mailswarm's
stream both hold the requests; a worker killed mid-run is recorded as lost. Also: a subclass
overriding one IMAP step, host parsing (implicit-TLS schemes), a class for every user kind, and
a worker's records redacted and its part of each schedule."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from argparse import Namespace
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cli import ROOT, run_cli, start_cli
from exported import load_locustfile, user_classes

from loadtests.locust.config import ConfigurationError, endpoint_from_url

LOCUST = Path(sys.executable).with_name("locust")
EXAMPLES = ROOT / "examples" / "locustfiles"
PASSWORD = "mailswarm-test"  # the embedded target's, for every mailbox


@pytest.fixture(scope="module")
def target_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`mailswarm target` on free ports, and a target file naming them."""
    folder = tmp_path_factory.mktemp("target")
    proc = start_cli("target", "--smtp-port", "0", "--dns-port", "0", "--pop3-port", "0",
                     "--imap-port", "0", "--http-port", "0", stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        endpoints = {proto: {"host": "127.0.0.1", "port": ready[f"{proto}_port"]}
                     for proto in ("smtp", "dns", "pop3", "imap", "http")}
        path = folder / "target.yaml"
        path.write_text(yaml.safe_dump({"name": "embedded", "domain": ready["domain"],
                                        "password_env": "MAILSWARM_PASSWORD",
                                        "endpoints": endpoints}))
        yield path
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(10)


def _locust(locustfile: Path, out: Path, target: Path, *args: str,
            timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LOCUST), "-f", str(locustfile), "--headless", "--csv", str(out / "locust"),
         "--mailswarm-out", str(out / "ms"), "--mailswarm-target", str(target), *args],
        cwd=ROOT, env={**os.environ, "MAILSWARM_PASSWORD": PASSWORD}, capture_output=True,
        text=True, timeout=timeout)


def _csv_rows(out: Path) -> dict[tuple[str, str], int]:
    """Locust's request rows: (type, name) -> requests."""
    with (out / "locust_stats.csv").open() as f:
        return {(r["Type"], r["Name"]): int(r["Request Count"]) for r in csv.DictReader(f)
                if r["Name"] != "Aggregated"}


def _stream(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / "ms" / "results.jsonl").read_text().splitlines()]


def _stream_rows(records: list[dict[str, object]]) -> Counter[tuple[str, str]]:
    return Counter((str(r["type"]), str(r["name"])) for r in records if r["kind"] == "req")


def test_smtp_50mps_runs_at_its_rate_and_mailswarm_report_reads_its_stream(
        target_file: Path, tmp_path: Path) -> None:
    done = _locust(EXAMPLES / "smtp_50mps.py", tmp_path, target_file, "-t", "20s",
                   "--mailswarm-drain", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _csv_rows(tmp_path)
    records = _stream(tmp_path)
    streamed = _stream_rows(records)
    for step in (("DNS", "MX"), ("SMTP", "CONNECT"), ("SMTP", "DATA"), ("SMTP", "session")):
        assert rows.get(step, 0) > 0 and rows[step] == streamed[step], (step, rows, streamed)
    summary = json.loads((tmp_path / "ms" / "summary.json").read_text())
    arrival = summary["arrival"]["Smtp50"]
    assert abs(arrival["achieved_per_s"] - 50) <= 1, arrival
    assert arrival["dropped"] == 0 and summary["requests"]
    assert records[0]["kind"] == "run" and records[-1]["kind"] == "end"
    assert any(r["kind"] == "sample" for r in records)  # the monitor ran
    (tmp_path / "ms" / "report.html").unlink()
    report = run_cli("report", str(tmp_path / "ms"))
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "ms" / "report.html").is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _workers(locustfile: str, port: int, count: int) -> list[subprocess.Popen[bytes]]:
    """`count` Locust workers of `locustfile` for a master on `port`."""
    return [subprocess.Popen(
        [str(LOCUST), "-f", locustfile, "--worker", "--master-host", "127.0.0.1",
         "--master-port", str(port)], cwd=ROOT, env={**os.environ, "MAILSWARM_PASSWORD": PASSWORD},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(count)]


def test_master_with_two_workers_has_every_record_in_its_stream(
        target_file: Path, tmp_path: Path) -> None:
    port = _free_port()
    workers = _workers(str(EXAMPLES / "smtp_50mps.py"), port, 2)
    try:
        done = _locust(EXAMPLES / "smtp_50mps.py", tmp_path, target_file, "--master",
                       "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                       "--expect-workers", "2", "-t", "6s", "--mailswarm-drain", "2")
    finally:
        for proc in workers:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
    assert done.returncode == 0, done.stderr[-3000:]
    records = _stream(tmp_path)
    rows, streamed = _csv_rows(tmp_path), _stream_rows(records)
    assert rows.get(("SMTP", "session"), 0) > 200, rows
    assert dict(streamed) == rows  # every request Locust counted is in the master's stream
    assert len({r.get("worker") for r in records if r["kind"] == "req"}) == 2
    summary = json.loads((tmp_path / "ms" / "summary.json").read_text())
    assert abs(summary["arrival"]["Smtp50"]["achieved_per_s"] - 50) <= 3  # each took its half
    joined = [(r["index"], r["of"]) for r in records if r["kind"] == "worker"]
    assert sorted(joined) == [(0, 2), (1, 2)], joined


def _wait_for_reports_of(count: int, stream: Path, timeout: float = 30) -> None:
    """Until `count` workers' requests are in the master's stream: each has reported its
    pacers since the load started (a worker lost before that leaves no pacer counters)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stream.exists():
            lines = [json.loads(line) for line in stream.read_text().split("\n")[:-1]]
            if len({r.get("worker") for r in lines if r["kind"] == "req"}) >= count:
                return
        time.sleep(0.2)
    raise AssertionError(f"no requests of {count} workers in {stream} within {timeout:g} s")


def test_a_worker_killed_mid_run_is_recorded_as_lost(target_file: Path, tmp_path: Path) -> None:
    port = _free_port()
    locustfile = str(EXAMPLES / "smtp_50mps.py")
    workers = _workers(locustfile, port, 2)
    master = subprocess.Popen(
        [str(LOCUST), "-f", locustfile, "--headless", "--mailswarm-out", str(tmp_path / "ms"),
         "--mailswarm-target", str(target_file), "--master", "--master-bind-host", "127.0.0.1",
         "--master-bind-port", str(port), "--expect-workers", "2", "-t", "10s",
         "--mailswarm-drain", "1"], cwd=ROOT, env={**os.environ, "MAILSWARM_PASSWORD": PASSWORD},
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        _wait_for_reports_of(2, tmp_path / "ms" / "results.jsonl")
        workers[0].kill()
        out, _ = master.communicate(timeout=60)
    finally:
        for proc in [*workers, master]:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    events = [r for r in _stream(tmp_path) if r["kind"] == "worker"]
    assert [r["event"] for r in events].count("joined") == 2, events
    lost = [r for r in events if r["event"] == "lost"]
    assert len(lost) == 1 and lost[0]["cause"], events
    assert "WORKER LOST" in out
    summary = json.loads((tmp_path / "ms" / "summary.json").read_text())
    workers = summary["workers"]
    assert workers["joined"] == 2 and len(workers["lost"]) == 1, workers
    assert workers["not_sent"]["Smtp50"] > 0, workers  # its part of the schedule, unsent


@pytest.mark.parametrize(("example", "args", "expected"), [
    ("pop3_isp.py", (), [("POP3", "CONNECT"), ("POP3", "PASS"), ("POP3", "STAT")]),
    ("imap_idle.py", ("-u", "10", "-r", "10"),
     [("IMAP", "CONNECT"), ("IMAP", "LOGIN"), ("IMAP", "SELECT"), ("IMAP", "IDLE")]),
    ("webuser.py", ("-u", "5", "-r", "5"), [("HTTP", "LOGIN_PAGE"), ("HTTP", "LOGIN")]),
    ("office_day.py", ("-u", "68", "-r", "68"),
     [("SMTP", "session"), ("DNS", "MX"), ("IMAP", "SELECT"), ("IMAP", "FETCH"),
      ("POP3", "CONNECT"), ("HTTP", "LOGIN")]),
])
def test_example_runs_headless(target_file: Path, tmp_path: Path, example: str,
                               args: tuple[str, ...], expected: list[tuple[str, str]]) -> None:
    done = _locust(EXAMPLES / example, tmp_path, target_file, "-t", "5s",
                   "--mailswarm-drain", "0", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    rows, streamed = _csv_rows(tmp_path), _stream_rows(_stream(tmp_path))
    for step in expected:
        assert rows.get(step, 0) > 0, (step, rows)
        assert streamed[step] >= rows[step], (step, rows, streamed)
    failed = [r for r in _stream(tmp_path) if r["kind"] == "req" and not r["ok"]
              and r["name"] != "session"]
    assert not failed, failed[:3]


OVERRIDE = '''
import loadtests.locust.plugin
from loadtests.locust import ImapActiveUser


class NoopReader(ImapActiveUser):
    arrival_rate = 10

    async def after_select(self, client, rec, info, result):
        await rec.step("NOOP", client.noop())
        await rec.step("CHECK", client.noop())
'''


def test_a_subclass_overrides_what_an_imap_session_does_after_select(
        target_file: Path, tmp_path: Path) -> None:
    locustfile = tmp_path / "noop_reader.py"
    locustfile.write_text(OVERRIDE)
    done = _locust(locustfile, tmp_path, target_file, "-t", "4s", "--mailswarm-drain", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    rows = _csv_rows(tmp_path)
    assert rows.get(("IMAP", "CHECK"), 0) > 10 and rows.get(("IMAP", "LOGOUT"), 0) > 10, rows
    assert rows[("IMAP", "session")] >= rows[("IMAP", "LOGOUT")]
    assert ("IMAP", "FETCH") not in rows and ("IMAP", "SEARCH") not in rows  # replaced


def test_host_urls_are_read_through_the_protocol_registry() -> None:
    ep = endpoint_from_url("imap://127.0.0.1:20143")
    assert (ep.protocol, ep.host, ep.port) == ("imap", "127.0.0.1", 20143)
    assert endpoint_from_url("smtp://127.0.0.1").port == 25  # the registry's port
    assert ep.tls == "none"
    secure = endpoint_from_url("imaps://127.0.0.1:20993")
    assert (secure.protocol, secure.port, secure.tls) == ("imap", 20993, "implicit")
    assert [(e.protocol, e.port, e.tls) for e in map(endpoint_from_url, (
        "smtps://127.0.0.1", "pop3s://127.0.0.1", "https://127.0.0.1"))] == [
        ("smtp", 465, "implicit"), ("pop3", 995, "implicit"), ("http", 443, "implicit")]
    with pytest.raises(ConfigurationError, match="scheme"):
        endpoint_from_url("dnss://127.0.0.1:853")
    with pytest.raises(ConfigurationError, match="scheme"):
        endpoint_from_url("gopher://127.0.0.1:70")


def test_every_user_kind_has_a_locustfile_class() -> None:
    import loadtests.locust
    from loadtests.locust.export import CLASS_NAMES
    from loadtests.protocols import USER_KINDS

    assert set(CLASS_NAMES) == set(USER_KINDS)
    for kind, name in CLASS_NAMES.items():
        assert getattr(loadtests.locust, name).kind == kind


def test_a_worker_redacts_its_classes_password_and_takes_its_part(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from locust.env import Environment

    from loadtests.locust import Pop3CheckMailUser
    from loadtests.locust.shipping import LocustfileLoad, worker_part

    monkeypatch.setenv("ECHO_PASSWORD", "s3cret-pw")

    class Checker(Pop3CheckMailUser):
        host = "pop3://127.0.0.1:20110"
        password_env = "ECHO_PASSWORD"

    env = Environment(user_classes=[Checker], parsed_options=Namespace(
        mailswarm_parts={"w1": [1, 3]}))
    env.runner = Namespace(client_id="w1")  # type: ignore[assignment]
    load = LocustfileLoad(env)
    Checker.configure(env)
    load.keep({"kind": "req", "err": "-ERR you said: PASS s3cret-pw"})
    assert load.buffer == [{"kind": "req", "err": "-ERR you said: PASS [REDACTED]"}]
    assert worker_part(env) == (1, 3)
    env.runner = Namespace(client_id="other")  # type: ignore[assignment]
    assert worker_part(env) == (0, 1)


def test_a_host_of_the_wrong_protocol_is_refused_before_anything_is_sent(
        target_file: Path, tmp_path: Path) -> None:
    done = _locust(EXAMPLES / "imap_idle.py", tmp_path, target_file, "-t", "2s",
                   "--host", "smtp://127.0.0.1:20025")
    assert done.returncode != 0
    assert "the imap-idle user needs imap" in done.stderr


CEILING = '''
from loadtests.locust import ImapIdleUser
from loadtests.locust.plugin import CeilingShape


class Idle(ImapIdleUser):
    imap = {"hold": "1h"}


class Ceiling(CeilingShape):
    ramp = {"start": 2, "step": 2, "max": 6, "hold": 1, "spawn_rate": 50}
'''


def test_the_ceiling_shape_steps_up_and_ends_the_run(target_file: Path, tmp_path: Path) -> None:
    locustfile = tmp_path / "ceiling.py"
    locustfile.write_text(CEILING)
    done = _locust(locustfile, tmp_path, target_file, "--mailswarm-drain", "0", timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    steps = [r for r in _stream(tmp_path) if r["kind"] == "step"]
    assert [s["users"] for s in steps] == [2, 4, 6] and all(s["good"] for s in steps), steps
    summary = json.loads((tmp_path / "ms" / "summary.json").read_text())
    assert summary["ceiling"]["step"] == 6 and summary["ceiling"]["protocol"] == "IMAP", summary


def _exported(profile: Path, folder: Path) -> Path:
    path = folder / f"{profile.stem.replace('-', '_')}.py"
    done = run_cli("locustfile", str(profile.relative_to(ROOT)), "-o", str(path))
    assert done.returncode == 0, done.stderr
    return path


@pytest.mark.parametrize("profile", sorted((ROOT / "profiles").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_an_exported_profile_is_the_same_scenarios_in_a_locustfile(profile: Path,
                                                                    tmp_path: Path) -> None:
    from loadtests.locust.config import scenario_for
    from loadtests.locust.plugin import CeilingShape
    from loadtests.profiles import RampSchedule, load_profile

    path = _exported(profile, tmp_path)
    module = load_locustfile(path, f"exported_{path.stem}")
    classes = user_classes(module)
    wanted = load_profile(profile)
    assert len(classes) == len(wanted.scenarios)
    by_name = {sc.name: sc for sc in wanted.scenarios}
    for cls in classes:
        got = scenario_for(cls, None)
        assert got == by_name[got.name].model_copy(update={"endpoint": None}), cls
        assert cls.seed == wanted.seed and cls.target_endpoint == by_name[got.name].endpoint
    shapes = [v for v in vars(module).values() if isinstance(v, type)
              and issubclass(v, CeilingShape) and not v.abstract]
    ramps = [sc.schedule for sc in wanted.scenarios if isinstance(sc.schedule, RampSchedule)]
    assert [s().schedule for s in shapes] == ramps


def test_an_exported_profile_runs_in_plain_locust(target_file: Path, tmp_path: Path) -> None:
    locustfile = _exported(ROOT / "profiles" / "smtp-50mps.yaml", tmp_path)
    done = _locust(locustfile, tmp_path, target_file, "-t", "4s", "--mailswarm-drain", "1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert _csv_rows(tmp_path).get(("SMTP", "session"), 0) > 100
    header = _stream(tmp_path)[0]
    assert header["rates"] == {"smtp": 50.0}
    assert header["profile"]["scenarios"][0]["smtp"]["size"]["choices"][2]["size"] == 40960


def test_a_tls_session_writes_its_version_and_cipher_once(tmp_path: Path) -> None:
    """The plugin writes the `tls` record `mailswarm run` writes: once per (scenario, version,
    cipher), against the embedded target's implicit-TLS IMAP port, verified with its CA."""
    proc = start_cli("target", "--smtp-port", "0", "--dns-port", "0", "--pop3-port", "0",
                     "--imap-port", "0", "--http-port", "0", "--tls-dir", str(tmp_path / "ca"),
                     stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        target = tmp_path / "target.yaml"
        target.write_text(yaml.safe_dump({
            "name": "embedded-tls", "domain": ready["domain"], "password_env": "MAILSWARM_PASSWORD",
            "endpoints": {"imap": {"host": "127.0.0.1", "port": ready["imaps_port"],
                                   "tls": "implicit", "ca_file": ready["ca_file"]}}}))
        done = _locust(EXAMPLES / "imap_idle.py", tmp_path, target, "-u", "5", "-r", "5",
                       "-t", "3s", "--mailswarm-drain", "0")
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(10)
    assert done.returncode == 0, done.stderr[-3000:]
    records = _stream(tmp_path)
    assert _stream_rows(records)[("IMAP", "TLS")] == 5
    tls = [r for r in records if r["kind"] == "tls"]
    assert len(tls) == 1 and str(tls[0]["version"]).startswith("TLSv1"), tls
    summary = json.loads((tmp_path / "ms" / "summary.json").read_text())
    assert summary["tls"] and summary["tls"][0]["cipher"] == tls[0]["cipher"]
