"""The chart's governance policy, installed with the real helm, enforced or not by the real
apiserver: cluster-wide it refuses a non-approver's protected alias in any namespace; namespaced
only in the watched ones; with `governance.enabled=false` nowhere (and its objects are gone).

Each probe is a `kubectl create --dry-run=server` of a Model with a protected alias set, as a
user whose RBAC lets it create Models there: admission runs in full (the policy included),
nothing is stored. The release's operator pods run on kwok nodes and do nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.integration.cluster import apply, get, kubectl, wait_for

# The fixtures `make_namespace` and `release_namespace` are test_helm's: imported, pytest uses
# them here too (ruff sees their parameters as redefinitions: F811).
from tests.integration.test_governance import BOB, TEAM, protected_model, run_as
from tests.integration.test_helm import (  # noqa: F401
    CHART,
    IMAGE,
    RELEASE,
    governance_objects,
    helm,
    make_namespace,
    release_namespace,
)

pytestmark = pytest.mark.integration


def upgrade(namespace: str, *sets: str) -> None:
    """`helm upgrade --install` without --wait: the policy needs no running operator."""
    args = ["upgrade", "--install", RELEASE, str(CHART), "--namespace", namespace]
    for value in (f"image.repository={IMAGE}", *sets):
        args += ["--set", value]
    helm(*args, "--skip-crds")


def let_the_team_create_models(namespace: str) -> None:
    rule = {"apiGroups": ["modelwerk.io"], "resources": ["models"], "verbs": ["create"]}
    group = "rbac.authorization.k8s.io"
    apply(
        {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {
                    "apiVersion": f"{group}/v1",
                    "kind": "Role",
                    "metadata": {"name": "model-creator"},
                    "rules": [rule],
                },
                {
                    "apiVersion": f"{group}/v1",
                    "kind": "RoleBinding",
                    "metadata": {"name": "model-creator"},
                    "roleRef": {"apiGroup": group, "kind": "Role", "name": "model-creator"},
                    "subjects": [{"apiGroup": group, "kind": "Group", "name": TEAM}],
                },
            ],
        },
        namespace,
    )


PROBE = json.dumps(protected_model("probe", {"production": 1}))


def probe(namespace: str) -> tuple[int, str]:
    return run_as(BOB, "create", "--dry-run=server", "-n", namespace, "-f", "-", input=PROBE)


def refused_by(policy: str) -> Any:
    def check(namespace: str) -> bool:
        code, out = probe(namespace)
        return code != 0 and f"'{policy}'" in out and "rule approvers" in out

    return check


def admitted(namespace: str) -> bool:
    code, out = probe(namespace)
    assert code == 0 or "denied request" in out, out  # RBAC and schema let it through
    return code == 0


def policy_objects() -> set[str]:
    kinds = "validatingadmissionpolicies,validatingadmissionpolicybindings"
    return set(kubectl("get", kinds, "-o", "name").split())


def test_governance_on_and_off_cluster_wide_and_namespaced(
    release_namespace: str,  # noqa: F811
    make_namespace: Any,  # noqa: F811
    crds: None,
) -> None:
    ns = release_namespace
    policy = f"{ns}-{RELEASE}-governance"
    watched, unwatched = make_namespace(), make_namespace()
    for where in (watched, unwatched):
        let_the_team_create_models(where)

    # Cluster-wide (the default): refused wherever a Model is.
    upgrade(ns)
    assert governance_objects(ns) <= policy_objects()
    for where in (watched, unwatched):
        wait_for(f"refused in {where}", lambda w=where: refused_by(policy)(w), timeout=60)

    # Namespaced: the binding matches the watched namespaces only.
    upgrade(ns, f"watchNamespaces={{{watched}}}")
    wait_for(f"admitted in the unwatched {unwatched}", lambda: admitted(unwatched), timeout=60)
    assert refused_by(policy)(watched), probe(watched)
    binding = get("validatingadmissionpolicybinding", policy)
    assert binding is not None
    (selector,) = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert selector["values"] == [watched]

    # Turned off, namespaced and then cluster-wide: no policy, nothing refused.
    upgrade(ns, f"watchNamespaces={{{watched}}}", "governance.enabled=false")
    wait_for(f"admitted in the watched {watched}", lambda: admitted(watched), timeout=60)
    assert governance_objects(ns).isdisjoint(policy_objects())
    assert admitted(unwatched)
    upgrade(ns, "governance.enabled=false")
    assert governance_objects(ns).isdisjoint(policy_objects())
    for where in (watched, unwatched):
        assert admitted(where), probe(where)
