"""Least privilege, measured: the real operator runs with the chart's ServiceAccount token
(namespaced mode) through a tour of every code path that needs a verb, and the apiserver's audit
log (hack/kwok/audit-policy-serviceaccounts.yaml logs every request of a ServiceAccount) says
which verbs that identity used. The test fails when

- a granted verb is never used: a grant to drop, or a path the tour misses (add it here);
- a request was refused (403): a verb needed without a grant (kinds.require refuses such a call
  in every tier before it is sent, so this catches what bypasses it: kopf's own requests);
- `kubectl auth can-i --list` of the ServiceAccount, in both install modes, differs from the
  list in the README (Operator, Permissions).

Why the audit log and not the operator's own counters: it also sees kopf's list and watch
requests, and the verb the authorizer checked. A server-side apply is logged as `patch`; when it
creates the object (201) the apiserver has also checked `create`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import (
    DRIFT_ALERT,
    create_namespace,
    delete_namespace,
    firing_alert,
    other_operators_paused,
    payload,
    post_webhook,
    retrain_model,
    retrain_runs,
    retrain_template,
    write_token,
)
from tests.integration.cluster import ROOT, apply, get, get_list, kubectl, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.gateway import gateway_api_crds
from tests.integration.servers import LABEL_DEPLOYMENT, deployment_manifest, patch
from tests.integration.test_deployment import declared, seldon_crd  # noqa: F401  (fixture)
from tests.integration.test_helm import (
    helm,
    install,
    service_account,
    token_kubeconfig,
)
from tests.integration.test_netpol import OPTION as NETWORK_POLICY_OPTION
from tests.integration.test_stuck import quota
from tests.integration.trainingruns import (
    conditions_by_type,
    reference_report,
    run_manifest,
    wait_condition,
    wait_phase,
)
from tests.unit.test_chart import (
    EXPECTED_CRD_READ_NAMESPACED,
    EXPECTED_JOBSET,
    EXPECTED_KUEUE,
    EXPECTED_NAMESPACED,
)

pytestmark = pytest.mark.integration

RELEASE = "modelwerk"
Grants = dict[tuple[str, str], set[str]]


def audit_log() -> Path:
    given = os.environ.get("MODELWERK_TEST_AUDIT_LOG")
    if given:
        return Path(given)
    if os.environ.get("MODELWERK_TEST_KUBECONFIG"):
        raise AssertionError("MODELWERK_TEST_KUBECONFIG needs MODELWERK_TEST_AUDIT_LOG as well")
    out = subprocess.run(
        [str(ROOT / "hack" / "cluster.sh"), "audit-log"], capture_output=True, text=True, check=True
    )
    return Path(out.stdout.strip())


def requests_of(path: Path, offset: int, user: str) -> list[dict[str, Any]]:
    """The audit events of `user` written after byte `offset`. A watch is logged when its
    response starts (ResponseStarted) and again when it ends, which for the operator's watches
    may be only after the operator stopped: the first counts."""
    with path.open("rb") as f:
        f.seek(offset)
        lines = f.read().decode().splitlines()
    events = [json.loads(line) for line in lines if line.strip()]
    stages = ("ResponseStarted", "ResponseComplete")
    return [e for e in events if e.get("stage") in stages and e["user"]["username"] == user]


def used(events: list[dict[str, Any]]) -> tuple[Grants, list[str]]:
    """(group, resource[/sub]) -> the verbs the authorizer allowed, and the refused requests."""
    out: Grants = defaultdict(set)
    refused = []
    for e in events:
        ref = e.get("objectRef") or {}
        if not ref.get("resource"):
            continue  # discovery (/apis, /version): open to every authenticated user
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        key = (ref.get("apiGroup") or "", resource)
        code = int((e.get("responseStatus") or {}).get("code") or 0)
        if code == 403:
            refused.append(f"{e['verb']} {key} {e.get('requestURI')}")
            continue
        out[key].add(e["verb"])
        if e["verb"] == "patch" and code == 201:
            out[key].add("create")  # server-side apply created it
    return dict(out), refused


def wait_children(ns: str, kind: str, count: int) -> None:
    wait_for(
        f"{count} {kind} of Deployment web",
        lambda: len(get_list(kind, ns, f"{LABEL_DEPLOYMENT}=web")) == count,
        timeout=90,
    )


@pytest.fixture
def audit() -> tuple[Path, int]:
    path = audit_log()
    assert path.is_file(), (
        f"no audit log at {path}: the cluster was started before hack/cluster.sh enabled it "
        "(hack/cluster.sh down, then up)"
    )
    return path, path.stat().st_size


@pytest.fixture
def namespaces(kubeconfig: str) -> Iterator[list[str]]:
    """Two namespaces (Pod Security `restricted`): the release's and the watched one, outside
    the session operator's prefix."""
    made = [create_namespace("mwrbac"), create_namespace("mwrbac")]
    yield made
    for name in made:
        delete_namespace(name)


