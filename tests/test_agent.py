"""`mailswarm agent` over loopback: started as a subprocess on a free port, stopped by pid."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_monitor_tree import process_tree

from loadtests.monitor import AgentError, fetch_agent_doctor, fetch_agent_sample
from loadtests.monitor.agent import metrics_text

ROOT = Path(__file__).resolve().parent.parent


def agent_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "loadtests.monitor", "agent", *args]


@contextlib.contextmanager
def running_agent(*args: str) -> Iterator[str]:
    """Start the agent on 127.0.0.1:0 and yield its base URL; kill it by pid afterwards."""
    proc = subprocess.Popen(agent_cmd("--listen", "127.0.0.1:0", *args), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, proc.stderr.read() if proc.stderr else ""
        yield json.loads(line)["agent"]
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_samples_metrics_and_doctor_over_loopback() -> None:
    with process_tree(3, 2) as tree, running_agent("--pid", str(tree.pid), "--name", "tree",
                                                   "--tcp-port", "10143") as url:
        sample = fetch_agent_sample(url, timeout=5)
        t = sample["targets"]["tree"]
        assert t["alive"] and t["processes"] == 4 and t["open_fds"] >= 6
        assert sample["generator"] is None  # the agent reports the target host only
        assert "10143" in sample["system"]["tcp"]["ports"]
        assert fetch_agent_sample(url + "/samples", timeout=5)["targets"]["tree"]["processes"] == 4

        with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain")
            text = resp.read().decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        values = {(s.name, s.labels.get("target")): s.value
                  for f in families.values() for s in f.samples}
        assert values["mailswarm_target_processes", "tree"] == 4
        assert values["mailswarm_target_up", "tree"] == 1
        assert values["mailswarm_target_open_fds", "tree"] >= 6
        assert values["mailswarm_target_fd_limit", "tree"] > 0
        assert values["mailswarm_target_rss_bytes", "tree"] > 0
        assert families["mailswarm_listen_overflows"].type == "counter"
        assert "mailswarm_listen_overflows_total" in {s.name for s in
                                                      families["mailswarm_listen_overflows"].samples}

        doctor = fetch_agent_doctor(url, timeout=5)
        assert doctor["sysctl"]["net.core.somaxconn"]
        assert doctor["processes"]["tree"]["pid"] == tree.pid

        with pytest.raises(AgentError, match="HTTP 404"):
            fetch_agent_sample(url + "/nope", timeout=5)


def test_target_file(tmp_path: Path) -> None:
    with process_tree(1, 1) as tree:
        (tmp_path / "srv.pid").write_text(str(tree.pid))
        target = tmp_path / "target.yaml"
        target.write_text(json.dumps({"endpoints": {"imap": {
            "port": 10143, "monitor": [{"pid_file": str(tmp_path / "srv.pid")}]}}}))
        with running_agent("--target", str(target)) as url:
            t = fetch_agent_sample(url, timeout=5)["targets"]["imap"]
            assert t["roots"][0]["pid"] == tree.pid and t["processes"] == 2


def test_target_file_endpoints_sharing_processes_are_one_group(tmp_path: Path) -> None:
    """The agent groups a target file's endpoints as a run does: Dovecot once, as imap+pop3."""
    with process_tree(1, 1) as tree:
        (tmp_path / "srv.pid").write_text(str(tree.pid))
        monitor = [{"pid_file": str(tmp_path / "srv.pid")}]
        target = tmp_path / "target.yaml"
        target.write_text(json.dumps({"endpoints": {
            "imap": {"port": 10143, "monitor": monitor},
            "pop3": {"port": 10110, "monitor": monitor},
            "smtp": {"port": 10025}}}))
        with running_agent("--target", str(target)) as url:
            targets = fetch_agent_sample(url, timeout=5)["targets"]
    assert list(targets) == ["imap+pop3"] and targets["imap+pop3"]["processes"] == 2


def test_refuses_remote_listen_and_empty_config() -> None:
    out = subprocess.run(agent_cmd("--listen", "0.0.0.0:0", "--pid", str(os.getpid())),
                         cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "--allow-remote" in out.stderr
    out = subprocess.run(agent_cmd("--listen", "127.0.0.1:0"), cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2 and "nothing to monitor" in out.stderr


def test_client_errors_are_clear() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(AgentError, match=f"127.0.0.1:{port}.*cannot connect"):
        fetch_agent_sample(f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(AgentError, match="not an http"):
        fetch_agent_sample("ftp://127.0.0.1:1/", timeout=2)


def test_metrics_text_of_a_made_up_sample() -> None:
    sample = {"targets": {"a": {"alive": False, "processes": 0, "pss_bytes": None,
                                "cpu_seconds": 0.0}},
              "system": {"tcp": {"states": {"TIME_WAIT": 7},
                                 "ports": {"25": {"local": {"ESTABLISHED": 2}, "remote": {},
                                                  "listen_queue": 1}}},
                         "listen": {"ListenOverflows": 3, "ListenDrops": 4},
                         "memory": {"available_bytes": 10, "total_bytes": 20}}}
    text = metrics_text(sample).decode()
    assert 'mailswarm_target_up{target="a"} 0.0' in text
    assert 'mailswarm_tcp_sockets{state="TIME_WAIT"} 7.0' in text
    assert 'mailswarm_tcp_port_sockets{port="25",side="local",state="ESTABLISHED"} 2.0' in text
    assert 'mailswarm_tcp_listen_queue{port="25"} 1.0' in text
    assert "mailswarm_listen_drops_total 4.0" in text
    assert "mailswarm_target_pss_bytes{" not in text  # unknown values are left out


def test_doctor_through_the_agent() -> None:
    with process_tree(1, 1) as tree, running_agent("--pid", str(tree.pid), "--name", "srv") as url:
        out = subprocess.run([sys.executable, "-m", "loadtests.monitor", "doctor", "--agent", url,
                              "--json"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode in (0, 1), out.stderr
    hosts = json.loads(out.stdout)["hosts"]
    assert [h["role"] for h in hosts] == ["generator", "target"]
    assert any(c["key"] == "open files of srv" for c in hosts[1]["checks"])


def test_a_run_pulls_the_targets_samples_from_the_agent(tmp_path: Path, embedded) -> None:
    """A target file naming an agent: the run's `sample` records carry what the agent saw."""
    from cli import run_cli
    from conftest import write_target_file

    from loadtests.stream import Sample, read_stream

    with running_agent("--pid", str(embedded.pid), "--name", "remote-mail") as url:
        target = write_target_file(tmp_path / "t.yaml", embedded.target, agent=url)
        out = tmp_path / "out"
        result = run_cli("run", "profiles/smtp-50mps.yaml", "--target", str(target),
                           "--duration", "3s", "--out", str(out), "--quiet", timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    samples = [r for r in read_stream(out / "results.jsonl") if type(r) is Sample]
    assert samples and not any(s.agent_error for s in samples)
    assert all(set(s.targets) == {"remote-mail"} for s in samples)
    assert max(s.targets["remote-mail"]["open_fds"] for s in samples) > 0
    assert samples[0].generator["pid"] != embedded.pid  # the generator's part stays local
