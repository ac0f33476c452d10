"""Manifests generated from our CRDs' OpenAPI schemas with hypothesis, then mutated.

`valid(schema)` draws values the structural schema admits (types, enums, bounds, patterns,
lengths; CEL rules are not modelled, so some drawn "valid" manifests are refused by them, which
is fine: a refusal is one of the two accepted outcomes). `case()` draws a kind, a spec and one
mutation that breaks it (or none), and says which."""

from __future__ import annotations

import copy
import math
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from tests.integration.cluster import ROOT

Schema = dict[str, Any]
NAME = st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)
PLAIN = string.ascii_letters + string.digits + "-._/:"
MAX_DEPTH = 6


@dataclass(frozen=True)
class Crd:
    kind: str
    plural: str
    version: str
    spec: Schema

    @property
    def path(self) -> str:
        return f"/apis/modelwerk.io/{self.version}/namespaces/{{ns}}/{self.plural}"


def crds() -> list[Crd]:
    found = []
    for file in sorted((ROOT / "crds").glob("*.yaml")):
        doc = yaml.safe_load(Path(file).read_text())
        version = next(v for v in doc["spec"]["versions"] if v.get("storage"))
        schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
        names = doc["spec"]["names"]
        found.append(Crd(names["kind"], names["plural"], version["name"], schema))
    return found


def _string(schema: Schema) -> st.SearchStrategy[str]:
    low = int(schema.get("minLength", 0))
    high = min(int(schema.get("maxLength", 24)), max(low, 24))
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True).filter(
            lambda s: low <= len(s) <= int(schema.get("maxLength", 10**9))
        )
    return st.text(PLAIN, min_size=low, max_size=high)


def _number(schema: Schema, integer: bool) -> st.SearchStrategy[Any]:
    low = schema.get("minimum")
    high = schema.get("maximum")
    if integer:
        low = -1000 if low is None else int(low) + (1 if schema.get("exclusiveMinimum") else 0)
        high = 1000 if high is None else int(high)
        return st.integers(low, max(low, high))
    return st.floats(
        -1e6 if low is None else float(low),
        1e6 if high is None else float(high),
        allow_nan=False,
        allow_infinity=False,
        exclude_min=bool(schema.get("exclusiveMinimum")),
    )


def valid(schema: Schema, depth: int = 0) -> st.SearchStrategy[Any]:
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if schema.get("x-kubernetes-int-or-string"):
        return st.one_of(st.integers(0, 100), st.from_regex(r"[1-9][0-9]?%", fullmatch=True))
    kind = schema.get("type")
    if kind == "string":
        return _string(schema)
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer")
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        items = schema.get("items") or {"type": "string"}
        keys = schema.get("x-kubernetes-list-map-keys")
        low = int(schema.get("minItems", 0))
        high = min(int(schema.get("maxItems", 3)), max(low, 3 if depth < MAX_DEPTH else low))

        def unique_by(item: Any) -> Any:
            return tuple(str(item.get(k)) for k in keys) if isinstance(item, dict) else item

        return st.lists(
            valid(items, depth + 1),
            min_size=low,
            max_size=high,
            unique_by=unique_by if keys else None,
        )
    props = schema.get("properties")
    if props:
        required = set(schema.get("required") or [])
        optional = {k: valid(v, depth + 1) for k, v in props.items() if k not in required}
        return st.fixed_dictionaries(
            {k: valid(props[k], depth + 1) for k in props if k in required},
            optional=optional if depth < MAX_DEPTH else {},
        )
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        high = min(int(schema.get("maxProperties", 3)), 3)
        return st.dictionaries(NAME, valid(extra, depth + 1), max_size=high)
    return st.just({})


