"""Loading YAML files into typed models, with every mistake reported at once by its path."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from loadtests.units import parse_duration, parse_size

__all__ = [
    "ByteSize", "ConfigError", "Duration", "StrictModel", "load_yaml_model", "validate_model",
]

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base of every file model: unknown keys are errors, values are immutable after loading,
    and no number is infinite or NaN (`.inf`, `1e400` in YAML are refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _duration(value: Any) -> float:
    return parse_duration(value)


def _size(value: Any) -> int:
    return parse_size(value)


Duration = Annotated[float, BeforeValidator(_duration)]
"""Seconds; written in files as `30s`, `250ms`, `5m`, `1h` or a plain number of seconds; from
0 to units.MAX_DURATION (30 days) unless the field says less."""
ByteSize = Annotated[int, BeforeValidator(_size)]
"""Bytes; written in files as `2048`, `2KiB`, `20KB` or `1MiB`; from 0 to units.MAX_SIZE (1 GiB)
unless the field says less."""


class ConfigError(Exception):
    """A file that cannot be used; `problems` lists every bad field as `path: what is wrong`."""

    def __init__(self, source: str, problems: Iterable[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(self.render())

    def render(self) -> str:
        count = len(self.problems)
        head = f"{self.source}: {count} problem{'s' if count != 1 else ''}"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


def _path(loc: tuple[Any, ...], tags: frozenset[str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in tags or str(part).startswith("function-"):
            continue  # pydantic's name for a union branch, not a key in the file
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _message(error: dict[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    if kind == "value_error":
        return str(error["ctx"]["error"]) if "ctx" in error else error["msg"]
    if kind == "union_tag_invalid":
        return (f"unknown kind {error['ctx']['tag']!r}; "
                f"expected one of {error['ctx']['expected_tags']}")
    return error["msg"]


RawCheck = Callable[[Any], list[str]]


def validate_model(model: type[M], data: Any, source: str, tags: Iterable[str] = (),
                   checks: Iterable[RawCheck] = ()) -> M:
    """`model` from plain data, or ConfigError naming every bad field.

    `tags` are pydantic's names for union branches, hidden from the paths shown to users.
    `checks` look at the raw data across fields (pydantic skips a model's own cross-field
    validators when a field is bad, so these make sure such problems are listed too)."""
    problems = [p for check in checks for p in check(data)]
    try:
        result = model.model_validate(data)
    except ValidationError as exc:
        hidden = frozenset(tags)
        problems += [f"{_path(e['loc'], hidden)}: {_message(e)}"  # type: ignore[arg-type]
                     for e in exc.errors()]
    if problems:
        raise ConfigError(source, problems)
    return result


def load_yaml_model(model: type[M], path: str | Path, tags: Iterable[str] = (),
                    checks: Iterable[RawCheck] = ()) -> M:
    """Read a YAML file into `model`; a missing file or bad YAML is a ConfigError too."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(source, [f"not UTF-8 text: byte 0x{exc.object[exc.start]:02x} at "
                                   f"offset {exc.start}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"not valid YAML: {exc}"]) from None
    except RecursionError:
        raise ConfigError(source, ["not valid YAML: nested too deeply"]) from None
    except (ValueError, LookupError, TypeError) as exc:  # an explicit tag (`!!float x`) that
        # PyYAML's constructors cannot build raises these, not a YAMLError
        raise ConfigError(source, [f"not valid YAML: bad tagged value ({exc})"]) from None
    if not isinstance(data, dict):
        raise ConfigError(source, ["the file must hold a mapping of fields (key: value)"])
    return validate_model(model, data, source, tags, checks)
