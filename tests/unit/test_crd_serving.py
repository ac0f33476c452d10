"""Whether the operator treats a CRD as installed (k8s.crd_serving)."""

from __future__ import annotations

from typing import Any

import pytest

from modelwerk.k8s import crd_serving

ESTABLISHED = {"type": "Established", "status": "True"}


@pytest.mark.parametrize(
    ("crd", "serving"),
    [
        ({"status": {"conditions": [ESTABLISHED]}}, True),
        ({"status": {"conditions": [{"type": "Established", "status": "False"}]}}, False),
        ({"status": {"conditions": [{"type": "NamesAccepted", "status": "True"}]}}, False),
        ({}, False),
        # Being deleted: still Established, but every create is refused until it is gone.
        (
            {
                "metadata": {"deletionTimestamp": "2026-12-03T06:00:00Z"},
                "status": {"conditions": [ESTABLISHED]},
            },
            False,
        ),
    ],
)
def test_only_an_established_crd_not_being_deleted_serves(
    crd: dict[str, Any], serving: bool
) -> None:
    assert crd_serving(crd) is serving
