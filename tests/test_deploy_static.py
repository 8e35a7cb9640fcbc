"""Deployment files without running them: docker/compose.yaml (its `master` and `worker`
services, the TLS endpoints and the shared test CA), docker/target.yaml, the stack image's
build-time render, and the Kubernetes manifests in deploy/kubernetes/.

No Docker engine or cluster runs on these machines, so the files are checked statically: they
parse, the Kubernetes objects validate against the Kubernetes API schemas bundled with
`kubernetes-validate` (offline, strict: unknown fields fail), every mailswarm command line in
them is accepted by the real CLI parser and input checks, the job's profile and target load,
and the names that tie the pieces together (service, ports, labels, volumes, worker count)
agree. The container wrappers' shell scripts are run with a stand-in `mailswarm`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from loadtests.cli import _load_inputs, build_parser
from loadtests.profiles import check_against_target, load_profile
from loadtests.stack import SERVICES, StackConfig
from loadtests.stack.services.dovecot import postfix_auth_socket
from loadtests.stack.settings import PORTS
from loadtests.stack.targetfile import ENDPOINTS, TLS_ENDPOINTS
from loadtests.stack.tls import CERT_NAMES
from loadtests.targets import load_target

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
KUBE = ROOT / "deploy/kubernetes"
# The oldest Kubernetes minor whose kubectl has kustomize v5 (`labels:`), and the newest bundled.
KUBE_VERSIONS = ("1.27", "latest")


# --- docker/compose.yaml -------------------------------------------------------------------

def _compose() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _defaults(value: str) -> str:
    """A compose value with each `${VAR:-default}` replaced by its default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def _parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)  # SystemExit on anything the real CLI refuses


def test_compose_master_and_workers_parse_and_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    services = _compose()["services"]
    master, worker = services["master"], services["worker"]
    assert master["profiles"] == worker["profiles"] == ["distributed"]
    assert master["image"] == worker["image"] and master["build"] == worker["build"]
    run = _parse([_defaults(a) for a in master["command"]])
    join = _parse([_defaults(a) for a in worker["command"]])
    assert run.command == "run" and run.master and run.allow_remote
    assert join.command == "worker" and join.allow_remote
    assert run.expect_workers == int(_defaults(worker["deploy"]["replicas"])) == 2
    assert run.master_bind == ("0.0.0.0", 5557)
    assert join.master == ("master", run.master_bind[1])  # the master's service name
    # the Locust port stays on the private network; the web UI only on the host's loopback
    published = [p for s in services.values() for p in s.get("ports", [])]
    assert not any(p.split(":")[-1].split("/")[0] == "5557" for p in published)
    assert master["ports"] == ["127.0.0.1:8089:8089"] and run.web == "0.0.0.0:8089"
    assert master["networks"] == worker["networks"] == ["mailswarm"]
    # the same input checks `mailswarm run` makes before sending anything, from the image's
    # working directory (the repository's layout: profiles/ and docker/target.yaml mounted)
    monkeypatch.chdir(ROOT)
    profile, target = _load_inputs(run)
    assert target is not None and profile.scenarios


def _stack_dockerfile_env(name: str) -> str:
    match = re.search(rf"\b{name}=(\S+)", (DOCKER / "stack.Dockerfile").read_text())
    assert match, name
    return match.group(1)


def _container_config() -> StackConfig:
    """What the server containers render: stack.Dockerfile's run folder and addresses."""
    return StackConfig(run_dir=Path(_stack_dockerfile_env("MAILSWARM_STACK_DIR")),
                       listen=_stack_dockerfile_env("LISTEN"),
                       backend=_stack_dockerfile_env("BACKEND"),
                       smtp_host=_stack_dockerfile_env("SMTP_HOST"))


