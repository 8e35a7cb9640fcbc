"""Shared fixtures. The process is gevent-patched first, as `mailswarm run` is, so in-process
tests of the bridge and users see the same world as a real run."""

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from loadtests.embedded import EmbeddedSettings, EmbeddedTarget  # noqa: E402
from loadtests.targets import Target  # noqa: E402


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedTarget]:
    """A healthy embedded target on free ports, stopped after the test."""
    with EmbeddedTarget(EmbeddedSettings(), tmp_path / "target") as target:
        yield target


@pytest.fixture
def start_target(tmp_path: Path) -> Iterator:
    """Factory: start an embedded target with given settings (stopped after the test)."""
    started: list[EmbeddedTarget] = []

    def _start(**settings: object) -> EmbeddedTarget:
        t = EmbeddedTarget(EmbeddedSettings(**settings), tmp_path / f"target{len(started)}")
        t.start()
        started.append(t)
        return t

    yield _start
    for t in started:
        t.stop()


def write_target_file(path: Path, target: Target, **extra: object) -> Path:
    data = {"name": target.name, "domain": target.domain,
            "endpoints": {k: {"protocol": e.protocol, "host": e.host, "port": e.port}
                          for k, e in target.endpoints.items()}, **extra}
    path.write_text(json.dumps(data))  # JSON is YAML
    return path
