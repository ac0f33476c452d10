"""Our CRDs and the upstream ones against the real apiserver: they install and are Established,
their names resolve as a user types them, the samples are accepted and print their columns, and
every invalid object is refused at `kubectl apply` with a message that names the rule."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.cluster import ROOT, KubectlError, apply, condition, get, kubectl

pytestmark = pytest.mark.integration

GROUP = "modelwerk.io"
CRD_DIR = ROOT / "crds"
SAMPLES = ROOT / "manifests" / "samples"

# plural -> (kind, short names); the short names are part of the user interface.
OURS = {
    "models": ("Model", {"mwm"}),
    "trainingruns": ("TrainingRun", {"tr", "mwtr"}),
    "deployments": ("Deployment", {"mwd", "mwdeploy"}),
}

Manifest = dict[str, Any]


def crd_file(plural: str) -> Manifest:
    crd: Manifest = yaml.safe_load((CRD_DIR / f"{GROUP}_{plural}.yaml").read_text())
    return crd


def printer_columns(plural: str) -> list[str]:
    """The header `kubectl get` prints for our kind, from the generated CRD (priority-0 columns)."""
    (version,) = crd_file(plural)["spec"]["versions"]
    columns = [
        c["name"].upper()
        for c in version.get("additionalPrinterColumns", [])
        if c.get("priority", 0) == 0
    ]
    return ["NAME", *columns]


def header(text: str) -> list[str]:
    lines = text.splitlines()
    assert lines, "kubectl get printed nothing"
    return lines[0].split()


def assert_established(name: str) -> Manifest:
    crd = get("crd", name)
    assert crd is not None, f"CRD {name} is not installed"
    for type_ in ("Established", "NamesAccepted"):
        cond = condition(crd, type_)
        assert cond is not None, f"{name}: no {type_} condition"
        assert cond["status"] == "True", f"{name}: {type_} is {cond}"
    return crd


# --- installation and names ---------------------------------------------------------------


@pytest.mark.parametrize("plural", sorted(OURS))
def test_crd_is_established_with_its_names(crds: None, plural: str) -> None:
    kind, short_names = OURS[plural]
    crd = assert_established(f"{plural}.{GROUP}")
    accepted = crd["status"]["acceptedNames"]
    assert accepted["kind"] == kind
    assert accepted["plural"] == plural
    # acceptedNames, not spec.names: a short name the apiserver refused would be missing here.
    assert set(accepted.get("shortNames", [])) == short_names
    assert set(accepted.get("categories", [])) == {"modelwerk"}
    # The installed CRD is the generated file, not a stale copy.
    assert crd["spec"]["versions"] == crd_file(plural)["spec"]["versions"]


def test_kubectl_get_crd_lists_ours(crds: None) -> None:
    names = {line.split()[0] for line in kubectl("get", "crd").splitlines()[1:]}
    assert {f"{plural}.{GROUP}" for plural in OURS} <= names


def test_discovery_serves_short_names(crds: None) -> None:
    out = kubectl("api-resources", f"--api-group={GROUP}", "--no-headers")
    seen: dict[str, set[str]] = {}
    for line in out.splitlines():
        fields = line.split()
        # NAME SHORTNAMES APIVERSION NAMESPACED KIND
        assert fields[-3] == f"{GROUP}/v1alpha1", line
        assert fields[-2] == "true", f"not namespaced: {line}"
        seen[fields[0]] = set(fields[1].split(","))
    assert seen == {plural: short for plural, (_, short) in OURS.items()}


def test_short_names_and_category_resolve(crds: None, namespace: str) -> None:
    for plural, (_, short_names) in OURS.items():
        for name in (plural, *short_names):
            # An unknown resource name is an error; these must all resolve to our kinds.
            out = kubectl("get", name, "-n", namespace, "-o", "json")
            assert '"items": []' in out, out
    out = kubectl("get", "modelwerk", "-n", namespace, "-o", "json")
    assert '"items": []' in out, out


def test_deployment_still_means_apps_v1(crds: None, namespace: str) -> None:
    name = "same-name"
    apps = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 1000,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "c",
                            "image": "registry.k8s.io/pause:3.10",
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }
    ours = {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "Deployment",
        "metadata": {"name": name},
        # A Model that does not exist: nothing for an operator to roll out.
        "spec": {"model": "no-such-model", "version": 1, "replicas": 0},
    }
    apply(apps, namespace)
    apply(ours, namespace)

    jsonpath = "-o=jsonpath={.apiVersion}"
    assert kubectl("get", "deployment", name, "-n", namespace, jsonpath) == "apps/v1"
    assert kubectl("get", "deployments", name, "-n", namespace, jsonpath) == "apps/v1"
    assert kubectl("get", "deploy", name, "-n", namespace, jsonpath) == "apps/v1"
    for ref in ("mwd", "mwdeploy", f"deployments.{GROUP}"):
        assert kubectl("get", ref, name, "-n", namespace, jsonpath) == f"{GROUP}/v1alpha1", ref

    # The table of `kubectl get mwd` is ours, that of `kubectl get deployment` is apps'.
    assert header(kubectl("get", "mwd", name, "-n", namespace)) == printer_columns("deployments")
    apps_header = header(kubectl("get", "deployment", name, "-n", namespace))
    assert "UP-TO-DATE" in apps_header
    assert "MODEL" not in apps_header


# --- samples --------------------------------------------------------------------------------

SAMPLE_KINDS = [
    # sample file, plural, columns that must stay whatever the generator does
    ("model.yaml", "models", ["LATEST", "PRODUCTION", "READY"]),
    ("trainingrun.yaml", "trainingruns", ["MODEL", "PHASE", "METRIC", "VERSION"]),
    ("trainingrun-distributed.yaml", "trainingruns", ["MODEL", "PHASE", "METRIC", "VERSION"]),
    ("trainingrun-jobset.yaml", "trainingruns", ["MODEL", "PHASE", "METRIC", "VERSION"]),
    ("trainingrun-queued.yaml", "trainingruns", ["MODEL", "PHASE", "METRIC", "VERSION"]),
    ("deployment.yaml", "deployments", ["MODEL", "VERSION", "PHASE", "READY"]),
]


@pytest.mark.parametrize(("sample", "plural", "must_have"), SAMPLE_KINDS)
def test_sample_is_accepted_and_prints_columns(
    crds: None, namespace: str, sample: str, plural: str, must_have: list[str]
) -> None:
    path = SAMPLES / sample
    manifest = yaml.safe_load(path.read_text())
    out = kubectl("apply", "-n", namespace, "-f", str(path))
    assert "created" in out, out
    name = manifest["metadata"]["name"]
    # Qualified: plain `deployments` is apps/v1.
    resource = f"{plural}.{GROUP}"
    stored = get(resource, name, namespace)
    assert stored is not None
    assert stored["kind"] == manifest["kind"] == OURS[plural][0]
    # Accepted as written (defaults may add fields, none may be dropped by pruning).
    assert_subset(manifest["spec"], stored["spec"], "spec")

    columns = header(kubectl("get", resource, "-n", namespace))
    assert columns == printer_columns(plural)
    assert columns[-1] == "AGE"
    for column in must_have:
        assert column in columns


def assert_subset(expected: Any, actual: Any, where: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} was pruned"
            assert_subset(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{where}: {actual!r}"
        assert len(actual) == len(expected), f"{where}: {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            assert_subset(e, a, f"{where}[{i}]")
    else:
        assert expected == actual, f"{where}: {actual!r} != {expected!r}"


# --- invalid objects ------------------------------------------------------------------------


def model(name: str = "iris", **spec: Any) -> Manifest:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "Model",
        "metadata": {"name": name},
        "spec": spec,
    }


def run(name: str = "run-1", **spec: Any) -> Manifest:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "TrainingRun",
        "metadata": {"name": name},
        "spec": {"image": "ghcr.io/modelwerk/iris-trainer:0.1.0", **spec},
    }


def deployment(name: str = "serve", **spec: Any) -> Manifest:
    return {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"model": "iris", **spec},
    }


LONG = "a" * 64
EITHER = "set exactly one of version or alias"

# (id, manifest, fragments the apiserver's message must contain)
INVALID: list[tuple[str, Manifest, list[str]]] = [
    # Deployment: version xor alias, at the top and in the canary
    ("deploy-version-and-alias", deployment(version=1, alias="production"), [f"spec: {EITHER}"]),
    ("deploy-neither", deployment(), [f"spec: {EITHER}"]),
    (
        "canary-version-and-alias",
        deployment(version=1, canary={"version": 2, "alias": "candidate"}),
        [f"spec.canary: {EITHER}"],
    ),
    (
        "canary-neither",
        deployment(version=1, canary={"trafficPercent": 10}),
        [f"spec.canary: {EITHER}"],
    ),
    (
        "traffic-101",
        deployment(version=1, canary={"version": 2, "trafficPercent": 101}),
        ["spec.canary.trafficPercent", "less than or equal to 100"],
    ),
    (
        "traffic-negative",
        deployment(version=1, canary={"version": 2, "trafficPercent": -1}),
        ["spec.canary.trafficPercent", "greater than or equal to 0"],
    ),
    (
        "canary-steps-not-increasing",
        deployment(version=1, canary={"version": 2, "analysis": {"steps": [50, 10, 100]}}),
        ["canary.analysis.steps must be strictly increasing"],
    ),
    # evaluation direction
    (
        "run-direction-up",
        run(evaluation={"metric": "accuracy", "direction": "up"}),
        ["spec.evaluation.direction", 'Unsupported value: "up"', '"max", "min"'],
    ),
    (
        "promotion-direction-up",
        model(promotion={"alias": "candidate", "metric": "accuracy", "direction": "up"}),
        ["spec.promotion.direction", 'Unsupported value: "up"'],
    ),
    # model names
    (
        "model-name-too-long",
        model(name=LONG),
        ["metadata.name must be at most 63 characters"],
    ),
    ("model-name-uppercase", model(name="Iris"), ["a lowercase RFC 1123 subdomain"]),
    ("deploy-model-too-long", deployment(model=LONG, version=1), ["spec.model", "Too long", "63"]),
    (
        "deploy-model-uppercase",
        deployment(model="Iris", version=1),
        ["spec.model", "should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'"],
    ),
    (
        "run-model-uppercase",
        run(model="Iris"),
        ["spec.model", "should match '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'"],
    ),
    (
        "run-name-too-long",
        run(name=LONG),
        ["metadata.name must be at most 63 characters"],
    ),
    (
        "retrain-template-other-model",
        model(retrain={"template": {"model": "other", "image": "trainer:1"}}),
        ["spec.retrain.template.model must be empty or this Model's own name"],
    ),
    # monitoring labels
    (
        "label-value-too-long",
        deployment(version=1, monitoring={"labels": {"team": LONG}}),
        ["spec.monitoring.labels.team", "Too long", "63"],
    ),
    (
        "label-value-with-space",
        deployment(version=1, monitoring={"labels": {"team": "m l"}}),
        ["spec.monitoring.labels.team", "should match"],
    ),
    (
        "label-key-invalid",
        deployment(version=1, monitoring={"labels": {"not a key": "ml"}}),
        ["label keys must be at most 317 characters"],
    ),
    # a TrainingRun is not a pod spec: what it does not declare it cannot ask for
    (
        "run-privileged",
        run(securityContext={"privileged": True}),
        ['unknown field "spec.securityContext"'],
    ),
    (
        "run-hostpath",
        run(volumes=[{"name": "root", "hostPath": {"path": "/"}}]),
        ['unknown field "spec.volumes"'],
    ),
    ("run-host-network", run(hostNetwork=True), ['unknown field "spec.hostNetwork"']),
    ("run-node-name", run(nodeName="kwok-node-0"), ['unknown field "spec.nodeName"']),
    (
        "run-env-value-from",
        run(env=[{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]),
        ['unknown field "spec.env[0].valueFrom"'],
    ),
    (
        "run-env-reserved",
        run(env=[{"name": "MODELWERK_REPORT_URL", "value": "http://evil"}]),
        ["spec.env[0]", "env names starting with MODELWERK_ are reserved for the operator"],
    ),
    # governance: automatic promotion never moves a protected alias
    (
        "promotion-of-a-protected-alias",
        model(
            promotion={"alias": "production", "metric": "accuracy"},
            protection={"aliases": [{"alias": "production"}]},
        ),
        ["spec.promotion.alias", "must not be a protected alias"],
    ),
    (
        "protection-without-aliases",
        model(protection={"aliases": []}),
        ["spec.protection.aliases"],
    ),
    (
        "retrain-template-env-reserved",
        model(retrain={"template": {"image": "t:1", "env": [{"name": "MODELWERK_X"}]}}),
        ["spec.retrain.template.env[0]", "env names starting with MODELWERK_ are reserved"],
    ),
    # distributed runs (spec.workers)
    (
        "workers-zero",
        run(workers={"replicas": 0}),
        ["spec.workers.replicas", "greater than or equal to 1"],
    ),
    (
        "workers-over-bound",
        run(workers={"replicas": 65}),
        ["spec.workers.replicas", "less than or equal to 64"],
    ),
    (
        "workers-with-validation",
        run(
            workers={"replicas": 2},
            datasets=[{"name": "train", "uri": "s3://data/train.csv"}],
            validation={"datasets": [{"name": "train", "rows": {"min": 1}}]},
        ),
        ["spec.validation runs in the single training pod"],
    ),
    (
        "workers-env-rank",
        run(workers={"replicas": 2}, env=[{"name": "RANK", "value": "0"}]),
        ["set by the operator in a distributed run"],
    ),
    (
        "workers-name-too-long",
        run(name="a" * 61, workers={"replicas": 2, "engine": "indexedJob"}),
        ["a distributed run's name", "at most 60 characters"],
    ),
    # A JobSet's hostnames `<run>-workers-0-<index>`, index up to 63: one over 63 - 11 - 2 = 50.
    (
        "jobset-name-too-long",
        run(name="j" * 51, workers={"replicas": 64, "engine": "jobSet"}),
        ["may run on a JobSet", "at most 50 characters", "<run>-workers-0-<index>"],
    ),
    (
        "auto-name-too-long",
        run(name="a" * 51, workers={"replicas": 2}),
        ["may run on a JobSet", "at most 50 characters"],
    ),
    (
        "workers-name-digit",
        run(name="1run", workers={"replicas": 2}),
        ["a distributed run's name", "must start with a letter"],
    ),
]


@pytest.mark.parametrize(
    ("manifest", "fragments"),
    [pytest.param(m, f, id=i) for i, m, f in INVALID],
)
def test_invalid_object_is_rejected(
    crds: None, namespace: str, manifest: Manifest, fragments: list[str]
) -> None:
    with pytest.raises(KubectlError) as err:
        apply(manifest, namespace)
    message = err.value.stderr
    assert "is invalid" in message or "strict decoding error" in message, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in:\n{message}"
    plural = manifest["kind"].lower() + "s"
    assert get(f"{plural}.{GROUP}", manifest["metadata"]["name"], namespace) is None


def test_valid_counterparts_are_accepted(crds: None, namespace: str) -> None:
    """The table above fails for the stated reason, not because its base objects are broken."""
    for manifest in (
        deployment(name="by-version", version=1, canary={"alias": "candidate"}),
        deployment(name="by-alias", alias="production", canary={"version": 2}),
        deployment(name="edges", version=1, canary={"version": 2, "trafficPercent": 100}),
        deployment(name="zero", version=1, canary={"version": 2, "trafficPercent": 0}),
        deployment(name="labels", version=1, monitoring={"labels": {"team": "a" * 63}}),
        run(name="a" * 63, model="a" * 63, evaluation={"metric": "loss", "direction": "min"}),
        run(name="env", env=[{"name": "LOG_LEVEL", "value": "info"}, {"name": "MODELWERKX"}]),
        model(name="b" * 63),
        model(name="own", retrain={"template": {"model": "own", "image": "t:1"}}),
        run(name="g" * 60, workers={"replicas": 64, "port": 1234, "engine": "indexedJob"}),
        run(name="j" * 50, workers={"replicas": 64, "engine": "jobSet"}),
        run(name="u" * 50, workers={"replicas": 64}),
        run(name="s" * 63, workers={"replicas": 1}),
        run(name="1-worker", workers={"replicas": 1}, env=[{"name": "RANK", "value": "0"}]),
    ):
        apply(manifest, namespace)
        plural = manifest["kind"].lower() + "s"
        assert get(f"{plural}.{GROUP}", manifest["metadata"]["name"], namespace) is not None


# --- TrainingRun immutability ---------------------------------------------------------------


def base_run() -> Manifest:
    return run(
        name="immutable",
        model="iris",
        command=["python", "-m", "modelwerk.trainers.iris"],
        env=[{"name": "LOG_LEVEL", "value": "info"}],
        hyperparameters={"C": "1.0"},
        evaluation={"metric": "accuracy", "direction": "max", "threshold": 0.9},
    )


def change(edit: Callable[[Manifest], None]) -> Callable[[], Manifest]:
    def build() -> Manifest:
        manifest = base_run()
        edit(manifest["spec"])
        return manifest

    return build


IMMUTABLE = "spec is immutable except spec.suspend: create a new TrainingRun instead"

UPDATES: list[tuple[str, Callable[[], Manifest]]] = [
    ("image", change(lambda s: s.update(image="ghcr.io/modelwerk/iris-trainer:0.2.0"))),
    ("add-seed", change(lambda s: s.update(seed=7))),
    ("hyperparameter", change(lambda s: s["hyperparameters"].update(C="2.0"))),
    ("threshold", change(lambda s: s["evaluation"].update(threshold=0.5))),
    ("remove-env", change(lambda s: s.pop("env"))),
    ("model", change(lambda s: s.update(model="other"))),
]


@pytest.mark.parametrize("edited", [pytest.param(b, id=i) for i, b in UPDATES])
def test_trainingrun_spec_edit_is_rejected(
    crds: None, namespace: str, edited: Callable[[], Manifest]
) -> None:
    apply(base_run(), namespace)
    before = get("trainingrun", "immutable", namespace)
    assert before is not None

    with pytest.raises(KubectlError) as err:
        apply(edited(), namespace)
    assert IMMUTABLE in err.value.stderr, err.value.stderr

    after = get("trainingrun", "immutable", namespace)
    assert after is not None
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


def test_trainingrun_suspend_can_change(crds: None, namespace: str) -> None:
    apply(base_run(), namespace)
    before = get("trainingrun", "immutable", namespace)
    assert before is not None
    assert before["spec"]["suspend"] is False  # the default

    for suspend in (True, False):
        manifest = base_run()
        manifest["spec"]["suspend"] = suspend
        apply(manifest, namespace)
        after = get("trainingrun", "immutable", namespace)
        assert after is not None
        assert after["spec"]["suspend"] is suspend
        expected = copy.deepcopy(before["spec"])
        expected["suspend"] = suspend
        assert after["spec"] == expected

    assert after is not None
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 2
    # The same edit through a merge patch, as `kubectl patch` users do it.
    kubectl(
        "patch", "trainingrun", "immutable", "-n", namespace, "--type=merge",
        "-p", '{"spec": {"suspend": true}}',
    )  # fmt: skip
    with pytest.raises(KubectlError) as err:
        kubectl(
            "patch", "trainingrun", "immutable", "-n", namespace, "--type=merge",
            "-p", '{"spec": {"suspend": false, "image": "x:1"}}',
        )  # fmt: skip
    assert IMMUTABLE in err.value.stderr


# --- upstream CRDs --------------------------------------------------------------------------

UPSTREAM = {
    "seldondeployments.machinelearning.seldon.io": "SeldonDeployment",
    "prometheusrules.monitoring.coreos.com": "PrometheusRule",
    "servicemonitors.monitoring.coreos.com": "ServiceMonitor",
    "podmonitors.monitoring.coreos.com": "PodMonitor",
}


def test_upstream_crds_are_established_by_server_side_apply(upstream_crds: Path) -> None:
    files = sorted(p.name for p in upstream_crds.glob("*.yaml"))
    assert len(files) == len(UPSTREAM), files
    for name, kind in UPSTREAM.items():
        crd = assert_established(name)
        assert crd["status"]["acceptedNames"]["kind"] == kind
        # `kubectl get` hides managedFields unless asked.
        full = json.loads(kubectl("get", "crd", name, "-o", "json", "--show-managed-fields"))
        operations = {entry["operation"] for entry in full["metadata"].get("managedFields", [])}
        assert "Apply" in operations, f"{name} was not server-side applied: {operations}"
        # Client-side apply would have stored (or failed to store) the whole object here.
        annotations = crd["metadata"].get("annotations") or {}
        assert "kubectl.kubernetes.io/last-applied-configuration" not in annotations


UPSTREAM_OBJECTS: list[Manifest] = [
    {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "iris"},
        "spec": {
            "groups": [
                {
                    "name": "iris",
                    "rules": [
                        {
                            "alert": "IrisLatencyHigh",
                            "expr": "histogram_quantile(0.99, rate(x_bucket[5m])) > 0.25",
                            "for": "5m",
                            "labels": {"severity": "warning"},
                        }
                    ],
                }
            ]
        },
    },
    {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "iris"},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "iris"}},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "30s"}],
        },
    },
    {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PodMonitor",
        "metadata": {"name": "iris"},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "iris"}},
            "podMetricsEndpoints": [{"port": "http"}],
        },
    },
    {
        "apiVersion": "machinelearning.seldon.io/v1",
        "kind": "SeldonDeployment",
        "metadata": {"name": "iris"},
        "spec": {
            "predictors": [
                {
                    "name": "default",
                    "replicas": 1,
                    "graph": {
                        "name": "classifier",
                        "implementation": "SKLEARN_SERVER",
                        "modelUri": "pvc://models/iris",
                    },
                }
            ]
        },
    },
]


@pytest.mark.parametrize("manifest", UPSTREAM_OBJECTS, ids=lambda m: m["kind"])
def test_upstream_object_is_accepted(
    upstream_crds: Path, namespace: str, manifest: Manifest
) -> None:
    apply(manifest, namespace)
    stored = get(f"{manifest['kind'].lower()}s", "iris", namespace)
    assert stored is not None
    assert_subset(manifest["spec"], stored["spec"], "spec")


UPSTREAM_INVALID: list[tuple[Manifest, str]] = [
    (
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {"name": "bad"},
            "spec": {"groups": [{"rules": [{"alert": "A", "expr": "1"}]}]},
        },
        "spec.groups[0].name: Required value",
    ),
    (
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": "bad"},
            "spec": {"endpoints": [{"port": "http", "bogus": 1}], "selector": {}},
        },
        'unknown field "spec.endpoints[0].bogus"',
    ),
    (
        {
            "apiVersion": "machinelearning.seldon.io/v1",
            "kind": "SeldonDeployment",
            "metadata": {"name": "bad"},
            "spec": {"predictors": [{"name": "default"}]},
        },
        "spec.predictors[0].graph: Required value",
    ),
]


@pytest.mark.parametrize(
    ("manifest", "fragment"), [pytest.param(m, f, id=m["kind"]) for m, f in UPSTREAM_INVALID]
)
def test_upstream_schema_is_enforced(
    upstream_crds: Path, namespace: str, manifest: Manifest, fragment: str
) -> None:
    with pytest.raises(KubectlError) as err:
        apply(manifest, namespace)
    assert fragment in err.value.stderr, err.value.stderr
