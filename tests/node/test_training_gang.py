"""A distributed TrainingRun on the real node: two workers of an Indexed Job find each other
through the run's headless Service (worker 0's stable hostname, resolved by the node's cluster
DNS) and meet (modelwerk.rendezvous) before worker 0 trains and reports. Worker 0 waits for
worker 1 and worker 1 for worker 0, so a worker that cannot resolve or reach the other fails the
run (RendezvousError, exit 2) instead of it succeeding."""

from __future__ import annotations

from pathlib import Path

from tests.integration.cluster import apply, get
from tests.integration.conftest import OperatorProcess
from tests.integration.trainingruns import pods_of, wait_phase
from tests.node.conftest import Image, RealNode
from tests.node.test_training import TRAIN, _model, _run


def test_two_workers_meet_through_the_headless_service(
    real_node: RealNode,
    namespace: str,
    operator: OperatorProcess,
    models_claim: Path,
    images: dict[str, Image],
) -> None:
    run = _run("iris-gang", images["trainer"], TRAIN)
    run["spec"]["workers"] = {"replicas": 2}
    apply(_model(), namespace)
    apply(run, namespace)
    obj = wait_phase(namespace, "iris-gang", "Succeeded", timeout=420)
    assert obj["status"]["metrics"]["accuracy"] >= 0.9
    pods = pods_of(namespace, "iris-gang")
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["nodeName"] == real_node.name
        assert pod["spec"]["subdomain"] == "iris-gang"
        (status,) = pod["status"]["containerStatuses"]
        assert status["state"]["terminated"]["exitCode"] == 0, status
    model = get("model", "iris", namespace)
    assert model is not None
    assert [v["version"] for v in model["status"]["versions"]] == [1]
