"""The Helm chart on the real control plane: `helm install` into a Pod Security `restricted`
namespace deploys an operator that becomes Available on a kwok node; its ServiceAccount may do
exactly what the operator needs (checked verb by verb with `kubectl auth can-i`) and nothing
sensitive; `helm upgrade` to watchNamespaces turns the RBAC into Roles; `helm uninstall` removes
it all but the shared CRDs. Finally the real operator runs with the chart's ServiceAccount token
and reconciles without a single 403.

The CRDs are the session's (fixture `crds`): helm installs crds/ only when absent, so the first
install runs without --skip-crds to prove it leaves existing ones alone; nothing here deletes them.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import kopf
import pytest
import yaml

from tests.integration.cluster import ROOT, apply, get, get_list, kubectl, wait_for
from tests.integration.conftest import SESSION_PREFIX, OperatorProcess
from tests.integration.gateway import gateway_api_crds
from tests.integration.trainingruns import events_for, metric_sum, model_manifest, run_manifest
from tests.unit.test_chart import (
    EXPECTED_CRD_READ,
    EXPECTED_CRD_READ_NAMESPACED,
    EXPECTED_NAMESPACED,
    gen_chart,
)

pytestmark = pytest.mark.integration

CHART = ROOT / "helm" / "modelwerk"
RELEASE = "modelwerk"  # full name "modelwerk"; cluster-scoped names get the namespace prefixed
IMAGE = "registry.example.com/modelwerk/operator"  # never pulled: kwok runs the pod
VERBS = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
CRDS = ("models.modelwerk.io", "trainingruns.modelwerk.io", "deployments.modelwerk.io")


def helm(*args: str, check: bool = True, timeout: float = 240) -> str:
    proc = subprocess.run(
        [gen_chart.helm_binary(), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=os.environ,
        check=False,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def install(command: str, namespace: str, *sets: str, extra: Sequence[str] = ()) -> None:
    args = [command, RELEASE, str(CHART), "--namespace", namespace, "--wait", "--timeout", "120s"]
    for value in (f"image.repository={IMAGE}", *sets):
        args += ["--set", value]
    helm(*args, *extra)


@pytest.fixture
def make_namespace(kubeconfig: str) -> Iterator[Any]:
    """Creates namespaces of this session on demand, Pod Security `restricted` like the
    conftest's; deletes them at the end."""
    created: list[str] = []

    def make() -> str:
        name = f"{SESSION_PREFIX}h{uuid.uuid4().hex[:7]}"
        kubectl("create", "namespace", name)
        created.append(name)
        kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
        return name

    yield make
    for name in created:
        kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def release_namespace(namespace: str) -> Iterator[str]:
    """The conftest's fresh namespace (Pod Security `restricted` enforced), uninstalled after."""
    yield namespace
    helm("uninstall", RELEASE, "--namespace", namespace, "--wait", check=False)


# --- RBAC checks with kubectl auth can-i -------------------------------------------------------


def _kubectl_resource(group: str, resource: str) -> tuple[str, list[str]]:
    base, _, sub = resource.partition("/")
    name = f"{base}.{group}" if group else base
    return name, (["--subresource", sub] if sub else [])


def can_i(user: str, verb: str, group: str, resource: str, namespace: str | None) -> bool:
    name, extra = _kubectl_resource(group, resource)
    where = ["-n", namespace] if namespace else ["--all-namespaces"]
    out = kubectl("auth", "can-i", verb, name, *extra, *where, f"--as={user}", check=False)
    answer = out.strip().splitlines()[-1] if out.strip() else ""
    assert answer in ("yes", "no"), f"can-i {verb} {name}: {out!r}"
    return answer == "yes"


def permissions(
    user: str,
    table: dict[tuple[str, str], set[str]],
    namespace: str | None,
    verbs: Sequence[str] | None = None,
) -> dict[tuple[str, str], set[str]]:
    """For each resource of `table`, which of `verbs` (default: each resource's own verbs in
    `table`) `user` may use. One kubectl per check, a few at a time."""
    checks = [(key, verb) for key, own in table.items() for verb in (verbs or sorted(own))]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda kv: can_i(user, kv[1], *kv[0], namespace), checks))
    out: dict[tuple[str, str], set[str]] = {key: set() for key in table}
    for (key, verb), allowed in zip(checks, answers, strict=True):
        if allowed:
            out[key].add(verb)
    return out


def converges(what: str, compute: Any, expected: Any, timeout: float = 20) -> None:
    """`compute()` equals `expected` within `timeout` (RBAC changes reach the authorizer through
    its informers, a moment after the write); the assertion shows the last difference."""
    last: dict[str, Any] = {}

    def probe() -> bool:
        last["value"] = compute()
        return bool(last["value"] == expected)

    with contextlib.suppress(AssertionError):
        wait_for(what, probe, timeout=timeout, interval=1)
    assert last["value"] == expected, what