def _servers(services: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The compose services that run one stack server (build arg SERVICE)."""
    return {n: s for n, s in services.items() if "SERVICE" in s.get("build", {}).get("args", {})}


def _mounts(service: dict[str, Any], volume: str) -> list[tuple[Path, bool]]:
    """Where a service mounts a named volume: (path in the container, read-only)."""
    out = []
    for spec in service.get("volumes", []):
        parts = spec.split("#")[0].strip().split(":")
        if parts[0] == volume:
            out.append((Path(parts[1]), parts[2:] == ["ro"]))
    return out


def _server_of(name: str) -> str:
    return TLS_ENDPOINTS[name].services[0] if name in TLS_ENDPOINTS else ENDPOINTS[name][1][0]


def _listens_on(server: str, port: int, cfg: StackConfig) -> bool:
    """The port is one of the server's ports and its rendered config or command line binds it."""
    service = SERVICES[server]
    text = "\n".join(service.files(cfg).values()) + "\n".join(
        " ".join(d.argv) for d in service.daemons(cfg))
    return port in service.ports().values() and re.search(rf"\b{port}\b", text) is not None


def test_compose_target_is_the_stack_at_its_container_addresses() -> None:
    services = _compose()["services"]
    target = load_target(DOCKER / "target.yaml")
    stack = load_target(ROOT / "profiles/targets/stack.yaml")
    assert set(target.endpoints) == set(stack.endpoints) == set(ENDPOINTS) | set(TLS_ENDPOINTS)
    assert target.users == stack.users and target.secret() == stack.secret()
    cfg = _container_config()
    for name, endpoint in target.endpoints.items():
        server = _server_of(name)
        there = stack.endpoints[name]
        assert endpoint.host == services[server]["networks"]["mailswarm"]["ipv4_address"], name
        assert (endpoint.port, endpoint.protocol, endpoint.tls) == (
            there.port, there.protocol, there.tls), name
        port = PORTS[TLS_ENDPOINTS[name].port] if name in TLS_ENDPOINTS else PORTS[name]
        assert endpoint.port == port, name
        assert _listens_on(server, endpoint.port, cfg), f"{name}: {server} has no {port}"
        if endpoint.tls != "none":  # verified, against the stack's own CA, by the cert's name
            assert endpoint.verify and endpoint.ca_file == cfg.tls_dir / "ca.pem", name
            assert endpoint.server_name in CERT_NAMES and endpoint.host not in CERT_NAMES, name
    master = services["master"]
    assert "./target.yaml:/opt/mailswarm/docker/target.yaml:ro" in master["volumes"]
    assert set(master["depends_on"]) == set(_servers(services))


def test_listening_check_can_fail() -> None:
    cfg = _container_config()
    assert _listens_on("dovecot", PORTS["imaps"], cfg)
    assert not _listens_on("dovecot", PORTS["imaps-nginx"], cfg)
    assert not _listens_on("nginx", PORTS["nginx-auth"] + 1, cfg)


def test_compose_servers_publish_every_port_they_listen_on() -> None:
    servers = _servers(_compose()["services"])
    for name, service in servers.items():
        published = {int(p.split(":")[2].split("/")[0]) for p in service["ports"]}
        internal = {PORTS["nginx-auth"]}  # nginx's auth_http answers only Dovecot's lookups
        assert published == set(SERVICES[name].ports().values()) - internal, name
        assert all(p.startswith("127.0.0.1:") for p in service["ports"]), name
        host = {p.split(":")[1] for p in service["ports"]}
        assert host == {str(p) for p in published}, f"{name}: the same port on the host"


def test_compose_makes_the_ca_once_and_shares_it(tmp_path: Path) -> None:
    compose = _compose()
    services = compose["services"]
    assert "tls" in compose["volumes"]
    # the `pki` service: the real CLI's `stack render`, whose run folder's tls/ is the volume
    pki = services["pki"]
    render = _parse(pki["command"])
    assert render.command == "stack" and render.action == "render"
    tls_dir = StackConfig(run_dir=Path(render.dir)).tls_dir
    assert _mounts(pki, "tls") == [(tls_dir, False)]
    assert pki["image"] == services["master"]["image"]  # the generator image: it has trustme
    # run here into a folder of ours: it makes the CA, and a second start keeps it
    argv = [str(tmp_path) if a == render.dir else a for a in pki["command"]]
    mailswarm = [sys.executable, "-c",
                 "import sys; from loadtests.cli import main; sys.exit(main())"]
    made = []
    for _ in range(2):
        out = subprocess.run([*mailswarm, *argv], capture_output=True, text=True, check=False,
                             cwd=ROOT)
        assert out.returncode == 0, out.stderr
        made.append((tmp_path / "tls/ca.pem").read_bytes())
    assert made[0] == made[1] and b"BEGIN CERTIFICATE" in made[0]
    # every server reads that volume where `stack run` in its container looks for the PKI,
    # and starts only once the CA is there
    cfg = _container_config()
    assert cfg.tls_dir == tls_dir
    for name, server in _servers(services).items():
        assert _mounts(server, "tls") == [(cfg.tls_dir, False)], name
        assert server["depends_on"]["pki"] == {"condition": "service_completed_successfully"}
    # the generator (host network, profiles/targets/stack.yaml) and master/workers
    # (docker/target.yaml) find ca.pem at their target file's `ca_file`, read-only
    for name, target_file in (("generator", ROOT / "profiles/targets/stack.yaml"),
                              ("master", DOCKER / "target.yaml"),
                              ("worker", DOCKER / "target.yaml")):
        target = load_target(target_file)
        ca_files = {e.ca_file for e in target.endpoints.values() if e.tls != "none"}
        assert len(ca_files) == 1, name
        [ca_file] = ca_files
        assert ca_file.name == "ca.pem"
        assert _mounts(services[name], "tls") == [(ca_file.parent, True)], name
    assert services["generator"]["depends_on"]["pki"]["condition"] == \
        "service_completed_successfully"
    generator = _parse([_defaults(a) for a in services["generator"]["command"]])
    assert generator.command == "run" and generator.target == Path(
        "profiles/targets/stack.yaml")


def test_postfix_reaches_dovecots_auth_socket_across_containers() -> None:
    """Submission's AUTH: Postfix asks Dovecot's socket, which lives in the dovecot container;
    its folder is a volume both mount, and its owner (`postfix`) has fixed ids in every image."""
    services = _compose()["services"]
    folder = postfix_auth_socket(_container_config()).parent
    [(at_dovecot, _)] = _mounts(services["dovecot"], "dovecot-run")
    [(at_postfix, _)] = _mounts(services["postfix"], "dovecot-run")
    assert at_dovecot == at_postfix == folder
    dockerfile = (DOCKER / "stack.Dockerfile").read_text()
    ids = re.findall(r"(?:groupadd|useradd) --system (?:--uid (\d+) )?--gid (\d+)", dockerfile)
    assert ids and {i for pair in ids for i in pair if i} == {ids[0][1]}
    assert re.search(r"useradd [^\n]*\\\n[^\n]* postfix\n", dockerfile)
    assert dockerfile.index("useradd") < dockerfile.index("loadtests.stack install")


def test_stack_image_renders_with_only_the_files_it_copies(tmp_path: Path) -> None:
    """The build-time `stack render` (which makes a PKI) with nothing of loadtests but what
    stack.Dockerfile copies; the third-party modules it imports are the ones the image installs."""
    dockerfile = DOCKER / "stack.Dockerfile"
    text = dockerfile.read_text()
    image = tmp_path / "opt"
    for line in text.splitlines():
        if line.startswith("COPY "):
            *sources, dest = line.split()[1:]
            for source in sources:
                to = image / dest / Path(source).name if dest.endswith("/") else image / dest
                to.parent.mkdir(parents=True, exist_ok=True)
                copy = shutil.copytree if (ROOT / source).is_dir() else shutil.copyfile
                copy(ROOT / source, to)
    ignore = (DOCKER / "stack.Dockerfile.dockerignore").read_text().splitlines()
    for line in text.splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert f"!{source}" in ignore or f"!{source}/**" in ignore, source
    probe = f"""
import runpy, sys
# only the copied tree: no editable install of the whole package behind it
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
sys.argv = ["stack", "render", "postfix", "--dir", {str(tmp_path / "run")!r},
            "--listen", "0.0.0.0", "--backend", "172.28.0.10", "--smtp-host", "postfix"]
try:
    runpy.run_module("loadtests.stack", run_name="__main__")
except SystemExit as exc:
    assert not exc.code, exc.code
installed = {{name.split(".")[0] for name, module in list(sys.modules.items())
             if "-packages" in (getattr(module, "__file__", None) or "")}}
print(" ".join(sorted(installed)))
"""
    out = subprocess.run([sys.executable, "-c", probe], cwd=image, capture_output=True,
                         text=True, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    third_party = {m for m in out.stdout.splitlines()[-1].split()
                   if m != "_distutils_hack" and "__editable__" not in m}  # venv plumbing
    # python3-yaml from Debian; trustme (and cryptography, idna, cffi under it) from pip
    assert third_party <= {"yaml", "_yaml", "trustme", "cryptography", "idna", "cffi",
                           "_cffi_backend"}, third_party
    assert "python3-yaml" in text and '"trustme>=1.1,<2"' in text
    assert (tmp_path / "run/tls/ca.pem").is_file()


# --- deploy/kubernetes ---------------------------------------------------------------------

def _manifests() -> dict[str, dict[str, Any]]:
    """`Kind/name` -> object, for every manifest file but the kustomization."""
    objects = {}
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            objects[f"{doc['kind']}/{doc['metadata']['name']}"] = doc | {"_file": path.name}
    return objects


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _kube_argv(container: dict[str, Any], values: dict[str, str]) -> list[str]:
    """The container's mailswarm argv: `args` with Kubernetes' `$(VAR)` references expanded from
    the container's env (values given for those the cluster fills in)."""
    env = {e["name"]: e.get("value", values.get(e["name"])) for e in container.get("env", [])}
    refs = {m for a in container["args"] for m in re.findall(r"\$\((\w+)\)", a)}
    assert refs <= env.keys(), f"undefined: {refs - env.keys()}"
    return [re.sub(r"\$\((\w+)\)", lambda m: str(env[m.group(1)]), a) for a in container["args"]]


def test_kubernetes_manifests_validate_against_the_api_schemas() -> None:
    objects = _manifests()
    assert {o.split("/")[0] for o in objects} == {
        "Namespace", "ConfigMap", "PersistentVolumeClaim", "Deployment", "Service",
        "NetworkPolicy"}
    for version in KUBE_VERSIONS:
        if version == "latest":
            version = kubernetes_validate.utils.latest_version()
        for name, obj in objects.items():
            obj = {k: v for k, v in obj.items() if k != "_file"}
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{name} ({version}): {'.'.join(map(str, exc.path))}: {exc.message}")


def test_kubernetes_validation_can_fail() -> None:
    deployment = dict(_manifests()["Deployment/mailswarm-worker"])
    deployment.pop("_file")
    deployment["spec"] = deployment["spec"] | {"replica": 2}  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[0], strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    objects = _manifests()
    assert sorted(kustomization["resources"]) == sorted({o["_file"] for o in objects.values()})
    assert f"Namespace/{kustomization['namespace']}" in objects
    images = {i["name"] for i in kustomization["images"]}
    assert {_container(o)["image"] for o in objects.values() if o["kind"] == "Deployment"} \
        == images


def test_kubernetes_job_loads_and_master_and_workers_parse(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    objects = _manifests()
    master_deploy = objects["Deployment/mailswarm-master"]
    worker_deploy = objects["Deployment/mailswarm-worker"]
    master, worker = _container(master_deploy), _container(worker_deploy)
    pod = master_deploy["spec"]["template"]["spec"]
    mounts = {m["name"]: m["mountPath"] for m in master["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}

    # the ConfigMap's profile and target, written where the master's mount puts them
    job = objects[f"ConfigMap/{volumes['job']['configMap']['name']}"]["data"]
    for key, text in job.items():
        (tmp_path / key).write_text(text)
    profile = load_profile(tmp_path / "profile.yaml")
    target = load_target(tmp_path / "target.yaml")
    assert check_against_target(profile, target) == []
    # the password only through password_env, filled from a Secret in the master alone
    assert target.password is None and target.password_env
    secret_env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in master["env"]
                  if "secretKeyRef" in e.get("valueFrom", {})}
    assert list(secret_env) == [target.password_env]
    assert "env" not in worker and "volumeMounts" not in worker  # workers are sent the job

    argv = _kube_argv(master, {"POD_NAME": "mailswarm-master-6d4f9-x2x7q"})
    run = _parse(argv)
    assert run.command == "run" and run.master and run.allow_remote and run.quiet
    assert str(run.profile) == f"{mounts['job']}/profile.yaml"
    assert str(run.target) == f"{mounts['job']}/target.yaml"
    assert run.out == Path(mounts["results"]) / "mailswarm-master-6d4f9-x2x7q"
    claim = volumes["results"]["persistentVolumeClaim"]["claimName"]
    assert f"PersistentVolumeClaim/{claim}" in objects
    # the same input checks `mailswarm run` makes, on the files written above
    run.profile, run.target, run.out = (tmp_path / "profile.yaml", tmp_path / "target.yaml",
                                        tmp_path / "out")
    monkeypatch.setenv(target.password_env, "not-the-real-one")
    loaded_profile, loaded_target = _load_inputs(run)
    assert loaded_profile.name == profile.name and loaded_target is not None

    join = _parse(_kube_argv(worker, {}))
    assert join.command == "worker" and join.allow_remote
    assert run.expect_workers == worker_deploy["spec"]["replicas"] == 2
    assert master_deploy["spec"]["replicas"] == 1
    assert master_deploy["spec"]["strategy"]["type"] == "Recreate"

    # workers find the master through its Service, on the port it binds
    service = objects[f"Service/{join.master[0]}"]
    ports = {p["name"]: p for p in service["spec"]["ports"]}
    container_ports = {p["name"]: p["containerPort"] for p in master["ports"]}
    assert ports["locust"]["port"] == join.master[1] == run.master_bind[1] \
        == container_ports[ports["locust"]["targetPort"]]
    assert run.web == f"0.0.0.0:{container_ports[ports['web']['targetPort']]}"
    assert service["spec"]["type"] == "ClusterIP"
    master_labels = master_deploy["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= master_labels.items()
    # only workers may reach the master's Locust port
    policy = objects["NetworkPolicy/mailswarm-master"]["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= master_labels.items()
    worker_labels = worker_deploy["spec"]["template"]["metadata"]["labels"]
    locust_rule = next(r for r in policy["ingress"]
                       if {"protocol": "TCP", "port": run.master_bind[1]} in r["ports"])
    [source] = locust_rule["from"]
    assert source["podSelector"]["matchLabels"].items() <= worker_labels.items()
    assert not source["podSelector"]["matchLabels"].items() <= master_labels.items()
    # sized for one worker process: ~19,000 sockets
    resources = worker["resources"]
    assert resources["requests"]["memory"] == "1Gi" and resources["limits"]["memory"] == "2Gi"


# --- the containers' shell wrappers ----------------------------------------------------------

_STAND_IN = """#!/bin/sh
echo "mailswarm $*"
if [ -n "$EXIT_AT_ONCE" ]; then exit 3; fi
trap 'echo "got TERM"; kill $!; exit 0' TERM
sleep 30 &
wait $!
"""


def _wrapper(name: str, tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    container = _container(_manifests()[f"Deployment/mailswarm-{name}"])
    command = container["command"]
    assert command[:2] == ["sh", "-c"] and command[3] == "mailswarm"
    assert 'mailswarm "$@"' in command[2]
    stand_in = tmp_path / "mailswarm"
    stand_in.write_text(_STAND_IN)
    stand_in.chmod(0o755)
    env = os.environ | env | {"PATH": f"{tmp_path}:{os.environ['PATH']}"}
    return subprocess.Popen([*command, *container["args"][:2]], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[str], after: float) -> str:
    time.sleep(after)
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the wrapper did not stop on SIGTERM")
    assert proc.returncode == 0
    return out


def test_master_wrapper_passes_sigterm_on_to_the_run(tmp_path: Path) -> None:
    out = _stop(_wrapper("master", tmp_path), 0.5)
    assert out.splitlines() == ["mailswarm run /etc/mailswarm/profile.yaml", "got TERM"]


def test_master_wrapper_idles_after_the_run_until_stopped(tmp_path: Path) -> None:
    out = _stop(_wrapper("master", tmp_path, EXIT_AT_ONCE="1"), 0.5)
    assert out.splitlines() == ["mailswarm run /etc/mailswarm/profile.yaml",
                                "mailswarm run exited with status 3; results in /results (pod "
                                "kept for copying)"]


def test_worker_wrapper_rejoins_after_its_run(tmp_path: Path) -> None:
    out = _stop(_wrapper("worker", tmp_path, EXIT_AT_ONCE="1"), 0.5)
    assert out.splitlines() == ["mailswarm worker --master",
                                "mailswarm worker exited with status 3; rejoining in 5 s"]
