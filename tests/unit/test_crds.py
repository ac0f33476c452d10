"""The generated CRDs: in sync with the models, structural, bounded for CEL, and well named."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from modelwerk.api import KINDS, Deployment, Model, TrainingRun, TrainingRunSpec
from modelwerk.constants import GROUP, VERSION
from modelwerk.crdgen import HEADER, render_crds, write_crds

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
SAMPLES = ROOT / "manifests" / "samples"

RENDERED = render_crds()
DOCS = {name: yaml.safe_load(text) for name, text in RENDERED.items()}


def _schema(doc: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _nodes(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, prop in node.get("properties", {}).items():
        yield from _nodes(prop, f"{path}.{name}")
    if "items" in node:
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}{{}}")


def _all_nodes() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for name, doc in DOCS.items():
        for path, node in _nodes(_schema(doc), ""):
            yield name, path, node


def test_committed_crds_are_generated() -> None:
    for name, text in RENDERED.items():
        committed = CRDS / name
        assert committed.exists(), f"{committed} is missing: run `modelwerk crds`"
        assert committed.read_text(encoding="utf-8") == text, (
            f"{committed} differs from the API models: run `modelwerk crds` and commit the result"
        )
    extra = {p.name for p in CRDS.glob("*.yaml")} - set(RENDERED)
    assert not extra, f"crds/ has files the generator does not write: {sorted(extra)}"


def test_rendering_is_deterministic_and_headed() -> None:
    assert render_crds() == RENDERED
    assert sorted(RENDERED) == [
        "modelwerk.io_deployments.yaml",
        "modelwerk.io_models.yaml",
        "modelwerk.io_trainingruns.yaml",
    ]
    for text in RENDERED.values():
        assert text.startswith(HEADER)
        assert "modelwerk crds" in text.splitlines()[0]
        assert "not edit" in HEADER.lower()


def test_write_crds(tmp_path: pathlib.Path) -> None:
    written = write_crds(tmp_path / "out")
    assert sorted(p.name for p in written) == sorted(RENDERED)
    for path in written:
        assert path.read_text(encoding="utf-8") == RENDERED[path.name]


@pytest.mark.parametrize(
    ("cls", "plural", "short_names"),
    [
        (Model, "models", ["mwm"]),
        (TrainingRun, "trainingruns", ["tr", "mwtr"]),
        (Deployment, "deployments", ["mwd", "mwdeploy"]),
    ],
)
def test_names(cls: Any, plural: str, short_names: list[str]) -> None:
    doc = DOCS[f"{GROUP}_{plural}.yaml"]
    assert doc["apiVersion"] == "apiextensions.k8s.io/v1"
    assert doc["metadata"]["name"] == f"{plural}.{GROUP}"
    spec = doc["spec"]
    assert spec["group"] == GROUP
    assert spec["scope"] == "Namespaced"
    names = spec["names"]
    assert names["kind"] == cls.KIND.kind
    assert names["plural"] == plural
    assert names["singular"] == cls.KIND.kind.lower()
    assert names["shortNames"] == short_names
    assert names["categories"] == ["modelwerk"]
    [version] = spec["versions"]
    assert version["name"] == VERSION
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}


def test_no_short_name_shadows_a_builtin() -> None:
    # `kubectl get deploy` / `po` / `svc` … must keep meaning the built-in kinds.
    builtin = {"deploy", "deployment", "deployments", "po", "svc", "job", "cm", "sa", "rs"}
    for doc in DOCS.values():
        assert not builtin & set(doc["spec"]["names"]["shortNames"])


def test_printer_columns() -> None:
    def columns(plural: str) -> dict[str, str]:
        version = DOCS[f"{GROUP}_{plural}.yaml"]["spec"]["versions"][0]
        return {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}

    assert columns("models") == {
        "Latest": ".status.latestVersion",
        "Production": ".status.aliases.production",
        "Candidate": ".status.aliases.candidate",
        "Ready": '.status.conditions[?(@.type=="Ready")].status',
        "Age": ".metadata.creationTimestamp",
    }
    assert columns("trainingruns") == {
        "Model": ".spec.model",
        "Phase": ".status.phase",
        "Metric": ".status.evaluation.value",
        "Version": ".status.modelVersion",
        # -o wide only (priority 1): a distributed run's gang
        "Workers": ".spec.workers.replicas",
        "Attempt": ".status.workers.attempt",
        "Age": ".metadata.creationTimestamp",
    }
    assert columns("deployments") == {
        "Model": ".spec.model",
        "Version": ".status.currentVersion",
        "Canary": ".status.canary.version",
        "Traffic": ".status.canary.trafficPercent",
        "Phase": ".status.phase",
        "Ready": ".status.readyReplicas",
        "Age": ".metadata.creationTimestamp",
    }


def test_every_node_is_structural() -> None:
    for name, path, node in _all_nodes():
        where = f"{name}: {path or '<root>'}"
        assert "type" in node or node.get("x-kubernetes-int-or-string") is True, where
        for key in (
            *("$ref", "$defs", "anyOf", "allOf", "oneOf", "not", "title", "const"),
            *("propertyNames", "patternProperties", "x-kubernetes-preserve-unknown-fields"),
        ):
            assert key not in node, f"{where} has {key}"
        assert node.get("additionalProperties") is not False, where
        if "exclusiveMinimum" in node or "exclusiveMaximum" in node:
            assert node.get("exclusiveMinimum", True) is True, where
            assert node.get("exclusiveMaximum", True) is True, where
        for required in node.get("required", []):
            assert required in node.get("properties", {}), f"{where} requires unknown {required}"


def test_spec_is_bounded_for_cel_cost() -> None:
    """Unbounded strings, lists or maps make the apiserver's CEL cost estimate exceed budget."""
    for name, path, node in _all_nodes():
        if not path.startswith(".spec"):
            continue
        where = f"{name}: {path}"
        kind = node.get("type")
        if kind == "string":
            assert "maxLength" in node or "enum" in node or "format" in node, where
        elif kind == "array":
            assert "maxItems" in node, where
        elif kind == "object" and "additionalProperties" in node:
            assert "maxProperties" in node, where
        elif node.get("x-kubernetes-int-or-string"):
            assert "maxLength" in node, where