@pytest.mark.usefixtures("seldon_crd")
def test_the_operator_uses_every_verb_it_is_granted_and_no_other(
    namespaces: list[str], crds: None, upstream_crds: Path, audit: tuple[Path, int], tmp_path: Path
) -> None:
    release_ns, ns = namespaces
    install("install", release_ns, f"watchNamespaces={{{ns}}}", extra=["--skip-crds"])
    try:
        user = service_account(release_ns)
        config = token_kubeconfig(tmp_path / "kubeconfig", release_ns, user.rsplit(":", 1)[1])
        token = write_token(tmp_path / "webhook-token")
        # The Gateway API's CRDs before the operator starts (kopf watches HTTPRoutes only if
        # their CRD exists then): the tour creates, patches and prunes an HTTPRoute.
        with other_operators_paused(), gateway_api_crds():
            operator = OperatorProcess(
                str(config),
                tmp_path / "operator.log",
                "-n",
                ns,
                env={
                    "MODELWERK_WEBHOOK_TOKEN_FILE": str(tmp_path / "webhook-token"),
                    # networkpolicies create (a run's), patch and delete (a Deployment's).
                    **NETWORK_POLICY_OPTION,
                    # As the chart sets them by default (jobSet.enabled=false,
                    # kueue.enabled=false): no JobSet or Workload RBAC, so no such watch
                    # (test_jobset.py and test_kueue.py install the CRDs).
                    "MODELWERK_JOBSET": "false",
                    "MODELWERK_KUEUE": "false",
                },
            )
            operator.start()
            try:
                _tour(operator, ns, token)
            finally:
                if operator.proc is not None:
                    operator.stop()
        events = requests_of(audit[0], audit[1], user)
    finally:
        helm("uninstall", RELEASE, "--namespace", release_ns, "--wait", check=False)

    exercised, refused = used(events)
    # kopf asks for the namespace list once before it falls back to the names it was given.
    assert [r for r in refused if "namespaces" not in r] == []
    granted = {**EXPECTED_NAMESPACED, **EXPECTED_CRD_READ_NAMESPACED}
    unused = {k: sorted(v - exercised.get(k, set())) for k, v in granted.items()}
    assert {k: v for k, v in unused.items() if v} == {}, "granted but never used"
    ungranted = {
        k: sorted(v - granted.get(k, set()))
        for k, v in exercised.items()
        if k != ("", "namespaces")
    }
    assert {k: v for k, v in ungranted.items() if v} == {}, "used without a grant"


