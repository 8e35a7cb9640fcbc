"""The protocol registry (loadtests.protocols): every user kind and protocol is registered once
and everything else reads it — profiles, targets, the users' class lookup, the summary."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loadtests.configfile import ConfigError
from loadtests.profiles import check_against_target, load_profile
from loadtests.protocols import PROTOCOLS, SECTIONS, USER_KINDS, protocol_of, request_type
from loadtests.targets import Target


def test_every_user_kind_resolves_to_its_locust_user() -> None:
    from loadtests.users.base import ScenarioUser

    for name, kind in USER_KINDS.items():
        cls = kind.user_class()
        assert issubclass(cls, ScenarioUser), name
        assert cls.kind == name
        assert kind.protocol in PROTOCOLS
        assert kind.section in SECTIONS
        assert kind.protocol in kind.endpoints  # it accepts an endpoint of its own protocol


def test_every_protocol_has_a_request_type_and_a_port() -> None:
    for name, spec in PROTOCOLS.items():
        assert spec.name == name
        assert spec.request_type == spec.request_type.upper() and spec.request_type
        assert 0 < spec.port < 65536
    assert request_type("imap-idle") == "IMAP" and protocol_of("webuser") == "http"


def _profile(tmp_path: Path, user: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(f"name: p\nscenarios:\n  - name: a\n    user: {user}\n"
                    "    schedule: {kind: closed, users: 1}\n")
    return path


def test_unknown_user_kind_lists_the_registered_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_profile(_profile(tmp_path, "gopher"))
    text = "\n".join(caught.value.problems)
    assert "scenarios[0].user" in text
    for name in USER_KINDS:
        assert repr(name) in text


def test_endpoint_of_the_wrong_protocol_is_refused(tmp_path: Path) -> None:
    profile = load_profile(_profile(tmp_path, "pop3"))
    target = Target.model_validate({"endpoints": {"pop3": {"protocol": "imap", "port": 1143}}})
    assert check_against_target(profile, target) == [
        "scenarios[0].endpoint: 'pop3' is imap, the pop3 user needs pop3"]


def test_smtp_with_mx_lookup_needs_a_dns_endpoint(tmp_path: Path) -> None:
    profile = load_profile(_profile(tmp_path, "smtp"))
    target = Target.model_validate({"endpoints": {"smtp": {"port": 2525}}})
    assert check_against_target(profile, target) == [
        "scenarios[0].smtp.mx_lookup: the target has no dns endpoint"]


def test_endpoint_protocol_is_checked_against_the_registry() -> None:
    with pytest.raises(ValueError, match="smtp"):
        Target.model_validate({"endpoints": {"x": {"protocol": "gopher", "port": 70}}})


def test_profiles_and_targets_load_without_locust() -> None:
    code = ("import sys, loadtests.profiles, loadtests.targets, loadtests.protocols\n"
            "bad = [m for m in ('locust', 'gevent', 'loadtests.embedded') if m in sys.modules]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], check=True)