def assert_exact_grants(user: str, namespace: str | None) -> None:
    """Every verb of VERBS on every resource the operator uses: exactly the expected ones."""
    converges(
        f"exact grants in {namespace or 'all namespaces'}",
        lambda: permissions(user, EXPECTED_NAMESPACED, namespace, VERBS),
        EXPECTED_NAMESPACED,
    )


def assert_grants(user: str, namespace: str | None) -> None:
    converges(
        f"grants in {namespace or 'all namespaces'}",
        lambda: permissions(user, EXPECTED_NAMESPACED, namespace),
        EXPECTED_NAMESPACED,
    )


def assert_no_grants(user: str, namespace: str | None) -> None:
    converges(
        f"no grants in {namespace or 'all namespaces'}",
        lambda: permissions(user, EXPECTED_NAMESPACED, namespace),
        {key: set() for key in EXPECTED_NAMESPACED},
    )


def assert_crd_reads(user: str, expected: dict[tuple[str, str], set[str]]) -> None:
    converges(
        "CRD reads cluster-wide",
        lambda: permissions(user, expected, None, VERBS),
        expected,
    )


# Never: Secrets, exec/attach, creating pods, RBAC, namespaces, writing CRDs.
FORBIDDEN = [
    ("list", "", "secrets"),
    ("get", "", "secrets"),
    ("create", "", "pods"),
    ("create", "", "pods/exec"),
    ("create", "", "pods/attach"),
    ("list", "", "configmaps"),
    ("create", "rbac.authorization.k8s.io", "roles"),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings"),
    ("list", "", "namespaces"),
    ("create", "", "serviceaccounts/token"),
    ("delete", "apiextensions.k8s.io", "customresourcedefinitions"),
    ("patch", "apiextensions.k8s.io", "customresourcedefinitions"),
    ("update", "modelwerk.io", "models"),
    ("deletecollection", "batch", "jobs"),
]


def assert_nothing_forbidden(user: str, namespaces: Sequence[str | None]) -> None:
    for namespace in namespaces:
        allowed = [
            (verb, group, resource)
            for verb, group, resource in FORBIDDEN
            if can_i(user, verb, group, resource, namespace)
        ]
        assert allowed == [], f"{user} may {allowed} in {namespace or 'all namespaces'}"


# --- the release -------------------------------------------------------------------------------


def service_account(namespace: str) -> str:
    deployment = get("deployment.apps", RELEASE, namespace)
    assert deployment is not None
    sa: str = deployment["spec"]["template"]["spec"]["serviceAccountName"]
    return f"system:serviceaccount:{namespace}:{sa}"