def _tour(operator: OperatorProcess, ns: str, token: str) -> None:
    """Every path that needs a verb, each waited for until it shows."""
    report = reference_report()
    template = retrain_template(report)
    model = retrain_model("iris", template, on_alerts=[DRIFT_ALERT])
    model["spec"]["versions"] = [declared(1), declared(2)]
    apply(model, ns)  # models list/watch, models/status patch
    # A run: jobs create, pods list/watch, trainingruns/status patch, events create.
    apply(run_manifest("iris-1", "iris", report=report.text), ns)
    # trainingruns delete: its TTL.
    # (No report: the run fails, and a run whose version is registered is kept.)
    apply(run_manifest("iris-ttl", "iris", ttlSecondsAfterFinished=1), ns)
    # jobs patch: suspend carried to the Job.
    apply(run_manifest("iris-suspended", "iris", report=report.text, suspend=True), ns)
    # jobs get: a Job of that name exists already, not the run's.
    kubectl("create", "job", "iris-taken", "-n", ns, "--image=registry.example.com/x", "--", "true")
    apply(run_manifest("iris-taken", "iris", report=report.text), ns)
    # serviceaccounts get: a run naming a ServiceAccount that does not allow runs.
    apply(run_manifest("iris-sa", "iris", serviceAccountName="default"), ns)
    # events list: a Job whose pods a ResourceQuota refuses (only pods with requests: the
    # other pods here have none).
    quota(ns, 0)
    resources = {"requests": {"cpu": "100m"}}
    apply(run_manifest("iris-quota", "iris", report=report.text, resources=resources), ns)
    # jobs delete: a distributed run's failed attempt goes before the next one.
    flaky = {"FAIL_WORKER": "1/0", "EXIT_CODE": "3", "DURATION": "2s"}
    apply(
        run_manifest(
            "iris-gang",
            "iris",
            report=report.text,
            workers={"replicas": 2},
            backoff_limit=1,
            sim=flaky,
        ),
        ns,
    )

    wait_phase(ns, "iris-1", "Succeeded")
    wait_for(
        "iris-gang's second attempt",
        lambda: (
            ((get("trainingrun", "iris-gang", ns) or {}).get("status") or {})
            .get("workers", {})
            .get("attempt")
            == 1
        ),
        timeout=120,
    )
    wait_for("iris-ttl deleted after its TTL", lambda: get("trainingrun", "iris-ttl", ns) is None)
    taken = wait_for(
        "iris-taken refused",
        lambda: (
            (r := get("trainingrun", "iris-taken", ns))
            and conditions_by_type(r).get("JobCreated", {}).get("reason") == "NameConflict"
        ),
    )
    assert taken
    wait_condition("trainingrun", ns, "iris-quota", "Running", "False", "QuotaExceeded")
    wait_condition("trainingrun", ns, "iris-sa", "JobCreated", "False", "ServiceAccountNotAllowed")
    wait_for(
        "the suspended Job", lambda: (get("job.batch", "iris-suspended", ns) or {}).get("spec")
    )
    patch("trainingrun", ns, "iris-suspended", {"spec": {"suspend": False}})
    wait_for(
        "the Job resumed",
        lambda: (get("job.batch", "iris-suspended", ns) or {})["spec"].get("suspend") is False,
    )

    # trainingruns create: an alert starts a retraining run; models get: an alert for a Model
    # the cache does not know makes the operator ask the apiserver.
    alerts = payload(
        firing_alert(DRIFT_ALERT, namespace=ns, model="iris", fingerprint="f1"),
        firing_alert(DRIFT_ALERT, namespace=ns, model="no-such-model", fingerprint="f2"),
    )
    reply = post_webhook(operator.http_port, alerts, token=token)
    assert reply.status == 200, reply
    assert f"Model {ns}/no-such-model not found" in reply.results

    # Children: each kind created (server-side apply), then pruned (delete); a NetworkPolicy
    # of the Deployment's that the operator no longer wants (a name it does not make) is pruned.
    stale = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "web-stale", "labels": {LABEL_DEPLOYMENT: "web"}},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
    }
    apply(stale, ns)
    apply(
        deployment_manifest(
            "web",
            "iris",
            version=1,
            runtime="native",
            autoscaling={"minReplicas": 1, "maxReplicas": 2},
            pdb={"minAvailable": 1},
            monitoring={"latencyP99Ms": 250},
        ),
        ns,
    )
    for kind in (
        "deployments.apps",
        "httproutes",
        "hpa",
        "pdb",
        "prometheusrules",
        "servicemonitors",
    ):
        wait_children(ns, kind, 1)
    wait_for(
        "web-stale pruned, web-serving applied",
        lambda: (
            [
                p["metadata"]["name"]
                for p in get_list("networkpolicies", ns, f"{LABEL_DEPLOYMENT}=web")
            ]
            == ["web-serving"]
        ),
        timeout=60,
    )
    wait_children(ns, "services", 2)  # web, and web-v1 behind the HTTPRoute
    patch(
        "mwd",
        ns,
        "web",
        {
            "spec": {
                "version": 2,
                "autoscaling": None,
                "replicas": 1,
                "pdb": None,
                "monitoring": {"enabled": False},
            }
        },
    )
    wait_for(
        "web-v1 pruned after web-v2",
        lambda: (
            [
                d["metadata"]["name"]
                for d in get_list("deployments.apps", ns, f"{LABEL_DEPLOYMENT}=web")
            ]
            == ["web-v2"]
        ),
        timeout=90,
    )
    for kind in ("hpa", "pdb", "prometheusrules", "servicemonitors"):
        wait_children(ns, kind, 0)
    # To Seldon (a SeldonDeployment and a PodMonitor), reported Available: the native children go.
    patch("mwd", ns, "web", {"spec": {"runtime": "seldon", "monitoring": {"enabled": True}}})
    wait_children(ns, "seldondeployments", 1)
    wait_children(ns, "podmonitors", 1)
    kubectl(
        "patch",
        "seldondeployment",
        "web",
        "-n",
        ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"state": "Available", "replicas": 1}}),
    )
    wait_children(ns, "services", 0)
    wait_children(ns, "deployments.apps", 0)
    wait_children(ns, "httproutes", 0)
    # Back to native: once its pods are ready, the SeldonDeployment and the PodMonitor go.
    patch("mwd", ns, "web", {"spec": {"runtime": "native", "monitoring": {"enabled": False}}})
    wait_children(ns, "seldondeployments", 0)
    wait_children(ns, "podmonitors", 0)
    wait_for("a retraining run", lambda: retrain_runs(ns, "iris"))


