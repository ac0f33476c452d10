"""The Argo CD health checks in argocd/resource_customizations, run the way Argo CD runs them.

Argo CD evaluates `health.lua` in gopher-lua (Lua 5.1) with the live object as the global `obj`
and only the base, table, string and math libraries; its own test runner reads
`health_test.yaml` (`tests: [{healthStatus: {status, message}, inputPath}]`) beside each script.
This does the same with lupa's Lua 5.1 (any Lua it has, when built without 5.1).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

try:
    from lupa import lua51 as lupa_runtime
except ImportError:  # a lupa built without Lua 5.1: its default Lua will do
    import lupa as lupa_runtime  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "argocd"
CUSTOMIZATIONS = ARGOCD / "resource_customizations" / "modelwerk.io"
KINDS = ("Model", "TrainingRun", "Deployment")
# The statuses Argo CD knows (gitops-engine's health.HealthStatusCode).
ARGO_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
# Each kind's check can end in these; every one must be exercised by some testdata file.
EXPECTED_OUTCOMES = {
    "Model": {"Healthy", "Progressing", "Degraded", "Unknown"},
    "TrainingRun": {"Healthy", "Progressing", "Degraded", "Suspended", "Unknown"},
    "Deployment": {"Healthy", "Progressing", "Degraded", "Unknown"},
}
# Argo CD does not open these libraries for health scripts.
UNSAFE_GLOBALS = ("os", "io", "debug", "dofile", "loadfile", "require", "package")


def _cases(kind: str) -> list[dict[str, Any]]:
    tests: list[dict[str, Any]] = yaml.safe_load(
        (CUSTOMIZATIONS / kind / "health_test.yaml").read_text()
    )["tests"]
    return tests


def _all_cases() -> Iterator[Any]:
    for kind in KINDS:
        for case in _cases(kind):
            yield pytest.param(kind, case, id=f"{kind}/{Path(case['inputPath']).stem}")


def _as_api_json(obj: Any) -> Any:
    """What the apiserver would hand Argo CD: JSON (YAML timestamps become strings)."""

    def default(value: Any) -> str:
        if isinstance(value, dt.date | dt.datetime):
            return value.isoformat()
        raise TypeError(f"not JSON: {value!r}")

    return json.loads(json.dumps(obj, default=default))


def _to_lua(lua: Any, value: Any) -> Any:
    """Python (from JSON) to Lua: objects and arrays become tables (arrays 1-based), null nil."""
    if isinstance(value, dict):
        table = lua.table()
        for key, item in value.items():
            if item is not None:
                table[key] = _to_lua(lua, item)
        return table
    if isinstance(value, list):
        return lua.table(*(_to_lua(lua, item) for item in value))
    return value


def run_health(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    """Runs `kind`'s health.lua on `obj` in a fresh, sandboxed Lua state."""
    lua = lupa_runtime.LuaRuntime(register_eval=False, register_builtins=False)
    g = lua.globals()
    for name in UNSAFE_GLOBALS:
        g[name] = None
    g.obj = _to_lua(lua, _as_api_json(obj))
    result = lua.execute((CUSTOMIZATIONS / kind / "health.lua").read_text())
    assert result is not None, f"{kind}/health.lua returned nothing"
    out = {key: result[key] for key in ("status", "message") if result[key] is not None}
    extra = set(result.keys()) - {"status", "message"}
    assert not extra, f"{kind}/health.lua returned unknown fields {extra}"
    return out


@pytest.mark.parametrize(("kind", "case"), list(_all_cases()))
def test_health_matches_health_test_yaml(kind: str, case: dict[str, Any]) -> None:
    obj = yaml.safe_load((CUSTOMIZATIONS / kind / case["inputPath"]).read_text())
    assert obj["apiVersion"] == "modelwerk.io/v1alpha1"
    assert obj["kind"] == kind
    expected = case["healthStatus"]
    assert expected["status"] in ARGO_STATUSES
    assert run_health(kind, obj) == expected


@pytest.mark.parametrize("kind", KINDS)
def test_every_outcome_and_every_testdata_file_is_covered(kind: str) -> None:
    cases = _cases(kind)
    assert len(cases) >= 6
    assert {c["healthStatus"]["status"] for c in cases} == EXPECTED_OUTCOMES[kind]
    referenced = {c["inputPath"] for c in cases}
    on_disk = {f"testdata/{p.name}" for p in (CUSTOMIZATIONS / kind / "testdata").glob("*.yaml")}
    assert referenced == on_disk, "every testdata file has exactly one expectation"
    # Argo CD's runner names files <status>_<case>.yaml; keep to that so a glance tells.
    for case in cases:
        name = Path(case["inputPath"]).name
        assert name.lower().startswith(case["healthStatus"]["status"].lower()), name


@pytest.mark.parametrize("kind", KINDS)
def test_observed_generation_behind_is_progressing_whatever_the_phase(kind: str) -> None:
    for case in _cases(kind):
        obj = yaml.safe_load((CUSTOMIZATIONS / kind / case["inputPath"]).read_text())
        status = obj.get("status")
        if not status or status.get("phase") is None:
            continue
        obj["metadata"]["generation"] = int(status.get("observedGeneration") or 0) + 1
        health = run_health(kind, obj)
        assert health["status"] == "Progressing", case["inputPath"]
        assert health["message"].startswith("Waiting for the operator"), health


def test_apps_deployment_shape_is_not_special_cased() -> None:
    """An apps/v1 Deployment never reaches this script (Argo CD keys by group), but a
    modelwerk Deployment whose status lacks our conditions must not crash it."""
    obj = {
        "apiVersion": "modelwerk.io/v1alpha1",
        "kind": "Deployment",
        "metadata": {"name": "iris", "generation": 1},
        "spec": {"model": "iris", "alias": "production"},
        "status": {"phase": "Available", "observedGeneration": 1},
    }
    assert run_health("Deployment", obj) == {
        "status": "Progressing",
        "message": "waiting for the Ready condition",
    }


def test_kustomization_puts_each_script_under_argo_cds_key() -> None:
    kustomization = yaml.safe_load((ARGOCD / "kustomization.yaml").read_text())
    (generator,) = kustomization["configMapGenerator"]
    assert generator["name"] == "argocd-cm"
    assert kustomization["namespace"] == "argocd"
    assert kustomization["generatorOptions"]["disableNameSuffixHash"] is True
    assert kustomization["generatorOptions"]["labels"]["app.kubernetes.io/part-of"] == "argocd"
    files = dict(entry.split("=", 1) for entry in generator["files"])
    assert files == {
        f"resource.customizations.health.modelwerk.io_{kind}": (
            f"resource_customizations/modelwerk.io/{kind}/health.lua"
        )
        for kind in KINDS
    }
    for path in files.values():
        assert (ARGOCD / path).is_file()