def available_pod(namespace: str) -> dict[str, Any]:
    """The operator Deployment, Available with all its pods Ready on kwok nodes; one of them."""

    def probe() -> dict[str, Any] | None:
        deployment = get("deployment.apps", RELEASE, namespace)
        if deployment is None:
            return None
        status = deployment.get("status") or {}
        available = any(
            c["type"] == "Available" and c["status"] == "True"
            for c in status.get("conditions") or []
        )
        if not available or status.get("observedGeneration") != deployment["metadata"].get(
            "generation"
        ):
            return None
        wanted = deployment["spec"]["replicas"]  # 2 with leader election (the default)
        if status.get("updatedReplicas") != wanted or status.get("replicas") != wanted:
            return None  # the old pods are gone
        selector = ",".join(
            f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items()
        )
        pods = [
            p
            for p in get_list("pods", namespace, selector)
            if "deletionTimestamp" not in p["metadata"]
        ]
        if len(pods) != wanted:
            return None
        return pods[0]

    pod = wait_for(f"operator Deployment in {namespace} Available", probe, timeout=120)
    assert pod["spec"]["nodeName"].startswith("kwok-"), pod["spec"].get("nodeName")
    assert pod["status"]["phase"] == "Running"
    return pod


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    (container,) = pod["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def crd_uids() -> dict[str, str]:
    """The UIDs of our CRDs: unchanged means nobody deleted and re-created them (resource
    versions may change under concurrent test sessions re-applying them)."""
    out = {}
    for name in CRDS:
        crd = get("customresourcedefinition", name)
        assert crd is not None, f"CRD {name} missing"
        out[name] = crd["metadata"]["uid"]
    return out


def cluster_objects(namespace: str) -> set[str]:
    prefix = f"{namespace}-{RELEASE}"
    kinds = "clusterroles,clusterrolebindings,validatingadmissionpolicies"
    names = kubectl("get", f"{kinds},validatingadmissionpolicybindings", "-o", "name").split()
    return {n for n in names if n.split("/", 1)[1].startswith(prefix)}


def governance_objects(namespace: str) -> set[str]:
    group = "admissionregistration.k8s.io"
    name = f"{namespace}-{RELEASE}-governance"
    return {
        f"validatingadmissionpolicy.{group}/{name}",
        f"validatingadmissionpolicybinding.{group}/{name}",
    }


@pytest.fixture
def gateway_crds() -> Iterator[Path]:
    """`kubectl auth can-i` knows a resource only while its CRD is served: the grants on
    HTTPRoutes are checked with the Gateway API's CRDs installed."""
    with gateway_api_crds() as folder:
        yield folder


@pytest.mark.usefixtures("gateway_crds")
def test_install_upgrade_uninstall(
    release_namespace: str, make_namespace: Any, crds: None, upstream_crds: Path
) -> None:
    ns = release_namespace
    crds_before = crd_uids()

    # --- install, cluster-wide; CRDs exist, so helm must leave them as they are.
    install("install", ns)
    status = json.loads(helm("status", RELEASE, "--namespace", ns, "-o", "json"))
    assert status["info"]["status"] == "deployed"
    pod = available_pod(ns)
    assert "MODELWERK_NAMESPACES" not in env_of(pod)
    assert crd_uids() == crds_before
    assert get("service", RELEASE, ns) is not None

    user = service_account(ns)
    other = make_namespace()
    assert cluster_objects(ns) == {
        f"clusterrole.rbac.authorization.k8s.io/{ns}-{RELEASE}",
        f"clusterrole.rbac.authorization.k8s.io/{ns}-{RELEASE}-crds",
        f"clusterrolebinding.rbac.authorization.k8s.io/{ns}-{RELEASE}",
        f"clusterrolebinding.rbac.authorization.k8s.io/{ns}-{RELEASE}-crds",
        *governance_objects(ns),
    }
    binding = get("validatingadmissionpolicybinding", f"{ns}-{RELEASE}-governance")
    assert binding is not None
    assert "matchResources" not in binding["spec"]
    assert_exact_grants(user, None)
    assert_grants(user, other)
    assert_crd_reads(user, EXPECTED_CRD_READ)
    assert_nothing_forbidden(user, [ns, None])
    # The leader election's Lease: in the release namespace only.
    assert can_i(user, "create", "coordination.k8s.io", "leases", ns)
    assert not can_i(user, "create", "coordination.k8s.io", "leases", other)
    assert not can_i(user, "list", "coordination.k8s.io", "leases", ns)

    # --- upgrade to two watched namespaces: Roles there, only CRD reads cluster-wide.
    watched = [make_namespace(), make_namespace()]
    install("upgrade", ns, "watchNamespaces={" + ",".join(watched) + "}")
    assert json.loads(helm("status", RELEASE, "--namespace", ns, "-o", "json"))["version"] == 2
    pod = available_pod(ns)
    assert env_of(pod)["MODELWERK_NAMESPACES"] == ",".join(watched)
    assert cluster_objects(ns) == {
        f"clusterrole.rbac.authorization.k8s.io/{ns}-{RELEASE}-crds",
        f"clusterrolebinding.rbac.authorization.k8s.io/{ns}-{RELEASE}-crds",
        *governance_objects(ns),
    }
    binding = get("validatingadmissionpolicybinding", f"{ns}-{RELEASE}-governance")
    assert binding is not None
    (selector,) = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert selector["values"] == watched
    for where in watched:
        assert get("role.rbac.authorization.k8s.io", RELEASE, where) is not None
        assert get("rolebinding.rbac.authorization.k8s.io", RELEASE, where) is not None
    assert_exact_grants(user, watched[0])
    assert_grants(user, watched[1])
    for where in (ns, None):
        assert_no_grants(user, where)
    assert_crd_reads(user, EXPECTED_CRD_READ_NAMESPACED)
    assert_nothing_forbidden(user, [watched[0], None])

    # --- uninstall: everything of the release goes, the shared CRDs stay.
    helm("uninstall", RELEASE, "--namespace", ns, "--wait")
    wait_for("release objects deleted", lambda: get("deployment.apps", RELEASE, ns) is None)
    for kind in ("serviceaccount", "service"):
        assert get(kind, RELEASE, ns) is None, kind
    assert cluster_objects(ns) == set()
    for where in watched:
        assert get("role.rbac.authorization.k8s.io", RELEASE, where) is None
        assert get("rolebinding.rbac.authorization.k8s.io", RELEASE, where) is None
    assert crd_uids() == crds_before


# --- the operator itself under the chart's RBAC ------------------------------------------------


def token_kubeconfig(path: Path, namespace: str, service_account_name: str) -> Path:
    """A kubeconfig for the current cluster that authenticates as the ServiceAccount."""
    token = kubectl(
        "create", "token", service_account_name, "-n", namespace, "--duration=30m"
    ).strip()
    current = json.loads(kubectl("config", "view", "--minify", "--raw", "-o", "json"))
    cluster = current["clusters"][0]["cluster"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "cluster", "user": "operator"}}],
        "current-context": "operator",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def watched_resources() -> set[str]:
    """`plural.version.group` of every resource the operator's kopf handlers watch, as kopf
    names them in its log."""
    import modelwerk.handlers  # noqa: F401  (registers the handlers)

    out = set()
    for handler in kopf.get_default_registry()._watching.get_all_handlers():
        s = handler.selector
        if s is not None:
            out.add(".".join(p for p in (s.any_name or s.plural, s.version, s.group) if p))
    return out


