"""The type hints are checked: mypy, with the settings in pyproject.toml, is clean on loadtests/
(as scripts/test runs it), and those settings do catch the mistakes they are there for."""

import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    find_spec("mypy") is None,
    reason="mypy is not installed (it is in the test extra: pip install -e '.[test]')")


def _mypy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_loadtests_is_clean() -> None:
    done = _mypy("loadtests")
    assert done.returncode == 0, f"mypy found problems:\n{done.stdout}{done.stderr}"


_MISTAKES = '''\
class Client:
    def list(self) -> list[int]:
        return []

    def uidl(self) -> list[str]:  # `list` is the method above here, not the builtin
        return []


def untyped(value):
    return value


count: int = 1  # type: ignore
'''


def test_the_settings_catch_mistakes(tmp_path: Path) -> None:
    bad = tmp_path / "mistakes.py"
    bad.write_text(_MISTAKES)
    done = _mypy("--config-file", str(ROOT / "pyproject.toml"), str(bad))
    assert done.returncode == 1, done.stdout + done.stderr
    for code in ("[valid-type]", "[no-untyped-def]", "[unused-ignore]"):
        assert code in done.stdout, f"mypy did not report {code}:\n{done.stdout}"
