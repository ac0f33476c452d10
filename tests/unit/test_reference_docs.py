"""docs/reference.md is generated (hack/gen-reference.py) from the CRDs, the chart's values and
the operator's configuration: it must be current and cover every field, value and variable."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "hack" / "gen-reference.py"
REFERENCE = ROOT / "docs" / "reference.md"
CHART = ROOT / "helm" / "modelwerk"
CONFIG = ROOT / "operator" / "modelwerk" / "config.py"


def run_check(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # sys.executable: the venv's python when pytest runs from .venv/bin/pytest.
    return subprocess.run(
        [sys.executable, str(GENERATOR), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def test_reference_is_current() -> None:
    proc = run_check()
    assert proc.returncode == 0, (
        f"docs/reference.md is stale: run hack/gen-reference.py\n{proc.stderr[-6000:]}"
    )


def test_reference_does_not_depend_on_the_environment() -> None:
    """Defaults are those in config.py, not whatever MODELWERK_* the generating shell has."""
    env = {**os.environ, "MODELWERK_WORKERS": "99", "MODELWERK_SERVING_IMAGE": "elsewhere:1"}
    proc = run_check(env)
    assert proc.returncode == 0, proc.stderr[-6000:]


@cache
def reference() -> str:
    return REFERENCE.read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text of the `## title` section."""
    parts = re.split(r"^## ", reference(), flags=re.MULTILINE)
    found = [p for p in parts if p.split("\n", 1)[0].strip() == title]
    assert found, f"docs/reference.md has no section '## {title}': run hack/gen-reference.py"
    return found[0]


def field_paths(node: dict[str, Any], path: str) -> Iterator[str]:
    """Written independently of the generator: `a.b`, `a[].b` (list items), `a.<key>.b`."""
    for name, child in node.get("properties", {}).items():
        yield f"{path}.{name}"
        yield from field_paths(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from field_paths(node["items"], path + "[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from field_paths(node["additionalProperties"], path + ".<key>")


def crds() -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "crds").glob("*.yaml"))]


@pytest.mark.parametrize("crd", crds(), ids=lambda crd: crd["spec"]["names"]["kind"])
def test_every_crd_field_is_documented(crd: dict[str, Any]) -> None:
    kind = crd["spec"]["names"]["kind"]
    text = section(kind)
    (version,) = crd["spec"]["versions"]
    schema = version["schema"]["openAPIV3Schema"]["properties"]
    for part in ("spec", "status"):
        paths = list(field_paths(schema[part], part))
        assert paths, f"{kind} has no {part} fields?"
        undocumented = [p for p in paths if f"| `{p}` |" not in text]
        assert not undocumented, (
            f"{kind} {part} fields missing from docs/reference.md: {undocumented}; "
            "run hack/gen-reference.py"
        )
    for short_name in crd["spec"]["names"].get("shortNames", []):
        assert f"`{short_name}`" in text
    for column in version.get("additionalPrinterColumns", []):
        assert f"| {column['name']} | {column['type']} |" in text
    for rule in _rules(version["schema"]["openAPIV3Schema"]):
        assert rule["message"].split(" ", 1)[0] in text


def _rules(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield from node.get("x-kubernetes-validations", [])
        for value in node.values():
            yield from _rules(value)
    elif isinstance(node, list):
        for value in node:
            yield from _rules(value)


def test_every_helm_value_is_documented() -> None:
    text = section("Helm values")
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    top_level = set(values) | set(schema["properties"])
    undocumented = sorted(k for k in top_level if f"| `{k}` |" not in text)
    assert not undocumented, (
        f"Helm values missing from docs/reference.md: {undocumented}; run hack/gen-reference.py"
    )


def test_every_environment_variable_is_documented() -> None:
    """A second reading of config.py (a regex over the `_env("NAME", ...)` calls) against the
    generator's (import and introspection)."""
    names = re.findall(r"""_env\(\s*["']([A-Z0-9_]+)["']""", CONFIG.read_text())
    assert names
    text = section("Environment variables")
    undocumented = [n for n in names if f"| `MODELWERK_{n}` |" not in text]
    assert not undocumented, (
        f"variables missing from docs/reference.md: {undocumented}; run hack/gen-reference.py"
    )


def _cells(row: str) -> int:
    """Cells of a Markdown table row: pipes not escaped with a backslash."""
    return len(re.findall(r"(?<!\\)\|", row.strip())) - 1


def test_tables_are_well_formed() -> None:
    """Every row has its header's cell count (a `|` in a cell must be escaped)."""
    expected = None
    for number, line in enumerate(reference().splitlines(), start=1):
        if not line.startswith("|"):
            expected = None
            continue
        if expected is None:
            expected = _cells(line)
        assert _cells(line) == expected, f"docs/reference.md:{number}: {line}"
