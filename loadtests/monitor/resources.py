"""The per-process-tree resources a sample carries, defined once for everyone who shows them.

`RESOURCES` lists the keys of a monitored group's entry in a sample (`sample.targets[group]`,
and `sample.generator`): what each is, how it is shown, and who uses it — the agent's
Prometheus gauges (`help`), the summary's peaks (`peak`, `generator`, `per_connection`), the
report's charts and table (`chart`, `table`, `column`), `mailswarm compare` (`compared`) and
the web UI's Target tab (`live`). A new signal is one entry here (plus the sampler that
measures it).

`http_sockets` is the one count of the sockets on a target's web ports in a sample, used by
the summary and the report alike.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["MIB", "RESOURCES", "HttpSockets", "Resource", "http_ports", "http_sockets",
           "resources_with"]

MIB = 2**20


@dataclass(frozen=True, slots=True)
class Resource:
    key: str  # in a group's entry of a sample
    label: str  # on charts and in compare (with the unit: "RSS MB")
    help: str | None = None  # Prometheus help text: exported as a gauge by the agent
    scale: float = 1.0  # sample value * scale = the value shown
    column: str = ""  # report table's column stem (`rss_mb` -> `rss_mb_max`); "" = key
    limit: str | None = None  # key of the limit it runs into (`fd_limit`)
    is_limit: bool = False  # a limit itself: the summary keeps its last value
    peak: bool = False  # the summary keeps its peak per group (`<key>_max`)
    generator: bool = False  # ... and the generator's
    per_connection: bool = False  # the summary's cost per held connection
    chart: bool = False  # a chart per resource in the report, a line per group
    table: bool = False  # a column of the report's resource peaks (`<column>_max`, its limit)
    compared: bool = False  # per-second means and peaks in `mailswarm compare`
    live: tuple[str, str] | None = None  # the web UI's Target tab: (column key, title)

    @property
    def table_column(self) -> str:
        return self.column or self.key


RESOURCES: tuple[Resource, ...] = (
    Resource("processes", "processes", "Live processes in the target's process tree(s)",
             peak=True, per_connection=True, chart=True, compared=True,
             table=True, live=("processes", "Processes")),
    Resource("threads", "threads", "Threads in the tree", peak=True, per_connection=True,
             chart=True, compared=True, table=True, live=("threads", "Threads")),
    Resource("open_fds", "open fds", "Open file descriptors in the tree", limit="fd_limit",
             peak=True, generator=True, per_connection=True, chart=True, compared=True,
             table=True, live=("fds", "Open fds / limit")),
    Resource("fd_limit", "fd limit", "Open-files soft limit of the (first) root process",
             is_limit=True, generator=True),
    Resource("rss_bytes", "RSS MB",
             "Resident memory summed over the tree (shared pages counted repeatedly)",
             scale=1 / MIB, column="rss_mb", peak=True, generator=True, per_connection=True,
             chart=True, compared=True, table=True, live=("rss_mib", "RSS MiB")),
    Resource("pss_bytes", "PSS MB",
             "Proportional set size summed over the tree (refreshed every Nth sample)",
             scale=1 / MIB, column="pss_mb", peak=True, per_connection=True, chart=True,
             table=True, live=("pss_mib", "PSS MiB")),
    Resource("cpu_percent", "CPU %", peak=True, generator=True,
             table=True, live=("cpu_percent", "CPU %")),
    Resource("fd_max_ratio", "fd max ratio",
             "Highest open fds / own soft limit of any one process in the tree", peak=True),
    Resource("zombies", "zombies", "Exited, unreaped processes in the tree"),
    Resource("fd_limit_hard", "fd hard limit", "Open-files hard limit of the (first) root "
             "process", is_limit=True),
)
"""In the order tables, summaries and the web UI show them."""


def resources_with(flag: str) -> tuple[Resource, ...]:
    """The resources whose `flag` (e.g. "chart", "peak", "live") is set."""
    return tuple(r for r in RESOURCES if getattr(r, flag))


def http_ports(target: Mapping[str, Any] | None) -> list[str]:
    """The ports of a target's HTTP endpoints (a run header's `target`), as strings."""
    endpoints = (target or {}).get("endpoints") or {}
    return sorted({str(e["address"]).rsplit(":", 1)[1] for e in endpoints.values()
                   if e.get("protocol") == "http" and ":" in str(e.get("address", ""))})


class HttpSockets(NamedTuple):
    """TCP sockets on the web ports in one sample, summed over the ports."""

    connections: int  # ESTABLISHED, counted on the client side: the connections held
    time_wait_client: int
    time_wait_target: int

    @property
    def time_wait(self) -> int:
        return self.time_wait_client + self.time_wait_target


def http_sockets(system: Mapping[str, Any] | None, ports: Iterable[str]) -> HttpSockets:
    """The HTTP sockets of a sample's `system` part on `ports` (`http_ports`)."""
    by_port = ((system or {}).get("tcp") or {}).get("ports") or {}
    est = tw_client = tw_target = 0
    for port in ports:
        sides = by_port.get(port) or {}
        client, server = sides.get("remote") or {}, sides.get("local") or {}
        est += client.get("ESTABLISHED", 0)
        tw_client += client.get("TIME_WAIT", 0)
        tw_target += server.get("TIME_WAIT", 0)
    return HttpSockets(est, tw_client, tw_target)