# --- the effective permissions, against the README -----------------------------------------


def can_i_list(user: str, namespace: str) -> set[str]:
    """`kubectl auth can-i --list` as `user` in `namespace`, one `resource: verbs` line per
    resource, without what every authenticated user may (self reviews, discovery URLs)."""
    out = kubectl("auth", "can-i", "--list", "-n", namespace, f"--as={user}")
    found = set()
    for line in out.strip().splitlines()[1:]:
        parts = re.split(r"\s{2,}", line.strip())
        resource, verbs = parts[0], sorted(parts[-1].strip("[]").split())
        if resource.startswith(("selfsubject", "[")):
            continue
        found.add(f"{resource}: {' '.join(verbs)}")
    return found


def readme_permissions(mode: str) -> set[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(rf"<!-- permissions {mode} -->\n```\n(.*?)```", text, re.S)
    assert block, f"README has no permissions block for {mode}"
    return set(block.group(1).strip().splitlines())


def engine_permissions() -> set[str]:
    """What jobSet.enabled=true and kueue.enabled=true add, as `can-i --list` prints it: the
    grants the JobSet and Kueue paths use (test_rbac_engines.py audits them)."""
    return {
        f"{plural}.{group}: {' '.join(sorted(verbs))}"
        for (group, plural), verbs in {**EXPECTED_JOBSET, **EXPECTED_KUEUE}.items()
    }


@pytest.mark.parametrize("engines", [False, True], ids=["default", "jobset-kueue"])
@pytest.mark.parametrize("mode", ["cluster-wide", "watchNamespaces"])
def test_effective_permissions_are_the_readmes(
    mode: str, engines: bool, namespaces: list[str], crds: None
) -> None:
    release_ns, watched = namespaces
    # The README's lists are the table's; the leader election's Lease Role in the release
    # namespace is checked by test_helm.
    sets = ["leaderElection.enabled=false", "replicaCount=1"]
    if mode == "watchNamespaces":
        sets.append(f"watchNamespaces={{{watched}}}")
    if engines:
        sets += ["jobSet.enabled=true", "kueue.enabled=true"]
    install("install", release_ns, *sets, extra=["--skip-crds"])
    try:
        user = service_account(release_ns)
        found = wait_for(
            "the ServiceAccount's roles in effect",
            lambda: (perms := can_i_list(user, watched)) and "pods: list watch" in perms and perms,
            timeout=30,
        )
        expected = readme_permissions(mode) | (engine_permissions() if engines else set())
        assert sorted(found) == sorted(expected), "\n".join(sorted(found))
        if mode == "watchNamespaces":  # elsewhere: the cluster-scoped rules only
            only_crds = {"customresourcedefinitions.apiextensions.k8s.io: get"}
            assert can_i_list(user, release_ns) == only_crds
    finally:
        helm("uninstall", RELEASE, "--namespace", release_ns, "--wait", check=False)
