"""A stuck world, on the real apiserver: each way a run or a Deployment cannot go on ends in a
False condition with a reason and a message saying why, and the run goes on once the world
does. (Image pulls, missing claims and the scheduler's reasons: test_trainingrun.py; canary
rollbacks: test_canary.py; the reconcile tier has each of these too.)"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.cluster import apply, condition, get, kubectl, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.servers import MWD, deployment_manifest
from tests.integration.test_deployment import declared
from tests.integration.trainingruns import (
    conditions_by_type,
    model_manifest,
    reference_report,
    run_manifest,
    wait_condition,
    wait_phase,
)

pytestmark = pytest.mark.integration


def quota(namespace: str, pods: int) -> None:
    """At most `pods` pods with resource requests (BestEffort pods stay free of it)."""
    apply(
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": "training"},
            "spec": {"hard": {"pods": str(pods)}, "scopes": ["NotBestEffort"]},
        },
        namespace,
    )


def test_a_resource_quota_refusing_the_pods_is_a_false_condition_with_its_message(
    namespace: str, operator: OperatorProcess
) -> None:
    """The Job controller's refusal exists only as its FailedCreate Events: the run reads them
    and says what the quota said; once the quota allows the pod, the run trains."""
    quota(namespace, 0)
    wait_for(
        "the quota's status",
        lambda: ((get("resourcequota", "training", namespace) or {}).get("status") or {}).get(
            "hard"
        ),
    )
    apply(model_manifest("iris"), namespace)
    resources = {"requests": {"cpu": "100m", "memory": "64Mi"}}
    apply(
        run_manifest("quota", "iris", report=reference_report().text, resources=resources),
        namespace,
    )
    obj = wait_condition("trainingrun", namespace, "quota", "Running", "False", "QuotaExceeded")
    assert obj["status"]["phase"] == "Pending"
    message = conditions_by_type(obj)["Running"]["message"]
    assert "exceeded quota: training" in message, message
    assert "limited: pods=0" in message, message

    quota(namespace, 1)
    wait_phase(namespace, "quota", "Succeeded", timeout=120)


def test_a_declared_version_colliding_with_a_registered_one_is_refused(
    namespace: str, operator: OperatorProcess
) -> None:
    """Version 1 registered by a run; the spec then declares another artifact as version 1: the
    Model says VersionConflict and keeps what it registered."""
    report = reference_report()
    apply(model_manifest("iris"), namespace)
    apply(run_manifest("iris-1", "iris", report=report.text), namespace)
    wait_phase(namespace, "iris-1", "Succeeded")
    before = (get("model", "iris", namespace) or {})["status"]["versions"]
    assert [v["version"] for v in before] == [1]

    apply(model_manifest("iris", versions=[declared(1)]), namespace)

    def conflict() -> dict[str, Any] | None:
        obj = get("model", "iris", namespace)
        ready = condition(obj, "Ready")
        if not obj or not ready or ready["reason"] != "VersionConflict":
            return None
        return obj

    obj = wait_for("Model iris VersionConflict", conflict)
    ready = condition(obj, "Ready")
    assert ready is not None
    assert ready["status"] == "False"
    assert "1" in ready["message"], ready
    assert obj["status"]["versions"] == before  # never overwritten
    assert ready["observedGeneration"] == obj["metadata"]["generation"]


def test_a_version_without_digest_is_not_served(namespace: str, operator: OperatorProcess) -> None:
    version = declared(1)
    del version["artifact"]["digest"]
    apply(model_manifest("iris", versions=[version]), namespace)
    apply(deployment_manifest("iris", "iris", version=1, runtime="native", replicas=1), namespace)

    def no_digest() -> dict[str, Any] | None:
        obj = get(MWD, "iris", namespace)
        ready = condition(obj, "Ready")
        return obj if ready and ready["reason"] == "NoDigest" else None

    obj = wait_for("Deployment iris NoDigest", no_digest)
    ready = condition(obj, "Ready")
    assert ready is not None
    assert ready["status"] == "False"
    assert "digest" in ready["message"]
    assert kubectl("get", "deployments.apps", "-n", namespace, "-o", "name").strip() == ""
