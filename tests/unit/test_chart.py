"""The Helm chart (helm/modelwerk) and what is generated from it: lint, both RBAC modes rendered
and least-privilege, every pod spec restricted, the values schema refusing bad values with a clear
message, and the generated files (CRD copies, operator rules, manifests/install.yaml) current.

helm is the pinned one of the local control plane's tools (`hack/cluster.sh env`)."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import kopf
import pytest
import yaml

from modelwerk import constants, kinds, wiring
from modelwerk.builders import governance, operator_rules

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "modelwerk"
NS = "modelwerk-system"

Doc = dict[str, Any]


def _load_gen_chart() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_chart", ROOT / "hack" / "gen-chart.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_chart = _load_gen_chart()


@cache
def helm_bin() -> str:
    if os.environ.get("MODELWERK_FAST") and shutil.which("helm") is None:
        # hack/test.sh --fast builds nothing; the full tiers build helm and run these.
        pytest.skip("helm is not built yet (hack/test.sh --fast builds no tools)")
    return str(gen_chart.helm_binary())


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [helm_bin(), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def render(*sets: str, release: str = "modelwerk", namespace: str = NS) -> list[Doc]:
    args = ["template", release, str(CHART), "--namespace", namespace]
    for value in sets:
        args += ["--set", value]
    return [d for d in yaml.safe_load_all(helm(*args).stdout) if d]


def of_kind(docs: Sequence[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: Sequence[Doc], kind: str) -> Doc:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


NAMESPACED = ("watchNamespaces={team-a,team-b}",)
ALL_FEATURES = (
    "serviceMonitor.enabled=true",
    "prometheusRule.enabled=true",
    "networkPolicy.enabled=true",
    "webhook.enabled=true",
    "webhook.token=s3cret",
    "prometheus.url=http://prometheus-operated.monitoring:9090",
)
VALUE_SETS = {
    "defaults": (),
    "namespaced": NAMESPACED,
    "all-features": ALL_FEATURES,
    "namespaced-all-features": NAMESPACED + ALL_FEATURES,
    "existing-secret": ("webhook.enabled=true", "webhook.existingSecret=my-token"),
}


# --- lint -------------------------------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
def test_helm_lint(strict: bool) -> None:
    proc = helm("lint", str(CHART), *(["--strict"] if strict else []), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_lint_with_value_sets(name: str) -> None:
    sets = [a for value in VALUE_SETS[name] for a in ("--set", value)]
    proc = helm("lint", str(CHART), "--strict", *sets, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "modelwerk"
    assert chart["appVersion"] == "0.1.0"
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    # Every default value is described by the schema (additionalProperties is false).
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) == set(schema["properties"])


# --- the operator Deployment and its Service ---------------------------------------------------


def _env(container: Doc) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def test_operator_deployment_defaults() -> None:
    docs = render()
    dep = one(docs, "Deployment")
    assert dep["metadata"]["namespace"] == NS
    # Two replicas, one leader: rolling is safe, a PDB keeps one through drains, and the
    # replicas prefer different nodes.
    assert dep["spec"]["replicas"] == 2
    assert dep["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
    anti = dep["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    (term,) = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    pod = dep["spec"]["template"]["spec"]
    sa = one(docs, "ServiceAccount")
    assert pod["serviceAccountName"] == sa["metadata"]["name"]
    (container,) = pod["containers"]
    assert container["command"] == ["modelwerk", "run"]
    assert container["image"] == "ghcr.io/modelwerk/modelwerk:0.1.0"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http-metrics": 8080, "health": 8081}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert set(container["resources"]) == {"requests", "limits"}
    for part in ("requests", "limits"):
        assert set(container["resources"][part]) == {"cpu", "memory"}
    env = _env(container)
    assert "MODELWERK_NAMESPACES" not in env  # cluster-wide
    assert env["MODELWERK_SERVING_IMAGE"] == "ghcr.io/modelwerk/model-server:0.1.0"
    assert env["MODELWERK_PROMETHEUS_URL"] == ""
    assert "MODELWERK_WEBHOOK_TOKEN_FILE" not in env
    assert env["MODELWERK_LEADER_ELECT"] == "true"
    assert env["MODELWERK_LEADER_ELECTION_ID"] == dep["metadata"]["name"]
    assert (env["MODELWERK_LEASE_DURATION"], env["MODELWERK_RENEW_DEADLINE"]) == ("15", "10")
    assert env["MODELWERK_RETRY_PERIOD"] == "2"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert of_kind(docs, "Secret") == []

    svc = one(docs, "Service")
    assert svc["spec"]["ports"] == [
        {"name": "http-metrics", "port": 8080, "targetPort": "http-metrics", "protocol": "TCP"}
    ]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()
    assert dep["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_values_reach_the_container() -> None:
    docs = render(
        *NAMESPACED,
        "image.repository=registry.example/mw",
        "image.tag=v9",
        "servingImage.digest=sha256:" + "a" * 64,
        "prometheus.url=http://prom:9090",
        "verbose=true",
    )
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    env = _env(container)
    assert env["MODELWERK_NAMESPACES"] == "team-a,team-b"
    assert env["MODELWERK_PROMETHEUS_URL"] == "http://prom:9090"
    assert env["MODELWERK_SERVING_IMAGE"] == "ghcr.io/modelwerk/model-server@sha256:" + "a" * 64
    assert container["image"] == "registry.example/mw:v9"
    assert container["args"] == ["--verbose"]


def test_webhook_token_secret_is_mounted_and_named_in_env() -> None:
    docs = render("webhook.enabled=true", "webhook.token=s3cret")
    secret = one(docs, "Secret")
    assert base64.b64decode(secret["data"]["token"]).decode() == "s3cret"
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    token_file = Path(_env(container)["MODELWERK_WEBHOOK_TOKEN_FILE"])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(token_file.parent))
    assert mount["readOnly"] is True
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert [i["path"] for i in volume["secret"]["items"]] == [token_file.name]


def test_webhook_existing_secret_is_used_not_created() -> None:
    docs = render("webhook.enabled=true", "webhook.existingSecret=my-token")
    assert of_kind(docs, "Secret") == []
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert {"secretName": "my-token"}.items() <= next(
        v["secret"] for v in pod["volumes"] if "secret" in v
    ).items()


# --- pod security ------------------------------------------------------------------------------


def pod_specs(node: Any) -> Iterator[Doc]:
    """Every pod spec anywhere in a rendered object (a dict with `containers`)."""
    if isinstance(node, dict):
        if isinstance(node.get("containers"), list):
            yield node
        for value in node.values():
            yield from pod_specs(value)
    elif isinstance(node, list):
        for value in node:
            yield from pod_specs(value)


def restricted_violations(pod: Doc) -> list[str]:
    """Pod Security Standard `restricted`, plus our own rules (read-only root filesystem)."""
    bad = []
    psc = pod.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            bad.append(f"pod {field}")
    for volume in pod.get("volumes") or []:
        allowed = {"name", "emptyDir", "secret", "configMap", "projected", "downwardAPI"}
        if set(volume) - allowed:
            bad.append(f"volume {volume['name']} of type {sorted(set(volume) - allowed)}")
    pod_seccomp = (psc.get("seccompProfile") or {}).get("type")
    for c in (pod.get("initContainers") or []) + pod["containers"]:
        sc = c.get("securityContext") or {}
        name = c["name"]
        if sc.get("allowPrivilegeEscalation") is not False:
            bad.append(f"{name}: allowPrivilegeEscalation not false")
        if sc.get("privileged"):
            bad.append(f"{name}: privileged")
        if sc.get("readOnlyRootFilesystem") is not True:
            bad.append(f"{name}: root filesystem writable")
        caps = sc.get("capabilities") or {}
        if caps.get("drop") != ["ALL"]:
            bad.append(f"{name}: capabilities not dropped")
        if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
            bad.append(f"{name}: capabilities added")
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            bad.append(f"{name}: runAsNonRoot not set")
        if 0 in (sc.get("runAsUser"), psc.get("runAsUser")):
            bad.append(f"{name}: runs as root")
        seccomp = (sc.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            bad.append(f"{name}: seccomp {seccomp}")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                bad.append(f"{name}: hostPort")
    return bad


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_pod_spec_is_restricted(name: str) -> None:
    docs = render(*VALUE_SETS[name])
    specs = [spec for doc in docs for spec in pod_specs(doc)]
    assert specs, "no pod spec rendered"
    for spec in specs:
        assert restricted_violations(spec) == []


def test_the_restricted_check_catches_violations() -> None:
    pod = {"containers": [{"name": "c", "securityContext": {"privileged": True}}]}
    assert len(restricted_violations(pod)) >= 5


# --- RBAC --------------------------------------------------------------------------------------

WATCH = {"list", "watch"}
APPLY = WATCH | {"create", "patch", "delete"}
# What the operator needs in a namespace it watches, and nothing more (least privilege: every
# verb here is used by a code path, see kinds.py; tests/integration/test_helm.py checks in the
# audit log that the operator's ServiceAccount uses each of them).
EXPECTED_NAMESPACED: dict[tuple[str, str], set[str]] = {
    ("modelwerk.io", "models"): WATCH | {"get"},
    ("modelwerk.io", "deployments"): WATCH,
    ("modelwerk.io", "trainingruns"): WATCH | {"create", "delete"},
    ("modelwerk.io", "models/status"): {"patch"},
    ("modelwerk.io", "trainingruns/status"): {"patch"},
    ("modelwerk.io", "deployments/status"): {"patch"},
    ("batch", "jobs"): WATCH | {"create", "delete", "get", "patch"},
    ("", "pods"): WATCH,
    ("", "serviceaccounts"): {"get"},
    ("", "services"): APPLY,
    ("apps", "deployments"): APPLY,
    ("autoscaling", "horizontalpodautoscalers"): APPLY,
    ("policy", "poddisruptionbudgets"): APPLY,
    ("machinelearning.seldon.io", "seldondeployments"): APPLY,
    ("monitoring.coreos.com", "prometheusrules"): APPLY,
    ("monitoring.coreos.com", "servicemonitors"): APPLY,
    ("monitoring.coreos.com", "podmonitors"): APPLY,
    ("networking.k8s.io", "networkpolicies"): APPLY,
    ("gateway.networking.k8s.io", "httproutes"): APPLY,
    ("", "events"): {"create", "list"},
}
# Cluster-wide: kopf's resource scanning lists and watches CRDs; with watchNamespaces it is off.
EXPECTED_CRD_READ = {("apiextensions.k8s.io", "customresourcedefinitions"): {"get"} | WATCH}
EXPECTED_CRD_READ_NAMESPACED = {("apiextensions.k8s.io", "customresourcedefinitions"): {"get"}}


# Only with jobSet.enabled=true.
EXPECTED_JOBSET: dict[tuple[str, str], set[str]] = {
    ("jobset.x-k8s.io", "jobsets"): WATCH | {"create", "get", "patch"},
}
# Only with kueue.enabled=true: Workloads read, spec.active patched (a queued run's suspend).
EXPECTED_KUEUE: dict[tuple[str, str], set[str]] = {
    ("kueue.x-k8s.io", "workloads"): WATCH | {"patch"},
}


def grants(rules: Sequence[Doc]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        # Only the leader Lease is granted by name (get/update of the one Lease).
        assert "resourceNames" not in rule or rule["resources"] == ["leases"]
        assert "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def bound_to(docs: Sequence[Doc], sa: str, namespace: str, role_kind: str) -> list[Doc]:
    binding_kind = "ClusterRoleBinding" if role_kind == "ClusterRole" else "RoleBinding"
    roles = {
        (r["metadata"].get("namespace"), r["metadata"]["name"]): r for r in of_kind(docs, role_kind)
    }
    out = []
    for b in of_kind(docs, binding_kind):
        subjects = {(s["kind"], s["name"], s.get("namespace")) for s in b["subjects"]}
        assert subjects == {("ServiceAccount", sa, namespace)}
        assert b["roleRef"]["kind"] == role_kind
        out.append(roles[(b["metadata"].get("namespace"), b["roleRef"]["name"])])
    return out


LEASE_GRANTS = {("coordination.k8s.io", "leases"): {"create", "get", "update"}}


def leader_roles(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in of_kind(docs, "Role") if r["metadata"]["name"].endswith("-leader")]


def test_the_lease_is_granted_in_the_release_namespace_only() -> None:
    for values in (NAMESPACED, ()):
        docs = render(*values)
        sa = one(docs, "ServiceAccount")["metadata"]["name"]
        (role,) = leader_roles(docs)
        assert role["metadata"]["namespace"] == NS
        assert role in bound_to(docs, sa, NS, "Role")
        assert grants(role["rules"]) == LEASE_GRANTS
        named = [r for r in role["rules"] if "get" in r["verbs"]]
        assert named[0]["resourceNames"] == [one(docs, "Deployment")["metadata"]["name"]]
    docs = render("leaderElection.enabled=false", "replicaCount=1")
    assert leader_roles(docs) == []
    assert of_kind(docs, "PodDisruptionBudget") == []
    dep = one(docs, "Deployment")
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    assert "MODELWERK_LEADER_ELECT" not in _env(dep["spec"]["template"]["spec"]["containers"][0])


def test_cluster_wide_rbac() -> None:
    docs = render()
    sa = one(docs, "ServiceAccount")["metadata"]["name"]
    assert of_kind(docs, "Role") == leader_roles(docs)
    cluster_roles = bound_to(docs, sa, NS, "ClusterRole")
    assert len(cluster_roles) == len(of_kind(docs, "ClusterRole")) == 2
    combined = grants([r for role in cluster_roles for r in role["rules"]])
    assert combined == {**EXPECTED_NAMESPACED, **EXPECTED_CRD_READ}


def test_namespaced_rbac_grants_only_crd_reads_cluster_wide() -> None:
    docs = render(*NAMESPACED)
    sa = one(docs, "ServiceAccount")["metadata"]["name"]
    # Cluster-wide: nothing but reading CRDs.
    for role in of_kind(docs, "ClusterRole"):
        assert grants(role["rules"]) == EXPECTED_CRD_READ_NAMESPACED, role["metadata"]["name"]
    assert len(bound_to(docs, sa, NS, "ClusterRole")) == 1
    # A Role and RoleBinding in each watched namespace, none elsewhere.
    roles = [r for r in bound_to(docs, sa, NS, "Role") if r not in leader_roles(docs)]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert grants(role["rules"]) == EXPECTED_NAMESPACED
    (container,) = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert _env(container)["MODELWERK_NAMESPACES"] == "team-a,team-b"


def test_cluster_scoped_names_do_not_collide_across_namespaces() -> None:
    a = {d["metadata"]["name"] for d in render(namespace="ns-a") if d["kind"].startswith("Cluster")}
    b = {d["metadata"]["name"] for d in render(namespace="ns-b") if d["kind"].startswith("Cluster")}
    assert a
    assert not a & b


def test_rbac_covers_what_the_code_watches_and_applies() -> None:
    """Derived from the code, so a new handler or child kind without RBAC fails here."""
    import modelwerk.handlers  # noqa: F401  (registers the handlers)

    granted = EXPECTED_NAMESPACED | EXPECTED_CRD_READ | EXPECTED_JOBSET | EXPECTED_KUEUE
    registry = kopf.get_default_registry()
    watched = {
        (h.selector.group or "", h.selector.any_name or h.selector.plural)
        for h in registry._watching.get_all_handlers()
        if h.selector is not None
    }
    assert ("modelwerk.io", "trainingruns") in watched
    assert watched == {(k.group, k.plural) for k in wiring.ROUTES}
    for resource in watched:
        assert granted.get(resource, set()) >= WATCH, f"{resource} is watched"
    children = kinds.owned_by(constants.LABEL_DEPLOYMENT)
    assert kinds.APPS_DEPLOYMENT in children
    for kind in children:
        assert granted.get((kind.group, kind.plural), set()) >= APPLY, f"{kind} is applied"
    # The chart's rules are the table's (hack/gen-chart.py writes them), and grant exactly this.
    optional = kinds.rbac_rules(namespaced=True, enabled_by="JOBSET")
    optional += kinds.rbac_rules(namespaced=True, enabled_by="KUEUE")
    from_table = grants(
        kinds.rbac_rules(namespaced=True) + kinds.rbac_rules(namespaced=False) + optional
    )
    assert from_table == granted
    docs = render("jobSet.enabled=true", "kueue.enabled=true")
    rendered = grants([r for role in of_kind(docs, "ClusterRole") for r in role["rules"]])
    assert rendered == granted


def test_nothing_sensitive_is_granted() -> None:
    for values in VALUE_SETS.values():
        docs = render(*values)
        for role in of_kind(docs, "ClusterRole") + of_kind(docs, "Role"):
            granted = grants(role["rules"])
            for group, resource in granted:
                assert "*" not in (group, resource)
                assert resource not in ("secrets", "pods/exec", "pods/attach", "configmaps")
                assert resource not in ("roles", "rolebindings", "clusterroles", "namespaces")
            assert "create" not in granted.get(("", "pods"), set())
            assert all("*" not in verbs for verbs in granted.values())


# --- governance ------------------------------------------------------------------------------


def test_governance_policy_on_by_default_cluster_wide() -> None:
    docs = render()
    sa = one(docs, "ServiceAccount")["metadata"]["name"]
    policy = one(docs, "ValidatingAdmissionPolicy")
    binding = one(docs, "ValidatingAdmissionPolicyBinding")
    assert policy["apiVersion"] == binding["apiVersion"] == "admissionregistration.k8s.io/v1"
    # The chart's policy is the builder's, with the release's service account filled in.
    assert policy["spec"] == governance.build_policy_spec(f"system:serviceaccount:{NS}:{sa}")
    assert binding["spec"] == {
        "policyName": policy["metadata"]["name"],
        "validationActions": ["Deny"],
    }
    assert policy["metadata"]["name"].startswith(f"{NS}-")


def test_governance_binding_is_scoped_to_the_watched_namespaces() -> None:
    binding = one(render(*NAMESPACED), "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["matchResources"] == {
        "namespaceSelector": {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "In",
                    "values": ["team-a", "team-b"],
                }
            ]
        }
    }


def test_governance_can_be_turned_off() -> None:
    for sets in ((), NAMESPACED):
        docs = render(*sets, "governance.enabled=false")
        assert of_kind(docs, "ValidatingAdmissionPolicy") == []
        assert of_kind(docs, "ValidatingAdmissionPolicyBinding") == []


def test_governance_names_the_custom_service_account() -> None:
    policy = one(render("serviceAccount.name=ops"), "ValidatingAdmissionPolicy")
    (operator,) = [v for v in policy["spec"]["variables"] if v["name"] == "operator"]
    assert operator["expression"] == f"'system:serviceaccount:{NS}:ops'"


# --- optional objects --------------------------------------------------------------------------


def test_optional_objects_off_by_default() -> None:
    kinds = {d["kind"] for d in render("governance.enabled=false")}
    assert kinds == {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",  # the leader Lease's
        "RoleBinding",
        "Service",
        "Deployment",
        "PodDisruptionBudget",
    }


def test_service_monitor_scrapes_the_metrics_port() -> None:
    docs = render("serviceMonitor.enabled=true", "serviceMonitor.labels.release=prometheus")
    sm, svc = one(docs, "ServiceMonitor"), one(docs, "Service")
    assert sm["metadata"]["labels"]["release"] == "prometheus"
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [NS]}
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert [e["port"] for e in sm["spec"]["endpoints"]] == ["http-metrics"]


def test_prometheus_rule_is_the_operator_builders() -> None:
    docs = render("prometheusRule.enabled=true")
    rule, svc = one(docs, "PrometheusRule"), one(docs, "Service")
    # The job of a ServiceMonitor scrape is the Service's name.
    expected = operator_rules.build_operator_rule_groups(job=svc["metadata"]["name"], namespace=NS)
    assert rule["spec"]["groups"] == expected
    # Prometheus' own templates reach it unevaluated.
    assert "{{ $labels.kind }}" in json.dumps(rule)
    custom = one(
        render("prometheusRule.enabled=true", "prometheusRule.job=.*op.*"), "PrometheusRule"
    )
    assert custom["spec"]["groups"] == operator_rules.build_operator_rule_groups(
        job=".*op.*", namespace=NS
    )


def test_network_policy() -> None:
    docs = render("networkPolicy.enabled=true", "prometheus.url=http://prom.monitoring:9090")
    spec = one(docs, "NetworkPolicy")["spec"]
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    by_port = {r["ports"][0]["port"]: r for r in spec["ingress"]}
    assert by_port[8080]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    assert "from" not in by_port[8081]  # kubelet probes
    egress_ports = {(p["port"], p["protocol"]) for r in spec["egress"] for p in r["ports"]}
    assert {(53, "UDP"), (53, "TCP"), (443, "TCP"), (6443, "TCP"), (9090, "TCP")} <= egress_ports
    no_prometheus = one(render("networkPolicy.enabled=true"), "NetworkPolicy")["spec"]
    assert 9090 not in {p["port"] for r in no_prometheus["egress"] for p in r["ports"]}


# --- the values schema -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ["replicaCount=2", "leaderElection.enabled=false"],
            "replicaCount > 1 needs leaderElection.enabled=true",
        ),
        (["replicaCount=0"], "at '/replicaCount': minimum: got 0, want 1"),
        (["watchNamespaces=team-a"], "at '/watchNamespaces': got string, want array"),
        (["watchNamespaces={Team_A}"], "at '/watchNamespaces/0': 'Team_A' does not match pattern"),
        (["watchNamespaces={a,a}"], "at '/watchNamespaces': items at 0 and 1 are equal"),
        (["image.tag=2"], "at '/image/tag': got number, want string"),
        (["image.tag=true"], "at '/image/tag': got boolean, want string"),
        (["image.tag=a b"], "at '/image/tag': 'a b' does not match pattern"),
        (["image.digest=latest"], "at '/image/digest': 'latest' does not match pattern"),
        (["image.pullPolicy=Sometimes"], "at '/image/pullPolicy': value must be one of"),
        (["replicas=1"], "at '': additional properties 'replicas' not allowed"),
        (["image.name=x"], "at '/image': additional properties 'name' not allowed"),
        (["workers=0"], "at '/workers': minimum: got 0, want 1"),
        (["prometheus.url=prom:9090"], "at '/prometheus/url': 'prom:9090' does not match"),
        (["serviceMonitor.interval=often"], "at '/serviceMonitor/interval'"),
        (['prometheusRule.job=a"b'], "at '/prometheusRule/job'"),
        (["networkPolicy.apiServer.ports={0}"], "at '/networkPolicy/apiServer/ports/0'"),
        (
            ["webhook.enabled=true"],
            "webhook.token is required when webhook.enabled is true "
            "(or set webhook.existingSecret)",
        ),
    ],
)
def test_bad_values_fail_with_a_clear_message(sets: list[str], message: str) -> None:
    args = ["template", "modelwerk", str(CHART), "--namespace", NS]
    for value in sets:
        args += ["--set", value]
    proc = helm(*args, check=False)
    assert proc.returncode != 0, f"{sets} rendered:\n{proc.stdout[:500]}"
    assert message in proc.stderr


def test_numeric_tag_from_a_values_file_is_refused(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("image:\n  tag: 1.10\n")  # YAML reads 1.1, a float: the wrong image
    proc = helm("template", "modelwerk", str(CHART), "-f", str(values), check=False)
    assert proc.returncode != 0
    assert "at '/image/tag': got number, want string" in proc.stderr


# --- generated files ---------------------------------------------------------------------------


def test_crd_copies_are_byte_identical() -> None:
    sources = {p.name: p.read_bytes() for p in (ROOT / "crds").glob("*.yaml")}
    copies = {p.name: p.read_bytes() for p in (CHART / "crds").glob("*.yaml")}
    assert sources, "no CRDs in crds/"
    assert sorted(copies) == sorted(sources), "run hack/gen-chart.py"
    for name, content in sources.items():
        assert copies[name] == content, f"helm/modelwerk/crds/{name} drifted: run hack/gen-chart.py"


def test_operator_rules_file_is_current() -> None:
    committed = CHART / "files" / "operator-rules.yaml"
    assert committed.read_text() == gen_chart.operator_rules(), "run hack/gen-chart.py"


def test_install_manifest_is_current() -> None:
    committed = (ROOT / "manifests" / "install.yaml").read_text()
    assert committed == gen_chart.install_manifest(helm_bin()), "run hack/gen-chart.py"
    docs = [d for d in yaml.safe_load_all(committed) if d]
    kinds = [d["kind"] for d in docs]
    assert kinds.count("CustomResourceDefinition") == len(list((ROOT / "crds").glob("*.yaml")))
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] == "Deployment"} == {NS}


def test_gen_chart_reports_no_drift() -> None:
    assert gen_chart.drift(helm_bin()) == []


def test_argocd_application() -> None:
    app = yaml.safe_load((ROOT / "manifests" / "argocd" / "application.yaml").read_text())
    assert app["apiVersion"] == "argoproj.io/v1alpha1"
    assert app["kind"] == "Application"
    source = app["spec"]["source"]
    assert source["repoURL"] == "https://github.com/modelwerk/modelwerk"
    assert source["path"] == "helm/modelwerk"
    assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"]
    # Its values pass the chart's schema.
    values = yaml.safe_dump(source["helm"].get("valuesObject") or {})
    proc = subprocess.run(
        [helm_bin(), "template", "modelwerk", str(CHART), "-f", "-"],
        input=values,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr


def test_jobset_rbac_only_when_enabled_in_both_install_modes() -> None:
    for mode in ((), NAMESPACED):
        docs = render(*mode)
        dep = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        assert _env(dep)["MODELWERK_JOBSET"] == "false"
        roles = [*of_kind(docs, "Role"), *of_kind(docs, "ClusterRole")]
        assert all(("jobset.x-k8s.io", "jobsets") not in grants(r["rules"]) for r in roles)

        docs = render(*mode, "jobSet.enabled=true")
        dep = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        assert _env(dep)["MODELWERK_JOBSET"] == "true"
        roles = [r for r in of_kind(docs, "Role") if r not in leader_roles(docs)]
        roles += [r for r in of_kind(docs, "ClusterRole") if "crds" not in r["metadata"]["name"]]
        assert roles
        for role in roles:
            assert grants(role["rules"]) == {**EXPECTED_NAMESPACED, **EXPECTED_JOBSET}


def test_kueue_rbac_only_when_enabled_in_both_install_modes() -> None:
    for mode in ((), NAMESPACED):
        docs = render(*mode)
        dep = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        assert _env(dep)["MODELWERK_KUEUE"] == "false"
        roles = [*of_kind(docs, "Role"), *of_kind(docs, "ClusterRole")]
        assert all(("kueue.x-k8s.io", "workloads") not in grants(r["rules"]) for r in roles)

        docs = render(*mode, "kueue.enabled=true")
        dep = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
        assert _env(dep)["MODELWERK_KUEUE"] == "true"
        roles = [r for r in of_kind(docs, "Role") if r not in leader_roles(docs)]
        roles += [r for r in of_kind(docs, "ClusterRole") if "crds" not in r["metadata"]["name"]]
        assert roles
        for role in roles:
            assert grants(role["rules"]) == {**EXPECTED_NAMESPACED, **EXPECTED_KUEUE}
