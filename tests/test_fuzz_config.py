"""Fuzzing the profile and target loaders: any text or bytes in the file gives a typed result or
a ConfigError with problem lines, never another exception (a traceback for the user)."""

from __future__ import annotations

import string
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loadtests.cli import _embedded_problems
from loadtests.configfile import ConfigError
from loadtests.profiles import Profile, load_profile
from loadtests.targets import Target, load_target

ROOT = Path(__file__).resolve().parent.parent
PROFILES = sorted((ROOT / "profiles").glob("*.yaml"))
TARGETS = sorted((ROOT / "profiles" / "targets").glob("*.yaml"))
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _profile(path: Path) -> Profile:
    return load_profile(path, checks=[_embedded_problems])


LOADERS: dict[str, tuple[Callable[[Path], Any], type]] = {
    "profile": (_profile, Profile),
    "target": (load_target, Target),
}


def _check(loader: str, content: bytes) -> None:
    """The loader's answer to `content` is its model or a ConfigError listing problems."""
    load, model = LOADERS[loader]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "input.yaml"
        path.write_bytes(content)
        try:
            result = load(path)
        except ConfigError as exc:
            assert exc.problems, "a ConfigError names at least one problem"
            assert all(isinstance(p, str) and p for p in exc.problems)
            assert exc.render().startswith(str(path))
        else:
            assert isinstance(result, model)


# -- values as YAML holds them ------------------------------------------------------------------

_KEYS = st.sampled_from([
    "name", "duration", "drain", "seed", "scenarios", "user", "schedule", "kind", "rate",
    "users", "population", "process", "bursts", "max_in_flight", "pop3", "imap", "smtp",
    "embedded", "host", "port", "endpoints", "protocol", "tls", "qos", "size", "message_size",
    "messages_per_user", "faults", "fault", "ramp", "spawn_rate", "stop_when", "ca_file",
    "verify", "mode", "users_pattern", "password", "web", "dns",
]) | st.text(max_size=8)
_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats()
            | st.text(max_size=20) | st.sampled_from(
                ["1s", "10m", "2KiB", "1e400", ".inf", "-1", "0", "100000MiB", "127.0.0.1",
                 "0.0.0.0", "arrival", "closed", "ramp", "smtp", "pop3", "imap", "../x", "∞"]))
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=25)


def _mutate(data: Any, draw: st.DrawFn) -> Any:
    """`data` with one spot replaced, removed or added to (a near-valid file)."""
    if isinstance(data, dict) and data and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(data, key=str)))
        action = draw(st.sampled_from(["descend", "replace", "drop", "add"]))
        out = dict(data)
        if action == "descend":
            out[key] = _mutate(data[key], draw)
        elif action == "replace":
            out[key] = draw(_VALUES)
        elif action == "drop":
            del out[key]
        else:
            out[draw(_KEYS)] = draw(_VALUES)
        return out
    if isinstance(data, list) and data and draw(st.booleans()):
        i = draw(st.integers(0, len(data) - 1))
        return [*data[:i], _mutate(data[i], draw), *data[i + 1:]]
    return draw(_VALUES)


def _near_valid(files: list[Path]) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        data = yaml.safe_load(draw(st.sampled_from(files)).read_text())
        for _ in range(draw(st.integers(1, 3))):
            data = _mutate(data, draw)
        return yaml.safe_dump(data, allow_unicode=True).encode()
    return build()


_YAML_BITS = st.sampled_from([
    "a: b\n", "- x\n", "{", "}", "[", "]", ": ", "&a ", "*a ", "!!python/object:os.system ", "\t",
    "---\n", "...\n", "? ", "|\n  ", ">\n  ", "'", '"', "#", "%YAML 1.1\n", "!!binary ", "\n  ",
    "scenarios:\n", "  - ", "name: x\n", "<<: *a\n", "!!float .inf", "\x00", "\ufeff",
])
_YAML_TEXT = st.lists(_YAML_BITS | st.text(alphabet=string.printable, max_size=6),
                      max_size=25).map("".join)


@pytest.mark.parametrize("loader", sorted(LOADERS))
@FUZZ
@given(content=st.binary(max_size=300))
def test_any_bytes(loader: str, content: bytes) -> None:
    _check(loader, content)


@pytest.mark.parametrize("loader", sorted(LOADERS))
@FUZZ
@given(text=_YAML_TEXT)
def test_yaml_like_text(loader: str, text: str) -> None:
    _check(loader, text.encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("loader", sorted(LOADERS))
@FUZZ
@given(data=st.dictionaries(_KEYS, _VALUES, max_size=6))
def test_any_mapping(loader: str, data: dict[str, Any]) -> None:
    _check(loader, yaml.safe_dump(data, allow_unicode=True).encode())


@FUZZ
@given(content=_near_valid(PROFILES))
def test_near_valid_profiles(content: bytes) -> None:
    _check("profile", content)


@FUZZ
@given(content=_near_valid(TARGETS))
def test_near_valid_targets(content: bytes) -> None:
    _check("target", content)


@pytest.mark.parametrize("loader", sorted(LOADERS))
@pytest.mark.parametrize("content", [
    b"[" * 5000 + b"]" * 5000,                     # nesting deeper than the YAML parser's stack
    b"a: " + b"{b: " * 3000 + b"1" + b"}" * 3000,
    b"l0: &x0 [a, b]\n" + b"".join(b"l%d: &x%d [*x%d, *x%d]\n" % (i, i, i - 1, i - 1)
                                   for i in range(1, 30)) + b"embedded: *x29\n",  # 2^30 leaves
    b"name: !!float x\n",                          # tags PyYAML cannot build: ValueError,
    b"name: !!bool x\n",                           # KeyError, ... rather than a YAMLError
    b"name: !!timestamp 2001-02-30\n",
    b"name: x\nduration: 1e400\n",
    b"\xef\xbb\xbfname: x\n",                       # UTF-8 byte-order mark
    b"name: \xff\n",
])
def test_hard_cases(loader: str, content: bytes) -> None:
    _check(loader, content)


def test_the_shipped_files_still_load() -> None:
    """The mutation seeds are valid, so the near-valid tests start from files that load."""
    for path in PROFILES:
        assert isinstance(_profile(path), Profile)
    for path in TARGETS:
        assert isinstance(load_target(path), Target)
