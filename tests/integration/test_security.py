"""What a user who may only create TrainingRuns can get through the operator, with real RBAC
(kubectl --as, impersonating a user bound to a Role of this namespace): no privileged,
host-mounted, other-namespace or token-bearing pod. Privileges are not in the API at all
(refused at apply as unknown fields), other namespaces are refused by RBAC and by the API's
patterns, the Job the operator builds for an ordinary run is Pod Security `restricted` (which
this namespace enforces) with no ServiceAccount token, and a ServiceAccount is used only when
it is annotated to allow runs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.cluster import KubectlError, apply, get, kubectl, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.trainingruns import model_manifest, run_manifest, wait_condition

pytestmark = pytest.mark.integration

USER = "trainingrun-author"


def as_user(*args: str, input: str | None = None) -> KubectlError | str:
    try:
        return kubectl(*args, f"--as={USER}", input=input)
    except KubectlError as err:
        return err


def author_role(namespace: str) -> None:
    """USER may create and read TrainingRuns in `namespace`, and nothing else anywhere."""
    apply(
        {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "Role",
                    "metadata": {"name": "trainingrun-author"},
                    "rules": [
                        {
                            "apiGroups": ["modelwerk.io"],
                            "resources": ["trainingruns"],
                            "verbs": ["create", "get", "list"],
                        }
                    ],
                },
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "RoleBinding",
                    "metadata": {"name": "trainingrun-author"},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "Role",
                        "name": "trainingrun-author",
                    },
                    "subjects": [
                        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": USER}
                    ],
                },
            ],
        },
        namespace,
    )


def run_yaml(where: str, name: str, extra: dict[str, Any] | None = None) -> str:
    body = run_manifest(name, "iris")
    body["metadata"]["namespace"] = where
    body["spec"].update(extra or {})
    return json.dumps(body)


def refused(result: KubectlError | str, *needles: str) -> str:
    assert isinstance(result, KubectlError), f"accepted: {result}"
    for needle in needles:
        assert needle in result.stderr, result.stderr
    return result.stderr


def test_a_trainingrun_author_gets_no_privileged_host_or_token_bearing_pod(
    namespace: str, operator: OperatorProcess
) -> None:
    author_role(namespace)
    apply(model_manifest("iris"), namespace)
    wait_for(
        "the author's Role in effect",
        lambda: (
            kubectl(
                "auth",
                "can-i",
                "create",
                "trainingruns.modelwerk.io",
                "-n",
                namespace,
                f"--as={USER}",
                check=False,
            ).strip()
            == "yes"
        ),
    )
    # Directly: no pods, no Secrets, no Jobs, nothing in other namespaces.
    for verb, resource, where in (
        ("create", "pods", namespace),
        ("create", "jobs.batch", namespace),
        ("get", "secrets", namespace),
        ("create", "trainingruns.modelwerk.io", "default"),
    ):
        answer = kubectl("auth", "can-i", verb, resource, "-n", where, f"--as={USER}", check=False)
        assert answer.strip() == "no", (verb, resource, where)

    # Through a TrainingRun: privileges and host access are not fields of the API.
    apply_as = ("apply", "--validate=strict", "-f", "-")
    for field, value in (
        ("securityContext", {"privileged": True, "runAsUser": 0}),
        ("hostNetwork", True),
        ("hostPID", True),
        ("volumes", [{"name": "root", "hostPath": {"path": "/"}}]),
        ("volumeMounts", [{"name": "root", "mountPath": "/host"}]),
        ("nodeName", "kwok-node-0"),
        ("automountServiceAccountToken", True),
        ("namespace", "kube-system"),
    ):
        result = as_user(*apply_as, input=run_yaml(namespace, "bad", {field: value}))
        refused(result, "unknown field", f"spec.{field}")
    # Names that would reach into another namespace do not match the API's patterns.
    for field, value in (("serviceAccountName", "kube-system:default"), ("model", "other/iris")):
        refused(as_user(*apply_as, input=run_yaml(namespace, "bad", {field: value})), field)
    # Nor may the author create a run elsewhere.
    refused(as_user(*apply_as, input=run_yaml("default", "elsewhere")), "forbidden")

    # An ordinary run: the Job the operator creates for it runs restricted, token-less, here.
    out = as_user(*apply_as, input=run_yaml(namespace, "plain"))
    assert not isinstance(out, KubectlError), out
    job = wait_for("the Job of plain", lambda: get("job.batch", "plain", namespace))
    pod = job["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in pod
    assert not any(k in pod for k in ("hostNetwork", "hostPID", "hostIPC", "nodeName"))
    assert all("hostPath" not in v for v in pod.get("volumes") or [])
    assert pod["securityContext"]["runAsNonRoot"] is True
    for container in pod["containers"] + pod.get("initContainers", []):
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False
        assert ctx["capabilities"] == {"drop": ["ALL"]}
        assert ctx.get("privileged") is not True
    assert job["metadata"]["namespace"] == namespace

    # Naming a ServiceAccount of the namespace gets its token only where the namespace's admin
    # allowed it: `default` does not, so no Job is made.
    out = as_user(
        *apply_as, input=run_yaml(namespace, "as-default", {"serviceAccountName": "default"})
    )
    assert not isinstance(out, KubectlError), out
    wait_condition(
        "trainingrun", namespace, "as-default", "JobCreated", "False", "ServiceAccountNotAllowed"
    )
    assert get("job.batch", "as-default", namespace) is None
