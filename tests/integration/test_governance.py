"""Protected aliases on the real apiserver: the chart's ValidatingAdmissionPolicy, real RBAC,
and users impersonated with `kubectl --as/--as-group`. Versions are registered by real
TrainingRuns (kwok ends their pods with the reference trainer's report), so the gate evidence
the policy reads is the operator's own.

The policy is rendered from the chart (templates/governance.yaml) in namespaced mode, bound to
this test's namespace only, so it never touches the other tests' Models."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import ROOT, apply, get, kubectl, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.trainingruns import (
    metric_sum,
    model_manifest,
    reference_report,
    run_manifest,
    wait_phase,
)
from tests.unit.test_chart import gen_chart

pytestmark = pytest.mark.integration

APPROVERS = "ml-approvers"
TEAM = "ml-team"
PLATFORM = "platform"
ALICE = ("--as=alice", f"--as-group={APPROVERS}", f"--as-group={TEAM}")
BOB = ("--as=bob", f"--as-group={TEAM}")
CAROL = ("--as=carol", f"--as-group={PLATFORM}", f"--as-group={TEAM}")
# A cluster admin (break-glass); impersonating system:masters takes one: this test's kubeconfig.
ADMIN = ("--as=ops", "--as-group=system:masters")
RELEASE_NS = "mw-governance"  # only names the policy and the operator's service account
MOVED_BY = "modelwerk.io/moved-by"
GATE = {"metric": "accuracy", "threshold": 0.5}
RBAC = {"apiVersion": "rbac.authorization.k8s.io/v1"}
NOW = "2026-01-01T00:00:00Z"


def operator_sa(namespace: str) -> tuple[str, ...]:
    """The operator's identity as the rendered policy names it (the chart's service account in
    the release namespace), impersonated."""
    return (f"--as=system:serviceaccount:{RELEASE_NS}-{namespace}:modelwerk",)


def policy_manifests(namespace: str) -> str:
    return subprocess.run(
        [
            gen_chart.helm_binary(),
            "template",
            "modelwerk",
            str(ROOT / "helm" / "modelwerk"),
            "--namespace",
            f"{RELEASE_NS}-{namespace}",
            "--set",
            f"watchNamespaces={{{namespace}}}",
            "--show-only",
            "templates/governance.yaml",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout


def run_as(user: tuple[str, ...], *args: str, input: str | None = None) -> tuple[int, str]:
    proc = subprocess.run(
        ["kubectl", *user, *args], input=input, capture_output=True, text=True, timeout=60
    )
    return proc.returncode, proc.stdout + proc.stderr


def protected_model(
    name: str, aliases: dict[str, int] | None = None, **annotations: str
) -> dict[str, Any]:
    body = model_manifest(name, aliases=aliases)
    body["spec"]["protection"] = {
        "admins": {"groups": [PLATFORM]},
        "aliases": [
            {"alias": "production", "approvers": {"groups": [APPROVERS]}},
            {
                "alias": "champion",
                "approvers": {"groups": [APPROVERS]},
                "metric": {"name": "accuracy", "min": 1.5},
            },
            {"alias": "stable", "approvers": {"groups": [APPROVERS]}, "requireCanary": True},
        ],
    }
    if annotations:
        body["metadata"]["annotations"] = dict(annotations)
    return body


@pytest.fixture
def governed(namespace: str, operator: OperatorProcess) -> Iterator[str]:
    """This namespace under the chart's policy, with edit rights on Models (and their status)
    for the team's group: RBAC alone would let anyone in it move any alias."""
    rule = {
        "apiGroups": ["modelwerk.io"],
        "resources": ["models", "models/status"],
        "verbs": ["get", "list", "watch", "create", "update", "patch"],
    }
    role = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "model-editor"}
    team = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": TEAM}
    rbac = {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {**RBAC, "kind": "Role", "metadata": {"name": "model-editor"}, "rules": [rule]},
            {
                **RBAC,
                "kind": "RoleBinding",
                "metadata": {"name": "model-editor"},
                "roleRef": role,
                # The operator's identity too, for the evidence it alone may write.
                "subjects": [team, {"kind": "User", "name": operator_sa(namespace)[0][5:]}],
            },
        ],
    }
    apply(rbac, namespace)
    manifests = policy_manifests(namespace)
    kubectl("apply", "-f", "-", input=manifests)
    probe = json.dumps(protected_model(f"probe-{uuid.uuid4().hex[:6]}", {"production": 1}))

    def enforced() -> bool:
        code, out = run_as(
            BOB, "create", "--dry-run=server", "-n", namespace, "-f", "-", input=probe
        )
        return code != 0 and "rule approvers" in out

    wait_for("the admission policy to be enforced", enforced, timeout=60, interval=0.5)
    yield namespace
    kubectl("delete", "-f", "-", "--ignore-not-found", input=manifests, check=False)


def register(namespace: str, name: str, **spec: Any) -> int:
    apply(run_manifest(name, "iris", report=reference_report().text, **spec), namespace)
    obj = wait_phase(namespace, name, "Succeeded", timeout=90)
    return int(obj["status"]["modelVersion"])