def _paths(value: Any, schema: Schema, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in `value` a mutation can hit, with the schema that governs it."""
    found = [path]
    props = schema.get("properties") or {}
    if isinstance(value, dict):
        for key, item in value.items():
            sub = props.get(key) or schema.get("additionalProperties") or {}
            found += _paths(item, sub if isinstance(sub, dict) else {}, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, schema.get("items") or {}, (*path, index))
    return found


def _schema_at(schema: Schema, path: tuple[Any, ...]) -> Schema:
    for step in path:
        if isinstance(step, int):
            schema = schema.get("items") or {}
        else:
            sub = (schema.get("properties") or {}).get(step) or schema.get("additionalProperties")
            schema = sub if isinstance(sub, dict) else {}
    return schema


def _set(root: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    if not path:
        return value if isinstance(value, dict) else {"value": value}
    target: Any = root
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return root


def _get(root: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        root = root[step]
    return root


WRONG_TYPES: dict[str, list[Any]] = {
    "string": [123, True, ["x"], {"a": "b"}],
    "integer": ["12", 1.5, [], {"a": 1}],
    "number": ["1.0", [], {"a": 1}],
    "boolean": ["true", 1, []],
    "object": ["x", 1, ["x"]],
    "array": ["x", 1, {"a": 1}],
}

MUTATIONS = (
    "none",
    "wrong-type",
    "out-of-range",
    "too-long",
    "bad-pattern",
    "bad-enum",
    "drop-required",
    "unknown-field",
    "nan",
    "huge",
    "null",
    "bad-name",
)


def _applicable(mutation: str, sub: Schema, current: Any, path: tuple[Any, ...]) -> bool:
    kind = sub.get("type")
    checks = {
        "wrong-type": kind in WRONG_TYPES and bool(path),
        "out-of-range": "maximum" in sub or "minimum" in sub,
        "too-long": "maxLength" in sub or ("maxItems" in sub and bool(current)),
        "bad-pattern": "pattern" in sub,
        "bad-enum": "enum" in sub,
        "drop-required": bool(sub.get("required")) and isinstance(current, dict),
        "unknown-field": isinstance(current, dict),
        "nan": kind in ("number", "integer"),
        "huge": kind == "string",
        "null": bool(path),
    }
    return checks.get(mutation, False)


def _mutated(draw: st.DrawFn, mutation: str, sub: Schema, current: Any) -> Any:
    """The value that replaces `current` (for drop-required and unknown-field: `current`
    changed in place)."""
    if mutation == "wrong-type":
        return draw(st.sampled_from(WRONG_TYPES[sub["type"]]))
    if mutation == "out-of-range":
        return sub["maximum"] + 1 if "maximum" in sub else sub["minimum"] - 1
    if mutation == "too-long":
        if "maxLength" in sub:
            return "a" * (int(sub["maxLength"]) + 1)
        return list(current) * (int(sub["maxItems"]) + 1)
    if mutation == "bad-pattern":
        return "Not A Valid Value!"
    if mutation == "bad-enum":
        return "NoSuchValue"
    if mutation == "drop-required":
        current.pop(draw(st.sampled_from(sorted(sub["required"]))), None)
        return current
    if mutation == "unknown-field":
        current["bogusField"] = "x"
        return current
    if mutation == "nan":
        return draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    if mutation == "huge":
        return "x" * 300_000
    return None  # null


@st.composite
def case(draw: st.DrawFn, kinds: list[Crd]) -> tuple[Crd, dict[str, Any], str]:
    """A kind, its manifest (name `fuzz`, unless the mutation is a bad name) and the mutation:
    one of MUTATIONS, applied at a place of the spec it applies to, drawn at random."""
    crd = draw(st.sampled_from(kinds))
    spec = copy.deepcopy(draw(valid(crd.spec)))
    places: dict[str, list[tuple[Any, ...]]] = {}
    for path in _paths(spec, crd.spec):
        sub = _schema_at(crd.spec, path)
        for mutation in MUTATIONS:
            if _applicable(mutation, sub, _get(spec, path), path):
                places.setdefault(mutation, []).append(path)
    mutation = draw(st.sampled_from(["none", "bad-name", *sorted(places)]))
    name = "fuzz"
    if mutation == "bad-name":
        name = draw(st.sampled_from(["Upper-Case", "-leading", "a" * 254, "under_score", ""]))
    elif mutation != "none":
        path = draw(st.sampled_from(places[mutation]))
        value = _mutated(draw, mutation, _schema_at(crd.spec, path), _get(spec, path))
        spec = _set(spec, path, value)
    manifest = {
        "apiVersion": f"modelwerk.io/{crd.version}",
        "kind": crd.kind,
        "metadata": {"name": name},
        "spec": spec,
    }
    return crd, manifest, mutation
