"""The operator as a platform team installs it on the real node: `helm install` of helm/modelwerk
with the operator image built here (imported into the node's containerd, `pullPolicy: Never`),
the chart's ServiceAccount and RBAC. Helpers shared by tests/node/test_installed.py."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.cluster import ROOT, get, get_list, kubectl, wait_for
from tests.node.conftest import NODE_ANNOTATIONS, SESSION_PREFIX, Image
from tests.unit.test_chart import gen_chart

CHART = ROOT / "helm" / "modelwerk"
RELEASE = "mw"  # full name mw-modelwerk
# Not through any proxy of the environment: ClusterIPs are this machine's.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def helm(*args: str, timeout: float = 240) -> str:
    proc = subprocess.run(
        [gen_chart.helm_binary(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def real_node_namespace(suffix: str) -> str:
    """A namespace enforcing Pod Security `restricted` whose pods go to the real node."""
    name = f"{SESSION_PREFIX}{suffix}{uuid.uuid4().hex[:6]}"
    kubectl("create", "namespace", name)
    kubectl(
        "label", "namespace", name,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )  # fmt: skip
    kubectl("annotate", "namespace", name, *(f"{k}={v}" for k, v in NODE_ANNOTATIONS.items()))
    wait_for("default service account", lambda: get("serviceaccount", "default", name))
    return name


def split(ref: str) -> tuple[str, str]:
    repository, _, tag = ref.rpartition(":")
    return repository, tag


@dataclass(frozen=True)
class Installed:
    namespace: str
    operator: Image

    @property
    def fullname(self) -> str:
        return f"{RELEASE}-modelwerk"

    @property
    def service_account(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.fullname}"

    def install(self, command: str, serving: Image, *sets: str) -> None:
        """`helm install|upgrade`: one replica with leader election (the Lease RBAC is used),
        images that are never pulled (they exist only in the node's containerd)."""
        op_repo, op_tag = split(self.operator.ref)
        srv_repo, srv_tag = split(serving.ref)
        values = [
            f"image.repository={op_repo}",
            "image.pullPolicy=Never",
            f"servingImage.repository={srv_repo}",
            "replicaCount=1",
            "resources.requests.cpu=50m",
            *sets,
        ]
        args = [command, RELEASE, str(CHART), "-n", self.namespace, "--skip-crds"]
        args += [
            "--set-string",
            f"image.tag={op_tag}",
            "--set-string",
            f"servingImage.tag={srv_tag}",
        ]
        for value in values:
            args += ["--set", value]
        helm(*args, "--wait", "--timeout", "180s")
        self.wait_ready()

    def pods(self) -> list[dict[str, Any]]:
        return get_list("pods", self.namespace, f"app.kubernetes.io/instance={RELEASE}")

    def wait_ready(self) -> dict[str, Any]:
        """The one operator pod of the current ReplicaSet, Ready by its readiness probe."""

        def ready() -> dict[str, Any] | None:
            pods = [p for p in self.pods() if not p["metadata"].get("deletionTimestamp")]
            if len(pods) != 1:
                return None
            statuses = pods[0]["status"].get("containerStatuses") or []
            return pods[0] if statuses and all(s["ready"] for s in statuses) else None

        return wait_for("the chart's operator pod Ready", ready, timeout=180, interval=1)

    def metrics(self) -> str:
        service = get("service", self.fullname, self.namespace)
        assert service is not None
        ip = service["spec"]["clusterIP"]
        (port,) = [p["port"] for p in service["spec"]["ports"] if p["name"] == "http-metrics"]
        with DIRECT.open(f"http://{ip}:{port}/metrics", timeout=10) as response:
            return str(response.read().decode())

    def leads(self) -> bool:
        return "modelwerk_leader 1.0" in self.metrics()


def local_operators(kubeconfig: str) -> list[int]:
    """Processes on this machine running `modelwerk run` against this cluster outside its pods:
    the tier's claim is that the chart's pod is the only operator."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
            cgroups = (entry / "cgroup").read_text()
        except OSError:
            continue
        if b"modelwerk" not in b" ".join(argv) or b"run" not in argv:
            continue
        if "kubepods" in cgroups:
            continue  # a pod of the real node (the chart's operator)
        if f"KUBECONFIG={kubeconfig}".encode() in environ or kubeconfig.encode() in argv:
            found.append(int(entry.name))
    return found


def predict(namespace: str, name: str, rows: list[list[float]]) -> list[Any]:
    service = get("service", name, namespace)
    assert service is not None
    ip, port = service["spec"]["clusterIP"], service["spec"]["ports"][0]["port"]
    request = urllib.request.Request(
        f"http://{ip}:{port}/v1/models/{name}:predict",
        data=json.dumps({"instances": rows}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with DIRECT.open(request, timeout=10) as response:
        body = json.loads(response.read())
    predictions: list[Any] = body["predictions"]
    return predictions


def operator_image() -> Image:
    proc = subprocess.run(
        [str(ROOT / "hack" / "images.sh"), "refs", "operator", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"operator image not built: hack/images.sh import operator ({proc.stderr})"
        )
    (found,) = json.loads(proc.stdout)
    return Image(found["ref"], found["digest"])


def kubeconfig() -> str:
    return os.environ["KUBECONFIG"]
