"""Loads a locustfile (e.g. one `mailswarm locustfile` wrote) as a module and returns its
concrete mailswarm user classes, as `locust -f` would find them."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

__all__ = ["load_locustfile", "user_classes"]


def load_locustfile(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def user_classes(module: ModuleType) -> list[Any]:
    """The module's concrete loadtests.locust user classes."""
    from loadtests.locust import LocustfileUser

    return [v for v in vars(module).values() if isinstance(v, type)
            and issubclass(v, LocustfileUser) and not v.abstract]
