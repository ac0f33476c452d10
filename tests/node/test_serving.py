"""Serving on the real node: the model-server image built here serves a registered version behind
the Service (reached by its ClusterIP through kube-proxy), and a tampered artifact (its sha256
differs from the registry's digest) never becomes ready while the previous version keeps serving.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from tests.integration.cluster import apply, get, get_list, kubectl, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.trainingruns import API_VERSION, REFERENCE_HYPERPARAMETERS
from tests.node.conftest import Image, RealNode

SAMPLES = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
# Not through any proxy of the environment: the ClusterIP is this machine's.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _train_on_host(out: Path, seed: int = 42) -> Path:
    """The reference trainer run on this machine, its artifact written into the volume."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELWERK_")}
    env.update(
        {
            "MODELWERK_RUN": "host",
            "MODELWERK_MODEL": "iris",
            "MODELWERK_OUTPUT_DIR": str(out),
            "MODELWERK_OUTPUT_URI": "pvc://models/iris/host",
            "MODELWERK_TERMINATION_MESSAGE_PATH": str(out.parent / "report.json"),
            "MODELWERK_SEED": str(seed),
            "MODELWERK_HYPERPARAMETERS": json.dumps(REFERENCE_HYPERPARAMETERS),
        }
    )
    subprocess.run(
        [sys.executable, "-m", "modelwerk.trainers.iris"],
        env=env,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (artifact,) = [p for p in out.rglob("*") if p.is_file()]
    for path in [out, *out.rglob("*")]:
        os.chown(path, 65532, 65532)
    return artifact


def _version(number: int, uri: str, digest: str) -> dict[str, Any]:
    return {"version": number, "artifact": {"uri": uri, "digest": digest}, "metrics": {}}


def _model(versions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Model",
        "metadata": {"name": "iris"},
        "spec": {"storage": {"uri": "pvc://models/iris"}, "versions": versions},
    }


def _deployment(
    version: int, replicas: int = 1, canary: dict[str, Any] | None = None
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "Deployment",
        "metadata": {"name": "iris"},
        "spec": {
            "model": "iris",
            "version": version,
            "runtime": "native",
            "replicas": replicas,
            "resources": {
                "requests": {"cpu": "50m", "memory": "128Mi"},
                "limits": {"memory": "512Mi"},
            },
        },
    }
    if canary is not None:
        manifest["spec"]["canary"] = canary
    return manifest


def _service_url(namespace: str) -> str:
    service = get("service", "iris", namespace)
    assert service is not None
    return f"http://{service['spec']['clusterIP']}:{service['spec']['ports'][0]['port']}"


def _predict(namespace: str) -> list[Any]:
    request = urllib.request.Request(
        f"{_service_url(namespace)}/v1/models/iris:predict",
        data=json.dumps({"instances": SAMPLES}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with DIRECT.open(request, timeout=10) as response:
        body = json.loads(response.read())
    predictions: list[Any] = body["predictions"]
    return predictions


def _serving(namespace: str, version: int) -> dict[str, Any] | None:
    obj = get("deployments.modelwerk.io", "iris", namespace)
    status = (obj or {}).get("status") or {}
    return (
        obj
        if status.get("phase") == "Available" and status.get("currentVersion") == version
        else None
    )


def _serve_v1(namespace: str, models_claim: Path) -> tuple[Path, str]:
    artifact = _train_on_host(models_claim / "iris" / "v1")
    digest = "sha256:" + hashlib.sha256(artifact.read_bytes()).hexdigest()
    uri = f"pvc://models/{artifact.relative_to(models_claim)}"
    apply(_model([_version(1, uri, digest)]), namespace)
    apply(_deployment(1), namespace)
    wait_for("version 1 served", lambda: _serving(namespace, 1), timeout=240)
    return artifact, digest


def test_served_version_answers_predictions_through_the_service(
    real_node: RealNode,
    namespace: str,
    operator: OperatorProcess,
    models_claim: Path,
    images: dict[str, Image],
) -> None:
    _serve_v1(namespace, models_claim)
    pods = get_list("pods", namespace, "modelwerk.io/deployment=iris")
    assert pods
    assert all(p["spec"]["nodeName"] == real_node.name for p in pods)
    (status,) = pods[0]["status"]["containerStatuses"]
    assert status["ready"] is True
    assert status["imageID"] == images["model-server"].image_id
    predictions = wait_for("an answer through the ClusterIP", lambda: _predict(namespace))
    assert len(predictions) == len(SAMPLES)
    # Iris setosa and virginica: the two samples are of different species.
    assert predictions[0] != predictions[1], predictions


def test_tampered_artifact_never_ready_while_previous_version_serves(
    real_node: RealNode,
    namespace: str,
    operator: OperatorProcess,
    models_claim: Path,
    images: dict[str, Image],
) -> None:
    artifact, digest = _serve_v1(namespace, models_claim)
    before = _predict(namespace)
    # Version 2 was registered with the digest of its file, and the file changed afterwards.
    # (Its digest differs from version 1's: the registry refuses a second version of one digest.)
    tampered = models_claim / "iris" / "v2" / artifact.name
    tampered.parent.mkdir(parents=True)
    shutil.copyfile(artifact, tampered)
    with tampered.open("ab") as handle:
        handle.write(b"v2")
    digest2 = "sha256:" + hashlib.sha256(tampered.read_bytes()).hexdigest()
    with tampered.open("ab") as handle:
        handle.write(b" tampered")
    for path in (tampered.parent, tampered):
        os.chown(path, 65532, 65532)
    uri1 = f"pvc://models/{artifact.relative_to(models_claim)}"
    uri2 = f"pvc://models/{tampered.relative_to(models_claim)}"
    apply(_model([_version(1, uri1, digest), _version(2, uri2, digest2)]), namespace)
    kubectl(
        "patch", "deployments.modelwerk.io", "iris", "-n", namespace,
        "--type=merge", "-p", '{"spec":{"version":2}}',
    )  # fmt: skip

    def refused() -> dict[str, Any] | None:
        for pod in get_list("pods", namespace, "modelwerk.io/model-version=2"):
            for status in pod["status"].get("containerStatuses") or []:
                last = (status.get("lastState") or {}).get("terminated") or {}
                if last.get("exitCode") == 3 and not status["ready"]:
                    return pod
        return None

    # The model server verified the digest and refused to start (exit code 3), every time.
    pod = wait_for("version 2's server refusing its artifact", refused, timeout=180)
    logs = kubectl("logs", pod["metadata"]["name"], "-n", namespace, "--previous", check=False)
    assert "digest mismatch" in logs, logs

    def reported() -> dict[str, Any] | None:
        obj = get("deployments.modelwerk.io", "iris", namespace)
        conds = {c["type"]: c for c in ((obj or {}).get("status") or {}).get("conditions") or []}
        degraded = conds.get("Degraded")
        return obj if degraded and degraded["status"] == "True" else None

    obj = wait_for("the Deployment reporting version 2 refused", reported, timeout=240)
    conds = {c["type"]: c for c in obj["status"]["conditions"]}
    assert conds["Degraded"]["reason"] == "ArtifactRefused", conds
    assert "version 2" in conds["Degraded"]["message"]
    # The kubelet's termination message (the server's last log line) names the mismatch.
    assert "digest mismatch" in conds["Degraded"]["message"], conds
    assert (conds["Ready"]["status"], conds["Ready"]["reason"]) == ("False", "ArtifactRefused")
    assert "version 1 keeps serving" in conds["Ready"]["message"]
    assert obj["status"]["currentVersion"] == 1
    # Version 1 still answers, and the same.
    assert _predict(namespace) == before


def _proxied_endpoints(namespace: str, service: str) -> set[str]:
    """The pod IPs kube-proxy (nftables mode, hack/node.sh) load-balances the Service's port over,
    read from its rules on this machine: the chain `service-<hash>-<ns>/<name>/tcp/<port>` dnats
    to `numgen random mod N map { i : ip . port }`."""
    rules = subprocess.run(
        ["nft", "list", "table", "ip", "kube-proxy"], capture_output=True, text=True, check=True
    ).stdout
    chain = re.search(
        rf"chain service-\w+-{re.escape(namespace)}/{re.escape(service)}/tcp/[^ ]* {{(.*?)}}\n\t}}",
        rules,
        re.S,
    )
    return set(re.findall(r"(\d+\.\d+\.\d+\.\d+) \. \d+", chain.group(1))) if chain else set()


def _served_by(url: str) -> str:
    """One Open Inference Protocol request on a connection of its own (kube-proxy picks an
    endpoint per connection): the version that answered, as the protocol's response names it."""
    request = urllib.request.Request(
        f"{url}/v2/models/iris/infer",
        data=json.dumps(
            {
                "inputs": [
                    {"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": SAMPLES[0]}
                ]
            }
        ).encode(),
        headers={"Content-Type": "application/json", "Connection": "close"},
    )
    with DIRECT.open(request, timeout=10) as response:
        return str(json.loads(response.read())["model_version"])


def test_canary_share_through_the_service_is_within_the_stated_bound(
    real_node: RealNode,
    namespace: str,
    operator: OperatorProcess,
    models_claim: Path,
    images: dict[str, Image],
) -> None:
    """#11 item 4: the replica split measured, not assumed. 4 replicas with a 25 % canary: one
    canary pod of four behind the one Service; N requests through its ClusterIP, each on a new
    connection, land on version 2 at the pods' share, within the README's 50/replicas points."""
    replicas, percent, requests = 4, 25, 400
    uris, digests = [], []
    for number, seed in ((1, 42), (2, 7)):
        artifact = _train_on_host(models_claim / "iris" / f"v{number}", seed=seed)
        uris.append(f"pvc://models/{artifact.relative_to(models_claim)}")
        digests.append("sha256:" + hashlib.sha256(artifact.read_bytes()).hexdigest())
    assert digests[0] != digests[1]  # two seeds, two models
    apply(_model([_version(n, uris[n - 1], digests[n - 1]) for n in (1, 2)]), namespace)
    canary = {"version": 2, "trafficPercent": percent}
    apply(_deployment(1, replicas=replicas, canary=canary), namespace)

    def split() -> set[str] | None:
        ready: dict[str, set[str]] = {}
        for pod in get_list("pods", namespace, "modelwerk.io/deployment=iris"):
            statuses = pod["status"].get("containerStatuses") or []
            if statuses and all(s["ready"] for s in statuses):
                version = pod["metadata"]["labels"]["modelwerk.io/model-version"]
                ready.setdefault(version, set()).add(pod["status"]["podIP"])
        counts = {version: len(ips) for version, ips in ready.items()}
        return set().union(*ready.values()) if counts == {"1": 3, "2": 1} else None

    # round(4 x 25 / 100) = 1 canary pod: the split as whole pods allow.
    pods = wait_for("3 ready pods of version 1 and 1 of version 2", split, timeout=300)
    # Ready pods are not yet kube-proxy's endpoints: the EndpointSlice controller and then
    # kube-proxy's sync follow. Sampling before that measures the rollout, not the split (CI saw
    # 41 % with a version-1 pod still missing from the rules), so wait for the programmed rules.
    wait_for(
        "kube-proxy balancing over exactly the 4 ready pods",
        lambda: _proxied_endpoints(namespace, "iris") == pods,
        timeout=120,
    )
    url = _service_url(namespace)
    wait_for("the Service answering", lambda: _served_by(url))
    counts: dict[str, int] = {}
    for _ in range(requests):
        version = _served_by(url)
        counts[version] = counts.get(version, 0) + 1
    share = 100 * counts.get("2", 0) / requests
    print(f"\ncanary split through the Service: {counts} of {requests}: {share:.1f} % version 2")
    assert set(counts) == {"1", "2"}, counts
    # README: "within 50/replicas percentage points" (12.5 here). The sampling's own spread at
    # p = 0.25, N = 400 is 2.2 points, so a kube-proxy that ignored the endpoints' share fails.
    assert abs(share - percent) <= 50 / replicas, counts
