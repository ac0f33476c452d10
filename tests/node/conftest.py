"""Fixtures for the real-node tier: the cluster whose real node runs (hack/node.sh), namespaces
that enforce Pod Security `restricted` and whose pods land on that node, the images built here
(hack/images.sh) as the node's containerd knows them, and the operator as a real process.

Nothing is simulated here: no KWOK_SIM_* variables, the kubelet, containerd and runc run the pods.
The tier skips, with the reason, when no real node is up; hack/test.sh brings one up.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.cluster import ROOT, get, kubectl, models_volume, wait_for
from tests.integration.conftest import OperatorProcess, wait_established

NODE_CLUSTER = os.environ.get("MODELWERK_NODE_CLUSTER", "modelwerk-node")
NODE_LABEL = "modelwerk.io/real-node"
# What opts a namespace in to the real node (PodNodeSelector and PodTolerationRestriction
# admission, enabled by hack/cluster.sh with MODELWERK_REAL_NODE=1): no pod template changes.
NODE_ANNOTATIONS = {
    "scheduler.alpha.kubernetes.io/node-selector": f"{NODE_LABEL}=true",
    "scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps(
        [{"key": NODE_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}]
    ),
}
SESSION_PREFIX = f"mwn{uuid.uuid4().hex[:4]}-"


@dataclass(frozen=True)
class RealNode:
    kubeconfig: str
    containerd: str
    name: str

    def ctr(self, *args: str) -> str:
        return subprocess.run(
            ["ctr", "--address", self.containerd, "-n", "k8s.io", *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout


def _cluster_env() -> dict[str, str]:
    out = subprocess.run(
        [str(ROOT / "hack" / "cluster.sh"), "env"],
        env={**os.environ, "MODELWERK_CLUSTER": NODE_CLUSTER},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    values: dict[str, str] = {}
    for line in out.splitlines():
        for word in line.removeprefix("export ").split():
            key, _, value = word.partition("=")
            values[key] = value
    return values


@pytest.fixture(scope="session")
def real_node() -> RealNode:
    env = _cluster_env()
    containerd = env.get("MODELWERK_CONTAINERD_ADDRESS")
    if not containerd:
        pytest.skip(
            f"no real node up in cluster {NODE_CLUSTER}: start one with "
            f"MODELWERK_CLUSTER={NODE_CLUSTER} MODELWERK_REAL_NODE=1 hack/cluster.sh up"
        )
    os.environ["KUBECONFIG"] = env["KUBECONFIG"]
    os.environ["PATH"] = f"{env['PATH'].split(':')[0]}:{os.environ['PATH']}"
    os.environ["MODELWERK_CONTAINERD_ADDRESS"] = containerd
    nodes = json.loads(kubectl("get", "nodes", "-l", f"{NODE_LABEL}=true", "-o", "json"))["items"]
    assert len(nodes) == 1, [n["metadata"]["name"] for n in nodes]
    return RealNode(env["KUBECONFIG"], containerd, nodes[0]["metadata"]["name"])


@pytest.fixture(scope="session")
def crds(real_node: RealNode) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    wait_established(ROOT / "crds")


@pytest.fixture
def namespace(real_node: RealNode) -> Iterator[str]:
    """A fresh namespace enforcing Pod Security `restricted`, whose pods go to the real node."""
    name = f"{SESSION_PREFIX}{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    kubectl(
        "label",
        "namespace",
        name,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )
    kubectl("annotate", "namespace", name, *(f"{k}={v}" for k, v in NODE_ANNOTATIONS.items()))
    wait_for("default service account", lambda: get("serviceaccount", "default", name))
    yield name
    # Waits, so the kubelet has stopped the pods before the next test (2 cores, one node).
    kubectl("delete", "namespace", name, "--timeout=120s", check=False, timeout=150)


@pytest.fixture(scope="session")
def operator(
    real_node: RealNode,
    crds: None,
    images: dict[str, Image],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """`modelwerk run` on this machine, serving with the model-server image built here."""
    proc = OperatorProcess(
        real_node.kubeconfig,
        tmp_path_factory.mktemp("operator") / "operator.log",
        "--namespace",
        f"{SESSION_PREFIX}*",
        env={"MODELWERK_SERVING_IMAGE": images["model-server"].ref},
    )
    proc.start()
    yield proc
    if proc.proc is not None:
        proc.stop()


def log_dir() -> Path:
    return Path(os.environ.get("MODELWERK_CACHE") or Path.home() / ".cache" / "modelwerk") / "node"


@dataclass(frozen=True)
class Image:
    ref: str
    digest: str

    @property
    def image_id(self) -> str:
        """What the kubelet reports as a pod's imageID: the repository at the manifest digest."""
        return f"{self.ref.rsplit(':', 1)[0]}@{self.digest}"


@pytest.fixture(scope="session")
def images(real_node: RealNode) -> dict[str, Image]:
    """The trainer and model-server images built here (hack/images.sh), as the node has them."""
    script = ROOT / "hack" / "images.sh"
    proc = subprocess.run(
        [str(script), "refs", "trainer", "model-server", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"images not built: run hack/images.sh import ({proc.stderr.strip()})")
    found = {r["id"]: Image(r["ref"], r["digest"]) for r in json.loads(proc.stdout)}
    have = set(real_node.ctr("images", "ls", "-q").split())
    for image in found.values():
        assert {image.ref, image.image_id} <= have, (
            f"{image.ref} not imported: hack/images.sh import"
        )
    return found


@pytest.fixture
def models_claim(real_node: RealNode, namespace: str) -> Iterator[Path]:
    """A PVC `models` bound to a local PV: a directory on the real node, writable by the pods'
    user. Returns that directory (the host sees what the pods wrote)."""
    base = subprocess.run(
        [str(ROOT / "hack" / "node.sh"), "volume-dir"], capture_output=True, text=True, check=True
    ).stdout.strip()
    path = Path(base) / namespace
    path.mkdir(parents=True)
    os.chown(path, 65532, 65532)
    pv = f"{namespace}-models"
    manifest = models_volume(namespace, str(path), NODE_LABEL, "true")
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    yield path
    kubectl("delete", "persistentvolume", pv, "--wait=false", check=False)
