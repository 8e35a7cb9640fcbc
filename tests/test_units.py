"""Durations and sizes as people write them in profiles."""

import pytest

from loadtests.units import format_duration, parse_duration, parse_size


@pytest.mark.parametrize(("text", "seconds"), [
    ("30", 30.0), (30, 30.0), ("30s", 30.0), ("250ms", 0.25), ("5m", 300.0), ("1h30m", 5400.0),
    ("2h", 7200.0), ("1.5s", 1.5), ("1m 30s", 90.0),
])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "abc", "5 parsecs", "-3", "s30", "1h-", True, -1])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(("text", "size"), [
    (2048, 2048), ("2048", 2048), ("2KiB", 2048), ("20KB", 20000), ("4k", 4096),
    ("1MiB", 1048576), ("1.5 KiB", 1536),
])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["2 parsecs", "KiB", "-1", True])
def test_bad_sizes(bad):
    with pytest.raises(ValueError):
        parse_size(bad)


def test_format_duration():
    assert format_duration(5) == "5s"
    assert format_duration(90) == "1m30s"
    assert format_duration(3600) == "1h"