def test_operator_runs_with_the_charts_service_account(
    namespace: str, make_namespace: Any, crds: None, upstream_crds: Path, tmp_path: Path
) -> None:
    """The real operator, authenticated with the chart's ServiceAccount token, watching one
    namespace: every watch starts, a Model and a TrainingRun are reconciled (status, Job, Events,
    TTL deletion) and the operator's own API client never gets a 403. kopf's only 403s are its
    cluster-wide namespace listing, which it falls back from to the configured names."""
    release_ns, watched = make_namespace(), namespace
    install("install", release_ns, f"watchNamespaces={{{watched}}}", extra=["--skip-crds"])
    try:
        sa = service_account(release_ns).rsplit(":", 1)[1]
        config = token_kubeconfig(tmp_path / "kubeconfig", release_ns, sa)
        # MODELWERK_JOBSET and MODELWERK_KUEUE as the chart sets them by default: no JobSet or
        # Workload RBAC, so no such watch (test_jobset.py and test_kueue.py install the CRDs).
        operator = OperatorProcess(
            str(config),
            tmp_path / "operator.log",
            "-v",
            "-n",
            watched,
            env={"MODELWERK_JOBSET": "false", "MODELWERK_KUEUE": "false"},
        )
        # Every kind's CRD before the start: kopf watches a kind only if its CRD exists then.
        with gateway_api_crds():
            operator.start()
            try:
                _exercise(operator, watched)
            finally:
                if operator.proc is not None:
                    operator.stop()
    finally:
        helm("uninstall", RELEASE, "--namespace", release_ns, "--wait", check=False)

    log = operator.log()
    forbidden = [line for line in log.splitlines() if "Forbidden" in line or " 403" in line]
    unexpected = [line for line in forbidden if '"namespaces"' not in line]
    assert unexpected == [], "\n".join(unexpected)


def _exercise(operator: OperatorProcess, watched: str) -> None:
    # Not JobSets nor Workloads: the operator runs with MODELWERK_JOBSET=false and
    # MODELWERK_KUEUE=false, as the chart's defaults set.
    expected = {
        f"Starting the watch-stream for {r} in '{watched}'"
        for r in watched_resources()
        if not r.startswith(("jobsets.", "workloads."))
    }
    wait_for(
        "every watch stream started",
        lambda: all(line in operator.log() for line in expected),
        # kopf first retries its namespace listing (settings.networking.error_backoffs).
        timeout=120,
    )
    apply(model_manifest("iris"), watched)
    apply(run_manifest("iris-1", "iris"), watched)
    apply(run_manifest("iris-2", "iris", ttlSecondsAfterFinished=1), watched)

    def reconciled() -> str | None:
        text = operator.metrics()
        done = all(
            metric_sum(text, "modelwerk_reconcile_total", kind=kind, result="ok") >= 1
            for kind in ("Model", "TrainingRun")
        )
        return text if done else None

    wait_for("Model and TrainingRuns reconciled by this operator", reconciled, timeout=60)
    job = wait_for("the Job of iris-1", lambda: get("job.batch", "iris-1", watched), timeout=60)
    assert job["metadata"]["ownerReferences"][0]["name"] == "iris-1"
    wait_for("Events about iris-1", lambda: events_for(watched, "iris-1"), timeout=60)
    # iris-2 ends (kwok ends its pod), then its TTL deletes it.
    wait_for(
        "TrainingRun iris-2 deleted after its TTL",
        lambda: get("trainingrun", "iris-2", watched) is None,
        timeout=90,
    )
    text = operator.metrics()
    assert metric_sum(text, "modelwerk_api_requests_total", code="403") == 0
    assert metric_sum(text, "modelwerk_event_post_failures_total") == 0
    assert metric_sum(text, "modelwerk_api_requests_total", verb="post") >= 1