def move(
    user: tuple[str, ...], namespace: str, aliases: dict[str, int], by: str | None = None
) -> tuple[int, str]:
    patch: dict[str, Any] = {"spec": {"aliases": aliases}}
    if by is not None:
        patch["metadata"] = {"annotations": {MOVED_BY: by}}
    return patch_model(user, namespace, "merge", patch)


def patch_model(
    user: tuple[str, ...], namespace: str, kind: str, patch: Any, *extra: str
) -> tuple[int, str]:
    args = ("patch", "model", "iris", "-n", namespace, f"--type={kind}", "-p", json.dumps(patch))
    return run_as(user, *args, *extra)


def refused(result: tuple[int, str], *needles: str) -> None:
    """The request failed at admission, with a message containing each of `needles`."""
    code, out = result
    assert code != 0, out
    for needle in needles:
        assert needle in out, out


def accepted(result: tuple[int, str]) -> None:
    code, out = result
    assert code == 0, out


def status_aliases(namespace: str) -> dict[str, int]:
    obj = get("model", "iris", namespace) or {}
    return dict((obj.get("status") or {}).get("aliases") or {})


def annotations(namespace: str) -> dict[str, str]:
    obj = get("model", "iris", namespace) or {}
    return dict(obj["metadata"].get("annotations") or {})


def moves(namespace: str) -> list[tuple[Any, ...]]:
    """The Model's alias history: (alias, from, to, by)."""
    obj = get("model", "iris", namespace) or {}
    entries = (obj.get("status") or {}).get("history") or []
    return [(h["alias"], h.get("from"), h.get("to"), h.get("by")) for h in entries]


def applied(user: tuple[str, ...], namespace: str, body: Any, *extra: str) -> tuple[int, str]:
    return run_as(user, "apply", *extra, "-n", namespace, "-f", "-", input=json.dumps(body))


def test_protected_aliases_are_enforced_at_apply(governed: str) -> None:
    ns = governed
    accepted(applied(BOB, ns, protected_model("iris")))
    assert (register(ns, "gated", evaluation=GATE), register(ns, "ungated")) == (1, 2)
    model = get("model", "iris", ns)
    assert model is not None
    versions = {v["version"]: v for v in model["status"]["versions"]}
    assert versions[1]["gate"] == {"metric": "accuracy", "passed": True}
    assert versions[2]["gate"] == {"metric": "", "passed": True}

    # An unprotected alias: anyone with RBAC on Models moves it.
    accepted(move(BOB, ns, {"candidate": 2}))
    # A protected one: not without the approver group, whatever the annotation says.
    refused(
        move(BOB, ns, {"production": 1}, "bob"),
        "rule approvers",
        "bob may not move protected alias production: not among",
    )
    # An approver: not to a version that did not pass an evaluation gate ...
    refused(move(ALICE, ns, {"production": 2}, "alice"), "rule requireGate", "production")
    # ... nor below the metric floor ...
    refused(move(ALICE, ns, {"champion": 1}, "alice"), "rule metric", "champion (accuracy)")
    # ... nor without recording herself as the mover.
    refused(move(ALICE, ns, {"production": 1}), "rule movedBy")
    # ... nor to one that no Deployment promoted from a canary first, while the operator has
    # not recorded it (only the operator writes status: test_canary proves it records one).
    refused(move(ALICE, ns, {"stable": 1}, "alice"), "rule requireCanary", "stable")
    evidence = {"status": {"canaryPromotions": [{"version": 1, "deployment": "iris", "at": NOW}]}}
    refused(patch_model(ALICE, ns, "merge", evidence, "--subresource=status"), "rule status")
    accepted(patch_model(operator_sa(ns), ns, "merge", evidence, "--subresource=status"))
    accepted(move(ALICE, ns, {"stable": 1}, "alice"))
    wait_for("stable on version 1", lambda: status_aliases(ns).get("stable") == 1)
    # kubectl apply (client-side) of the whole manifest: the gated version, recorded.
    aliases = {"candidate": 2, "stable": 1, "production": 1}
    moved = protected_model("iris", aliases, **{MOVED_BY: "alice"})
    accepted(applied(ALICE, ns, moved))
    wait_for("production on version 1", lambda: status_aliases(ns).get("production") == 1)
    assert moves(ns) == [
        ("candidate", None, 2, None),
        ("stable", None, 1, "alice"),
        ("production", None, 1, "alice"),
    ]

    # Not bypassable: forging the record, server-side apply under another field manager,
    # writing status directly, dropping the protection.
    forged = ("annotate", "model", "iris", "-n", ns, "--overwrite", f"{MOVED_BY}=carol")
    refused(run_as(BOB, *forged), "rule movedBy")
    ssa = protected_model("iris", {"production": 2}, **{MOVED_BY: "bob"})
    sneaky = ("--server-side", "--field-manager=sneaky", "--force-conflicts")
    refused(applied(BOB, ns, ssa, *sneaky), "rule approvers")
    status = {"status": {"aliases": {"production": 2}}}
    refused(patch_model(BOB, ns, "merge", status, "--subresource=status"), "rule status")
    refused(patch_model(ALICE, ns, "merge", status, "--subresource=status"), "rule status")
    drop = [{"op": "remove", "path": "/spec/protection"}]
    refused(patch_model(ALICE, ns, "json", drop), "rule admins")
    assert status_aliases(ns)["production"] == 1
    # The platform team may change the policy; then the approver may move the alias.
    floor = [{"op": "replace", "path": "/spec/protection/aliases/1/metric/min", "value": 0.5}]
    accepted(patch_model(CAROL, ns, "json", floor))
    accepted(move(ALICE, ns, {"champion": 1}, "alice"))
    # Recorded before the next move: one reconcile of both would record both under its name.
    wait_for("champion recorded", lambda: moves(ns)[-1:] == [("champion", None, 1, "alice")])

    # Break-glass: a cluster admin skips the rules on versions and approvers, not the record.
    # Without the annotation (it still names alice) or with someone else's name: refused.
    refused(move(ADMIN, ns, {"production": 2}), "rule movedBy", f"{MOVED_BY}: ops", "break-glass")
    refused(move(ADMIN, ns, {"production": 2}, "alice"), "rule movedBy", f"{MOVED_BY}: ops")
    forged_by_admin = ("annotate", "model", "iris", "-n", ns, "--overwrite", f"{MOVED_BY}=carol")
    refused(run_as(ADMIN, *forged_by_admin), "rule movedBy", "only be set to the requester (ops)")
    # A status write cannot set it either: the apiserver keeps the stored metadata.
    sneaked = {"metadata": {"annotations": {MOVED_BY: "carol"}}}
    accepted(patch_model(ADMIN, ns, "merge", sneaked, "--subresource=status"))
    assert annotations(ns)[MOVED_BY] == "alice"
    # Signed with the admin's own name: to an ungated version, recorded as the admin's move.
    accepted(move(ADMIN, ns, {"production": 2}, "ops"))
    last = ("production", 1, 2, "ops")
    wait_for("the admin's move recorded", lambda: moves(ns)[-1:] == [last])
    assert moves(ns) == [
        ("candidate", None, 2, None),
        ("stable", None, 1, "alice"),
        ("production", None, 1, "alice"),
        ("champion", None, 1, "alice"),
        last,
    ]
    # And changes spec.protection, not being among its admins.
    floor = [{"op": "replace", "path": "/spec/protection/aliases/1/metric/min", "value": 0.9}]
    accepted(patch_model(ADMIN, ns, "json", floor))
    obj = get("model", "iris", ns)
    assert obj is not None
    assert obj["spec"]["protection"]["aliases"][1]["metric"]["min"] == 0.9


