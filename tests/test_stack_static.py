"""The stack without running it: rendered configs, the target file, docker/ and the CLI's help.

These need no root and no Debian packages (checkers are used when installed); docker/ is only
parsed, as no Docker engine runs on these machines.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from loadtests.cli import build_parser
from loadtests.stack import PORTS, SERVICES, StackConfig, render
from loadtests.stack.settings import DovecotLimits
from loadtests.stack.targetfile import ENDPOINTS, TLS_ENDPOINTS, render_target
from loadtests.targets import check_loopback, load_target

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"


def test_target_file_is_the_rendered_one_and_valid() -> None:
    path = ROOT / "profiles/targets/stack.yaml"
    cfg = StackConfig(run_dir=Path("/tmp/mailswarm-stack"))
    assert path.read_text() == render_target(cfg), "regenerate with loadtests.stack.targetfile"
    target = load_target(path)
    assert set(target.endpoints) == set(ENDPOINTS) | set(TLS_ENDPOINTS)
    assert check_loopback(target) == []
    assert target.secret() == "mailswarm-test"
    assert target.users.name(0) == "user0001" and target.users.count == 1000
    for name, endpoint in target.endpoints.items():
        port = TLS_ENDPOINTS[name].port if name in TLS_ENDPOINTS else name
        assert endpoint.port == PORTS[port]
        assert endpoint.monitor and all(ref.pid_file for ref in endpoint.monitor)
        # TLS endpoints verify against the stack's own CA, never with verification off
        assert (endpoint.tls != "none") == (name in TLS_ENDPOINTS), name
        if endpoint.tls != "none":
            assert endpoint.verify and endpoint.ca_file == cfg.tls_dir / "ca.pem", name
    assert {ref.pid_file.name for ref in target.endpoints["imaps-perdition"].monitor} == {
        "perdition-imap4s.pid"}


def test_every_service_renders_with_limits(tmp_path: Path) -> None:
    limits = DovecotLimits(process_limit=50, client_limit=7, service_count=0,
                           mail_max_userip_connections=99)
    written = render(config=StackConfig(run_dir=tmp_path, limits=limits))
    assert all(p.is_file() and p.is_relative_to(tmp_path) for p in written)
    dovecot = (tmp_path / "dovecot/dovecot.conf").read_text()
    for line in ("process_limit = 50", "client_limit = 7", "service_count = 0",
                 "mail_max_userip_connections = 99"):
        assert dovecot.count(line) == 2, line  # imap and pop3
    assert all(line.rstrip().endswith("{") for line in dovecot.splitlines() if "{" in line)
    assert (tmp_path / "dovecot/users").read_text().count("\n") == 1000
    main_cf = (tmp_path / "postfix/conf/main.cf").read_text()
    assert not re.search(r"^[^#\n]*=.*#", main_cf, re.M), "a comment after a value breaks Postfix"
    assert (tmp_path / "target.yaml").is_file()


def test_defaults_leave_dovecot_limits_alone(tmp_path: Path) -> None:
    render(["dovecot"], config=StackConfig(run_dir=tmp_path))
    conf = (tmp_path / "dovecot/dovecot.conf").read_text()
    assert "process_limit" not in conf and "mail_max_userip_connections" not in conf


@pytest.mark.skipif(not shutil.which("doveconf"), reason="dovecot-core is not installed")
def test_dovecot_config_parses(tmp_path: Path) -> None:
    render(["dovecot"], config=StackConfig(run_dir=tmp_path,
                                           limits=DovecotLimits(process_limit=50)))
    out = subprocess.run(["doveconf", "-n", "-c", str(tmp_path / "dovecot/dovecot.conf")],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "process_limit = 50" in out.stdout


@pytest.mark.skipif(not shutil.which("unbound-checkconf"), reason="unbound is not installed")
def test_unbound_config_parses(tmp_path: Path) -> None:
    render(["unbound"], config=StackConfig(run_dir=tmp_path))
    out = subprocess.run(["unbound-checkconf", str(tmp_path / "unbound/unbound.conf")],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_proxy_workers_set_the_mail_proxy_only(tmp_path: Path) -> None:
    render(["nginx", "roundcube"], config=StackConfig(run_dir=tmp_path, proxy_workers=3))
    assert "worker_processes 3;" in (tmp_path / "nginx/nginx.conf").read_text()
    assert "worker_processes 1;" in (tmp_path / "roundcube/nginx.conf").read_text()
    with pytest.raises(ValueError, match="proxy_workers"):
        StackConfig(run_dir=tmp_path, proxy_workers=0)


def test_container_rendering_binds_everywhere_and_reaches_dovecot_by_ip(tmp_path: Path) -> None:
    cfg = StackConfig(run_dir=tmp_path, listen="0.0.0.0", backend="172.28.0.10",
                      smtp_host="postfix")
    render(config=cfg)
    assert "Auth-Server 172.28.0.10" in (tmp_path / "nginx/nginx.conf").read_text()
    assert "listen 0.0.0.0:11143" in (tmp_path / "nginx/nginx.conf").read_text()
    assert "'172.28.0.10:10143'" in (tmp_path / "roundcube/config/config.inc.php").read_text()
    assert "0.0.0.0:10025 inet" in (tmp_path / "postfix/conf/master.cf").read_text()
    assert "--outgoing_server" in SERVICES["perdition"].daemons(cfg)[0].argv


def _compose() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _copy_sources(dockerfile: Path) -> list[str]:
    sources = []
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            sources += line.split()[1:-1]
    return sources


def test_compose_file_references_existing_files() -> None:
    compose = _compose()
    assert compose["services"]
    for name, service in compose["services"].items():
        build = service["build"]
        context = (DOCKER / build["context"]).resolve()
        dockerfile = context / build["dockerfile"]
        assert dockerfile.is_file(), name
        for source in _copy_sources(dockerfile):
            assert (context / source).exists(), f"{name}: COPY {source}"
        for volume in service.get("volumes", []):
            host = volume.split(":")[0]
            if host.startswith("."):
                assert (DOCKER / host).resolve().exists(), f"{name}: {volume}"
            else:
                assert host in compose["volumes"], f"{name}: {volume}"


def test_compose_servers_match_the_stack() -> None:
    compose = _compose()
    servers = {n: s for n, s in compose["services"].items() if "SERVICE" in
               s["build"].get("args", {})}
    assert {s["build"]["args"]["SERVICE"] for s in servers.values()} == set(SERVICES)
    published = {int(p.split(":")[2].split("/")[0]) for s in servers.values()
                 for p in s["ports"]}
    # every port, TLS ones too (one CA shared through a volume: tests/test_deploy_static.py)
    assert published == set(PORTS.values()) - {PORTS["nginx-auth"]}
    assert all(p.startswith("127.0.0.1:") for s in servers.values() for p in s["ports"])
    dovecot_ip = servers["dovecot"]["networks"]["mailswarm"]["ipv4_address"]
    assert f"ARG BACKEND={dovecot_ip}" in (DOCKER / "stack.Dockerfile").read_text()
    for name, service in servers.items():
        for dep in service.get("depends_on", []):
            assert dep in servers or dep == "pki", name  # pki: the one-shot CA maker
    generator = compose["services"]["generator"]
    args = [a.replace("${WORKERS:-2}", "2").replace("${PROFILE:-profiles/smtp-50mps.yaml}",
                                                    "profiles/smtp-50mps.yaml")
            for a in generator["command"]]
    parsed = build_parser().parse_args(args)  # the real CLI accepts the container's command
    assert parsed.workers == 2 and (ROOT / parsed.profile).is_file()


def test_cli_help() -> None:
    for args in ([], ["up"], ["down"], ["status"], ["install"], ["render"], ["run"]):
        out = subprocess.run([sys.executable, "-m", "loadtests.stack", *args, "--help"],
                             capture_output=True, text=True, cwd=ROOT, check=False)
        assert out.returncode == 0, out.stderr
        assert "usage:" in out.stdout
    up_help = subprocess.run([sys.executable, "-m", "loadtests.stack", "up", "--help"],
                             capture_output=True, text=True, cwd=ROOT, check=True).stdout
    for flag in ("--process-limit", "--client-limit", "--service-count",
                 "--max-userip-connections", "--dir"):
        assert flag in up_help


def test_dockerfile_stack_commands_parse() -> None:
    """Every `loadtests.stack` call in stack.Dockerfile is valid for the CLI (parsed, not run)."""
    import argparse
    import shlex

    from loadtests.stack.cli import register

    parser = argparse.ArgumentParser(prog="mailswarm")
    register(parser.add_subparsers(dest="command"))
    text = (DOCKER / "stack.Dockerfile").read_text().replace('\\"', '"')
    values = {"$SERVICE": "dovecot", "$LISTEN": "0.0.0.0", "$BACKEND": "172.28.0.10",
              "$SMTP_HOST": "postfix"}
    calls = re.findall(r"python3 -m loadtests\.stack ([^\\\n&]+?)(?:\"\]|\s*\\|\s*&&|\n)", text)
    assert {c.split()[0] for c in calls} == {"install", "render", "run"}
    for call in calls:
        for var, value in values.items():
            call = call.replace(var, value)
        args = parser.parse_args(["stack", *shlex.split(call)])
        assert args.services == ["dovecot"]
        if args.action != "render":
            assert args.no_deps


def test_exclusive_is_reentrant_here_and_blocks_other_processes(tmp_path: Path) -> None:
    from loadtests.stack import exclusive

    cfg = StackConfig(run_dir=tmp_path / "stack")
    probe = ("import sys; from pathlib import Path; from loadtests.stack import StackBusy, "
             "StackConfig, exclusive\n"
             "try:\n    with exclusive(StackConfig(run_dir=Path(sys.argv[1])), wait=0.3): pass\n"
             "except StackBusy: sys.exit(7)\n")
    with exclusive(cfg), exclusive(cfg):
        held = subprocess.run([sys.executable, "-c", probe, str(cfg.run_dir)], cwd=ROOT,
                              check=False)
        assert held.returncode == 7
    free = subprocess.run([sys.executable, "-c", probe, str(cfg.run_dir)], cwd=ROOT, check=False)
    assert free.returncode == 0


def test_bare_down_elsewhere_waits_for_the_holder(tmp_path: Path) -> None:
    from loadtests.stack import down, exclusive

    cfg = StackConfig(run_dir=tmp_path / "stack")
    probe = ("import sys; from pathlib import Path; from loadtests.stack import StackConfig, down\n"
             "from loadtests.stack.session import StackBusy, wait_while_held_elsewhere\n"
             "try:\n    wait_while_held_elsewhere(StackConfig(run_dir=Path(sys.argv[1])), 0.3)\n"
             "except StackBusy: sys.exit(7)\n")
    with exclusive(cfg):
        down(config=cfg)  # the holder itself is never blocked
        held = subprocess.run([sys.executable, "-c", probe, str(cfg.run_dir)], cwd=ROOT,
                              check=False)
        assert held.returncode == 7


# --- delivery concurrency (S8) and the maildir layout (S7) -----------------------------------

def test_delivery_concurrency_options_reach_postfix(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "loadtests.stack", "render", "postfix", "--dir",
                          str(tmp_path), "--delivery-concurrency", "3",
                          "--delivery-processes", "7"],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    assert out.returncode == 0, out.stderr
    main_cf = (tmp_path / "postfix/conf/main.cf").read_text()
    assert "virtual_destination_concurrency_limit = 3\n" in main_cf
    virtual = [line.split() for line in (tmp_path / "postfix/conf/master.cf").read_text()
               .splitlines() if line.startswith("virtual ")]
    assert virtual == [["virtual", "unix", "-", "n", "n", "-", "7", "virtual"]]
    render(["postfix"], config=StackConfig(run_dir=tmp_path / "default"))
    assert "concurrency_limit" not in (tmp_path / "default/postfix/conf/main.cf").read_text()
    with pytest.raises(ValueError, match="destination_limit"):
        from loadtests.stack.settings import DeliveryConcurrency
        DeliveryConcurrency(destination_limit=0)


def test_hashed_layout_is_one_path_for_postfix_dovecot_and_the_tracker(tmp_path: Path) -> None:
    from loadtests.delivery.maildir import MaildirFinder

    cfg = StackConfig(run_dir=tmp_path, layout="hashed", users=1200)
    render(["postfix", "dovecot"], config=cfg)
    vmailbox = (tmp_path / "postfix/conf/vmailbox").read_text().splitlines()
    assert len(vmailbox) == 1200 and vmailbox[122] == \
        "user0123@example.test example.test/23/01/user0123/"
    conf = (tmp_path / "dovecot/dovecot.conf").read_text()
    assert f"mail_location = maildir:{tmp_path}/mail/%d/%-2.2n/%-4.2n/%n\n" in conf
    assert (tmp_path / "dovecot/users").read_text().count("\n") == 1200
    assert yaml.safe_load((tmp_path / "target.yaml").read_text())["users"]["count"] == 1200
    finder = MaildirFinder(f"{tmp_path}/mail/{{domain}}/{{local[-2:]}}/{{local[-4:-2]}}/{{local}}")
    assert Path(finder.path("user0123@example.test")) == cfg.maildir("user0123")
    flat = StackConfig(run_dir=tmp_path)
    assert flat.maildir("user0123") == tmp_path / "mail/example.test/user0123"


@pytest.mark.parametrize("layout", ["flat", "hashed"])
def test_provisioning_creates_every_maildir_once(tmp_path: Path, layout: str) -> None:
    from loadtests.stack.layout import provision, provisioned

    cfg = StackConfig(run_dir=tmp_path, layout=layout, users=250)  # type: ignore[arg-type]
    assert provision(cfg) > 0 and provisioned(cfg)
    boxes = [p.parent for p in (tmp_path / "mail").rglob("new")]
    assert len(boxes) == 250 and cfg.maildir("user0250") in boxes
    assert all((box / "cur").is_dir() and (box / "tmp").is_dir() for box in boxes)
    assert provision(cfg) == 0.0  # already there
    other = StackConfig(run_dir=tmp_path, layout="flat" if layout == "hashed" else "hashed",
                        users=10)
    provision(other)  # another layout starts the tree again
    assert len(list((tmp_path / "mail").rglob("new"))) == 10


@pytest.mark.skipif(not shutil.which("doveconf"), reason="dovecot-core is not installed")
def test_dovecot_config_parses_with_the_hashed_layout(tmp_path: Path) -> None:
    render(["dovecot"], config=StackConfig(run_dir=tmp_path, layout="hashed"))
    out = subprocess.run(["doveconf", "-n", "-c", str(tmp_path / "dovecot/dovecot.conf")],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "%-2.2n/%-4.2n/%n" in out.stdout


_INSTALL_AT_ONCE = """
import sys, threading
from pathlib import Path
from loadtests.stack import StackConfig
from loadtests.stack.tls import install_service_key
cfg = StackConfig(run_dir=Path(sys.argv[1]))
errors = []
start = threading.Barrier(4)

def install():
    start.wait()
    try:
        for _ in range(300):
            install_service_key(cfg, "root")
    except Exception as exc:
        errors.append(exc)

sys.setswitchinterval(1e-6)  # threads interleave between any two steps of an install
threads = [threading.Thread(target=install) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(repr(errors[:3]))
"""


def test_service_key_copies_installed_at_once_do_not_collide(tmp_path: Path) -> None:
    from loadtests.stack.tls import service_key

    cfg = StackConfig(run_dir=tmp_path)
    cfg.tls_dir.mkdir(parents=True)
    key = b"-----BEGIN PRIVATE KEY-----\n" + bytes(range(48, 112)) * 40 + b"\n"
    (cfg.tls_dir / "server.key").write_bytes(key)
    # nginx and Roundcube share www-data's copy; "root" is a user every machine has. OS threads
    # in a process of its own: this one is gevent-patched (its threads would take turns)
    done = subprocess.run([sys.executable, "-c", _INSTALL_AT_ONCE, str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", (done.stdout, done.stderr)
    copy = service_key(cfg, "root")
    assert copy.read_bytes() == key and copy.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in cfg.tls_dir.iterdir()) == sorted(["server.key", copy.name])
