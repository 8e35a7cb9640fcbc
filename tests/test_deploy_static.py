"""Distributed-run deployment files without running them: docker/compose.yaml's `master` and
`worker` services and the Kubernetes manifests in deploy/kubernetes/.

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
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from loadtests.cli import _load_inputs, build_parser
from loadtests.profiles import check_against_target, load_profile
from loadtests.stack.settings import PORTS
from loadtests.stack.targetfile import ENDPOINTS
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


def test_compose_target_is_the_stack_at_its_container_addresses() -> None:
    services = _compose()["services"]
    target = load_target(DOCKER / "target.yaml")
    stack = load_target(ROOT / "profiles/targets/stack.yaml")
    assert set(target.endpoints) == set(ENDPOINTS) <= set(stack.endpoints)  # TLS: host only
    assert target.users == stack.users and target.secret() == stack.secret()
    for name, endpoint in target.endpoints.items():
        server = ENDPOINTS[name][1][0]
        assert endpoint.host == services[server]["networks"]["mailswarm"]["ipv4_address"], name
        assert endpoint.port == PORTS[name] and endpoint.protocol == stack.endpoints[name].protocol
    master = services["master"]
    assert "./target.yaml:/opt/mailswarm/docker/target.yaml:ro" in master["volumes"]
    assert set(master["depends_on"]) == {n for n, s in services.items()
                                         if "SERVICE" in s["build"].get("args", {})}


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