DECLARED = [
    {
        "version": n,
        "artifact": {"uri": f"s3://bucket/iris/v{n}.joblib", "digest": "sha256:" + f"{n:02d}" * 32},
        "metrics": {"accuracy": 0.9},
    }
    for n in (1, 2)
]


@pytest.fixture
def own_operator(
    kubeconfig: str, crds: None, namespace: str, tmp_path: Path, operator: OperatorProcess
) -> Iterator[OperatorProcess]:
    """An operator for this test's namespace only (the session's is paused: two operators on
    one namespace would race), not yet started."""
    operator.stop()
    proc = OperatorProcess(kubeconfig, tmp_path / "operator.log", "--namespace", namespace)
    try:
        yield proc
    finally:
        proc.kill()
        operator.start()


def _history(namespace: str) -> list[tuple[Any, Any, Any]]:
    obj = get("model", "iris", namespace) or {}
    entries = (obj.get("status") or {}).get("history") or []
    return [(h["alias"], h.get("from"), h.get("to")) for h in entries]


def test_history_survives_an_operator_restart(
    namespace: str, own_operator: OperatorProcess
) -> None:
    body = model_manifest("iris", versions=DECLARED, aliases={"candidate": 1})
    apply(body, namespace)
    own_operator.start()
    wait_for("the first move recorded", lambda: _history(namespace) == [("candidate", None, 1)])
    own_operator.kill()
    # Moved while the operator is down: recorded once it is back, once.
    apply(model_manifest("iris", versions=DECLARED, aliases={"candidate": 2}), namespace)
    own_operator.start()
    expected = [("candidate", None, 1), ("candidate", 1, 2)]
    wait_for("the move made while down", lambda: _history(namespace) == expected, timeout=60)
    before = get("model", "iris", namespace)
    assert before is not None
    own_operator.stop()
    own_operator.start()

    def reconciled() -> bool:
        try:
            text = own_operator.metrics()
        except OSError:  # not listening yet
            return False
        return metric_sum(text, "modelwerk_reconcile_total", kind="Model", result="ok") >= 1

    wait_for("the restarted operator reconciled the Model", reconciled, timeout=60)
    after = get("model", "iris", namespace)
    assert after is not None
    assert _history(namespace) == expected
    # Nothing changed, nothing written: the stored object is the same version.
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
