"""`mailswarm agent`: serve a host's samples over HTTP, and the client the runner uses.

GET /samples  one fresh `Sampler.sample()` as JSON
GET /metrics  the same as Prometheus text (prometheus_client), gauges labelled `target`
GET /doctor   this host's limits (`doctor.collect_values`, with the monitored processes' fd
              limits) as JSON; `mailswarm doctor --agent URL` judges them
Each request samples afresh (the sampler's lock serialises concurrent requests).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from loadtests.monitor.doctor import collect_values
from loadtests.monitor.resources import RESOURCES
from loadtests.monitor.sampler import Sampler

__all__ = [
    "AgentError",
    "fetch_agent_doctor",
    "fetch_agent_sample",
    "make_server",
    "metric_families",
    "metrics_text",
]

_TARGET_GAUGES = {r.key: r.help for r in RESOURCES if r.help}  # loadtests.monitor.resources
_COUNTERS = {"ListenOverflows": "listen_overflows", "ListenDrops": "listen_drops",
             "TCPTimeWaitOverflow": "tcp_timewait_overflow"}


class AgentError(RuntimeError):
    """The agent could not be reached or answered something other than a sample."""


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"mailswarm_{name}", doc, labels=labels)


def metric_families(sample: dict[str, Any]) -> Iterator[Metric]:
    """Prometheus metric families of one sample (pure)."""
    targets = sample.get("targets") or {}
    up = _gauge("target_up", "1 when at least one root process of the target runs", ["target"])
    for name, t in targets.items():
        up.add_metric([name], 1.0 if t.get("alive") else 0.0)
    yield up
    for key, doc in _TARGET_GAUGES.items():
        g = _gauge(f"target_{key}", doc, ["target"])
        for name, t in targets.items():
            if t.get(key) is not None:
                g.add_metric([name], float(t[key]))
        yield g
    cpu = CounterMetricFamily("mailswarm_target_cpu_seconds",
                              "User+system CPU of the tree (incl. reaped children)",
                              labels=["target"])
    for name, t in targets.items():
        cpu.add_metric([name], float(t.get("cpu_seconds") or 0.0))
    yield cpu
    system = sample.get("system") or {}
    tcp = system.get("tcp") or {}
    states = _gauge("tcp_sockets", "TCP sockets on the host by state", ["state"])
    for state, count in sorted((tcp.get("states") or {}).items()):
        states.add_metric([state], float(count))
    yield states
    per_port = _gauge("tcp_port_sockets",
                      "TCP sockets by port, side (local = server side, remote = client side) "
                      "and state", ["port", "side", "state"])
    queue = _gauge("tcp_listen_queue", "Connections waiting in the accept queue", ["port"])
    for port, sides in sorted((tcp.get("ports") or {}).items()):
        for side in ("local", "remote"):
            for state, count in sorted((sides.get(side) or {}).items()):
                per_port.add_metric([port, side, state], float(count))
        if sides.get("listen_queue") is not None:
            queue.add_metric([port], float(sides["listen_queue"]))
    yield per_port
    yield queue
    for key, name in _COUNTERS.items():
        value = (system.get("listen") or {}).get(key)
        if value is not None:
            yield CounterMetricFamily(f"mailswarm_{name}", f"TcpExt {key} since boot",
                                      value=float(value))
    for key, value in (system.get("memory") or {}).items():
        if value is not None:
            g = _gauge(f"memory_{key}", f"/proc/meminfo {key}", [])
            g.add_metric([], float(value))
            yield g
    cost = (sample.get("cost") or {}).get("wall_ms")
    if cost is not None:
        g = _gauge("sample_seconds", "Time the agent took to take this sample", [])
        g.add_metric([], cost / 1000)
        yield g


class _OneSample:
    def __init__(self, sample: dict[str, Any]) -> None:
        self.sample = sample

    def collect(self) -> Iterator[Metric]:
        return metric_families(self.sample)


def metrics_text(sample: dict[str, Any]) -> bytes:
    """Prometheus text exposition of one sample."""
    registry = CollectorRegistry()
    registry.register(_OneSample(sample))
    return generate_latest(registry)


def make_server(sampler: Sampler, host: str, port: int,
                doctor: Callable[[], dict[str, Any]] | None = None,
                log: Callable[[str], None] | None = None) -> ThreadingHTTPServer:
    """An HTTP server (not yet serving) answering /samples, /metrics and /doctor."""

    def default_doctor() -> dict[str, Any]:
        targets = sampler.sample()["targets"]
        return collect_values({name: {"pid": t["roots"][0]["pid"] if t["roots"] else None,
                                      "fd_limit": t["fd_limit"],
                                      "fd_limit_hard": t["fd_limit_hard"]}
                               for name, t in targets.items()})

    doctor_fn = doctor or default_doctor

    class Handler(BaseHTTPRequestHandler):
        server_version = "mailswarm-agent"

        def do_GET(self) -> None:
            path = urlsplit(self.path).path.rstrip("/") or "/"
            try:
                if path == "/samples":
                    self._send(200, "application/json", json.dumps(sampler.sample()).encode())
                elif path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, metrics_text(sampler.sample()))
                elif path == "/doctor":
                    self._send(200, "application/json", json.dumps(doctor_fn()).encode())
                elif path == "/":
                    self._send(200, "text/plain; charset=utf-8",
                               b"mailswarm agent: /samples (JSON), /metrics (Prometheus), "
                               b"/doctor (host limits, JSON)\n")
                else:
                    self._send(404, "application/json", b'{"error": "not found"}')
            except Exception as exc:  # one bad sample must not kill the agent
                body = json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode()
                self._send(500, "application/json", body)

        def _send(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            if log is not None:
                log(f"{self.address_string()} {format % args}")

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def _get_json(url: str, path: str, timeout: float) -> dict[str, Any]:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise AgentError(f"agent {url!r}: not an http:// URL")
    full = parts._replace(path=parts.path if parts.path not in ("", "/") else path).geturl()
    try:
        with urllib.request.urlopen(full, timeout=timeout) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:
        raise AgentError(f"agent {full}: HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise AgentError(f"agent {full}: cannot connect ({exc.reason})") from exc
    except (TimeoutError, OSError) as exc:
        raise AgentError(f"agent {full}: {exc or type(exc).__name__}") from exc
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise AgentError(f"agent {full}: answer is not JSON") from exc
    if not isinstance(data, dict):
        raise AgentError(f"agent {full}: answer is not a JSON object")
    return data


def fetch_agent_sample(url: str, timeout: float = 2.0) -> dict[str, Any]:
    """One fresh sample from an agent (`http://host:9101` or its /samples URL). Raises
    AgentError, with the URL and the reason, on any failure."""
    data = _get_json(url, "/samples", timeout)
    if "targets" not in data:
        raise AgentError(f"agent {url}: answer has no 'targets' (not a mailswarm agent?)")
    return data


def fetch_agent_doctor(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """The agent host's limits (`doctor.collect_values` there). Raises AgentError."""
    base = urlsplit(url if "://" in url else f"http://{url}")._replace(path="").geturl()
    return _get_json(base, "/doctor", timeout)
