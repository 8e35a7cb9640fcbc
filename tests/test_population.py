"""The seed's population formula, and its derivation shown before a run."""

import pytest
from cli import run_cli

from loadtests.profiles import load_profile
from loadtests.schedule.population import derive


def test_the_seeds_pop3_isp():
    d = derive(users=100_000, checks_per_user=2, session_time=15, peak_window=12 * 3600)
    assert d.concurrency == pytest.approx(69.44, abs=0.01)  # "~70 concurrent POP3 sessions"
    assert d.rate_per_s == pytest.approx(4.6296, abs=0.0001)
    assert "100,000 users x 2 checks in a 12h peak window" in d.lines[0]
    assert "69.4 concurrent sessions" in d.lines[1]


def test_rejects_nonsense():
    with pytest.raises(ValueError):
        derive(users=0, checks_per_user=2, session_time=15, peak_window=3600)


def test_profile_uses_the_derived_rate():
    profile = load_profile("profiles/pop3-isp-100k.yaml")
    schedule = profile.scenarios[0].schedule
    assert schedule.sessions_per_s == pytest.approx(4.6296, abs=0.0001)
    assert schedule.population.derived().concurrency == pytest.approx(69.44, abs=0.01)


def test_bad_population_is_named(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nscenarios:\n  - name: pop3\n    user: pop3\n    schedule:\n"
                    "      kind: arrival\n      rate: 5\n"
                    "      population: {users: -1, checks_per_user: 2, session_time: 15s, "
                    "peak_window: 12h}\n")
    result = run_cli("run", str(path), "--out", str(tmp_path / "out"), timeout=60)
    assert result.returncode == 2
    assert "scenarios[0].schedule.population.users:" in result.stderr
