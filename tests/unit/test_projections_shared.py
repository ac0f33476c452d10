"""Cached objects share one copy of each key and of the values of few-valued fields; the
projection is equal to what it was without sharing."""

from __future__ import annotations

import json
from typing import Any

from modelwerk import projections


def body(name: str) -> dict[str, Any]:
    # Each through the JSON decoder, as from the apiserver: distinct string objects.
    return dict(
        json.loads(
            json.dumps(
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": {"name": name, "namespace": "ml", "resourceVersion": "1"},
                    "status": {
                        "conditions": [{"type": "Complete", "status": "True"}],
                        "succeeded": 1,
                    },
                }
            )
        )
    )


def test_projections_share_keys_and_few_valued_strings() -> None:
    a, b = projections.job(body("a")), projections.job(body("b"))
    assert a == {**body("a"), "spec": {"suspend": False}}
    ca, cb = a["status"]["conditions"][0], b["status"]["conditions"][0]
    assert next(iter(ca)) is next(iter(cb))  # the key "type"
    assert ca["type"] is cb["type"]  # the value "Complete"
    assert a["metadata"]["namespace"] is b["metadata"]["namespace"]
    assert a["metadata"]["name"] is not b["metadata"]["name"]


def test_the_shared_table_stays_bounded(monkeypatch: Any) -> None:
    monkeypatch.setattr(projections, "_SHARED_MAX", 3)
    monkeypatch.setattr(projections, "_SHARED", {})
    for i in range(10):
        projections.shared({"reason": f"r{i}"})
    assert len(projections._SHARED) <= 3