def test_list_maps_have_required_keys() -> None:
    found = set()
    for name, path, node in _all_nodes():
        if node.get("x-kubernetes-list-type") == "map":
            found.add(path)
            keys = node["x-kubernetes-list-map-keys"]
            required = node["items"].get("required", [])
            assert set(keys) <= set(required), f"{name}: {path}"
    assert {
        ".spec.env",
        ".spec.datasets",
        ".spec.versions",
        ".status.conditions",
        ".status.versions",
    } <= found


def test_every_rule_has_a_message() -> None:
    rules = 0
    for name, path, node in _all_nodes():
        for entry in node.get("x-kubernetes-validations", []):
            rules += 1
            assert entry["rule"].strip(), f"{name}: {path}"
            assert len(entry["message"]) > 10, f"{name}: {path}"
            assert "\n" not in entry["rule"]
    assert rules >= 10


def _rules(plural: str, path: str) -> list[dict[str, str]]:
    for candidate, node in _nodes(_schema(DOCS[f"{GROUP}_{plural}.yaml"]), ""):
        if candidate == path:
            return list(node.get("x-kubernetes-validations", []))
    raise KeyError(path)


def test_trainingrun_spec_immutability_rule_covers_every_field() -> None:
    [immutable] = [r for r in _rules("trainingruns", ".spec") if "oldSelf" in r["rule"]]
    assert "immutable except spec.suspend" in immutable["message"]
    fields = {info.alias or name for name, info in TrainingRunSpec.model_fields.items()}
    for field in fields - {"suspend"}:
        assert f"has(self.{field}) == has(oldSelf.{field})" in immutable["rule"], field
        assert f"self.{field} == oldSelf.{field}" in immutable["rule"], field
    assert "suspend" not in immutable["rule"]


def test_retrain_template_has_no_transition_rule() -> None:
    # The immutability rule belongs to TrainingRun.spec, not to the reusable spec class.
    rules = _rules("models", ".spec.retrain.template")
    assert [r for r in rules if "oldSelf" in r["rule"]] == []


def test_exactly_one_of_version_and_alias() -> None:
    for path in (".spec", ".spec.canary"):
        [entry] = _rules("deployments", path)
        assert entry["rule"] == "has(self.version) != has(self.alias)"
        assert "exactly one of version or alias" in entry["message"]


def test_names_fit_label_values() -> None:
    for doc in DOCS.values():
        rules = [r["rule"] for r in _schema(doc).get("x-kubernetes-validations", [])]
        assert "self.metadata.name.size() <= 63" in rules


def test_trainingrun_spec_cannot_ask_for_privileges() -> None:
    spec = _schema(DOCS[f"{GROUP}_trainingruns.yaml"])["properties"]["spec"]
    forbidden = {
        "securityContext",
        "volumes",
        "volumeMounts",
        "hostNetwork",
        "hostPID",
        "hostIPC",
        "hostPath",
        "nodeName",
        "namespace",
        "privileged",
        "valueFrom",
        "envFrom",
        "podTemplate",
        "template",
    }
    for path, _node in _nodes(spec, ".spec"):
        assert path.rsplit(".", 1)[-1].rstrip("[]{}") not in forbidden, path
    assert set(spec["properties"]["env"]["items"]["properties"]) == {"name", "value"}


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.KIND.kind)
def test_sample_validates(kind: Any) -> None:
    path = SAMPLES / f"{kind.KIND.singular}.yaml"
    body = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert body["apiVersion"] == f"{GROUP}/{VERSION}"
    assert body["kind"] == kind.KIND.kind
    assert "namespace" not in body["metadata"], "samples must apply to any namespace"
    assert "generateName" not in body["metadata"], "`kubectl apply` needs a name"
    parsed = kind.from_body(body)
    assert parsed.spec.model_dump(mode="json", exclude_unset=True) == body["spec"]
