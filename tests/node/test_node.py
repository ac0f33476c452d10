"""The real node itself: registered with its taint and label beside the kwok nodes, running a
Pod Security `restricted` pod from an image built here, with logs and exec through the apiserver
and the imageID the node's containerd knows."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.cluster import KubectlError, apply, get, kubectl, wait_for
from tests.node.conftest import NODE_LABEL, Image, RealNode

RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
}
# What the container reports about itself: its uid, capabilities, no_new_privs, seccomp mode, and
# whether its root filesystem is writable.
PROBE = """
import json, os
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines())
try:
    open("/probe", "w")
    writable = True
except OSError:
    writable = False
print(json.dumps({"uid": os.getuid(), "capEff": status["CapEff"].strip(),
                  "noNewPrivs": status["NoNewPrivs"].strip(), "seccomp": status["Seccomp"].strip(),
                  "rootWritable": writable}))
"""


def _pod(name: str, image: str, command: list[str], restart: str = "Never") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": restart,
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "main",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": command,
                    "securityContext": RESTRICTED_CONTAINER,
                    "resources": {"limits": {"memory": "128Mi"}},
                }
            ],
        },
    }


def _phase(namespace: str, name: str, *phases: str, timeout: float = 120) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        pod = get("pod", name, namespace)
        return pod if pod and pod["status"].get("phase") in phases else None

    return wait_for(f"pod {namespace}/{name} {'|'.join(phases)}", probe, timeout=timeout)


def test_real_node_registered_beside_kwok_nodes(real_node: RealNode) -> None:
    node = get("node", real_node.name)
    assert node is not None
    assert node["metadata"]["labels"][NODE_LABEL] == "true"
    assert {"key": NODE_LABEL, "value": "true", "effect": "NoSchedule"} in node["spec"]["taints"]
    info = node["status"]["nodeInfo"]
    assert info["containerRuntimeVersion"].startswith("containerd://")
    assert not info["kubeletVersion"].startswith("kwok")
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}.get("Ready")
    assert ready == "True", node["status"]["conditions"]
    # kwok keeps to its own nodes: the real one is heartbeated by its kubelet, not by kwok.
    assert "kwok.x-k8s.io/node" not in node["metadata"].get("annotations", {})
    fake = json.loads(kubectl("get", "nodes", "-l", "type=kwok", "-o", "json"))["items"]
    assert fake, "the kwok nodes are gone"


def test_restricted_pod_runs_in_image_built_here(
    real_node: RealNode, namespace: str, images: dict[str, Image]
) -> None:
    trainer = images["trainer"]
    apply(_pod("probe", trainer.ref, ["python", "-c", PROBE]), namespace)
    pod = _phase(namespace, "probe", "Succeeded", "Failed")
    assert pod["spec"]["nodeName"] == real_node.name
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    (status,) = pod["status"]["containerStatuses"]
    # The digest of what ran, as the node's containerd names it.
    assert status["imageID"] == trainer.image_id
    assert trainer.digest in real_node.ctr("images", "ls", "-q")
    # Logs come from the kubelet through the apiserver.
    seen = json.loads(kubectl("logs", "probe", "-n", namespace).strip().splitlines()[-1])
    assert seen == {
        "uid": 65532,
        "capEff": "0000000000000000",
        "noNewPrivs": "1",
        "seccomp": "2",
        "rootWritable": False,
    }


def test_exec_into_running_pod(
    real_node: RealNode, namespace: str, images: dict[str, Image]
) -> None:
    apply(_pod("sleeper", images["trainer"].ref, ["sleep", "600"], restart="Always"), namespace)
    _phase(namespace, "sleeper", "Running")
    out = kubectl("exec", "sleeper", "-n", namespace, "--", "id", "-u")
    assert out.strip() == "65532"
    with pytest.raises(KubectlError, match="Read-only file system"):
        kubectl("exec", "sleeper", "-n", namespace, "--", "sh", "-c", "touch /x")


def test_pod_not_tolerating_taint_stays_off_the_real_node(
    real_node: RealNode, namespace: str, images: dict[str, Image]
) -> None:
    # A namespace that did not opt in: even a pod asking for the node by its label is kept off
    # by the taint.
    other = f"{namespace}-plain"
    kubectl("create", "namespace", other)
    kubectl("label", "namespace", other, "pod-security.kubernetes.io/enforce=restricted")
    try:
        pod = _pod("plain", images["trainer"].ref, ["true"])
        pod["spec"]["nodeSelector"] = {NODE_LABEL: "true"}
        apply(pod, other)

        def unschedulable() -> dict[str, Any] | None:
            obj = get("pod", "plain", other)
            conds = (obj or {}).get("status", {}).get("conditions") or []
            hit = [c for c in conds if c["type"] == "PodScheduled" and c["status"] == "False"]
            return hit[0] if hit else None

        cond = wait_for("pod unschedulable", unschedulable, timeout=60)
        assert "untolerated taint" in cond["message"], cond
    finally:
        kubectl("delete", "namespace", other, "--wait=false", check=False)
