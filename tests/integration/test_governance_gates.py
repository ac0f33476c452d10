"""The evidence rules of a protected alias on the real apiserver: `requireGate` against a
declared version and against a run that failed its evaluation gate, `requireDataValidation`
against a version whose run declared no validation and one whose data passed it. The verdicts
are the operator's own (real TrainingRuns, kwok ends their pods; the data validator runs on
this machine, as in test_lifecycle), the refusals the chart's ValidatingAdmissionPolicy's, and
the moves are made with plain (client-side) `kubectl apply` as an impersonated approver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import apply, get, wait_for

# The fixture `governed` is test_governance's: imported, pytest uses it here too (ruff sees its
# parameter as a redefinition: F811).
from tests.integration.test_governance import (  # noqa: F401
    ALICE,
    APPROVERS,
    BOB,
    GATE,
    MOVED_BY,
    PLATFORM,
    accepted,
    applied,
    governed,
    refused,
    register,
    status_aliases,
)
from tests.integration.test_lifecycle import BAD_ROWS, GOOD_ROWS, gated_run, validate_locally
from tests.integration.trainingruns import (
    conditions_by_type,
    model_manifest,
    reference_report,
    run_manifest,
    wait_phase,
)

pytestmark = pytest.mark.integration

# A version registered from outside the cluster, with the best metric: it never passes a gate.
DECLARED = {
    "version": 1,
    "artifact": {"uri": "s3://bucket/iris/declared.joblib", "digest": "sha256:" + "ab" * 32},
    "metrics": {"accuracy": 0.999},
}


def gated_model(aliases: dict[str, int] | None = None, **annotations: str) -> dict[str, Any]:
    """`production` needs a passed evaluation gate (the default), `validated` also passed
    data validation."""
    body = model_manifest("iris", versions=[DECLARED], aliases=aliases)
    approvers = {"groups": [APPROVERS]}
    body["spec"]["protection"] = {
        "admins": {"groups": [PLATFORM]},
        "aliases": [
            {"alias": "production", "approvers": approvers},
            {"alias": "validated", "approvers": approvers, "requireDataValidation": True},
        ],
    }
    if annotations:
        body["metadata"]["annotations"] = dict(annotations)
    return body


def move_by_apply(
    user: tuple[str, ...], namespace: str, aliases: dict[str, int]
) -> tuple[int, str]:
    """`kubectl apply` (client-side, no --server-side) of the whole Model as `user`."""
    name = user[0].removeprefix("--as=")
    return applied(user, namespace, gated_model(aliases, **{MOVED_BY: name}))


def versions_of(namespace: str) -> dict[int, dict[str, Any]]:
    obj = get("model", "iris", namespace) or {}
    return {v["version"]: v for v in (obj.get("status") or {}).get("versions") or []}


def test_protected_aliases_name_only_versions_that_passed_their_gates(
    governed: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    ns = governed
    accepted(applied(BOB, ns, gated_model()))
    wait_for("the declared version registered", lambda: 1 in versions_of(ns))

    # A declared version: its metrics are its author's claim, no run judged it.
    refused(
        move_by_apply(ALICE, ns, {"production": 1}),
        "denied request: rule requireGate: protected alias production may only name a version"
        " whose TrainingRun passed an evaluation gate",
    )

    assert register(ns, "gated", evaluation=GATE) == 2
    # A run that failed its evaluation gate registers nothing: the number it would have had
    # names no version that passed a gate, and is refused.
    high = {"metric": "accuracy", "threshold": 0.9999}
    apply(run_manifest("below", "iris", report=reference_report().text, evaluation=high), ns)
    rejected = wait_phase(ns, "below", "Rejected", timeout=90)
    assert conditions_by_type(rejected)["Evaluated"]["reason"] == "BelowThreshold"
    assert "modelVersion" not in rejected["status"]
    assert sorted(versions_of(ns)) == [1, 2]
    refused(move_by_apply(ALICE, ns, {"production": 3}), "rule requireGate", "production")

    # Data validation: a run whose data failed it is rejected before training; one whose data
    # passed registers version 3 with that verdict.
    (tmp_path / "bad").mkdir()
    (tmp_path / "good").mkdir()
    dataset, code, message = validate_locally(tmp_path / "bad", BAD_ROWS)
    assert code == 3, message
    apply(gated_run("bad-data", dataset, code, message), ns)
    wait_phase(ns, "bad-data", "Rejected", timeout=90)
    dataset, code, message = validate_locally(tmp_path / "good", GOOD_ROWS)
    assert code == 0, message
    apply(gated_run("good-data", dataset, code, message), ns)
    good = wait_phase(ns, "good-data", "Succeeded", timeout=90)
    assert good["status"]["modelVersion"] == 3
    versions = versions_of(ns)
    assert "gate" not in versions[1]
    assert versions[2]["gate"] == {"metric": "accuracy", "passed": True}
    assert versions[3]["gate"] == {"metric": "accuracy", "passed": True, "dataValidated": True}

    # Version 2 passed its gate but declared no data validation: fine for production, not for
    # `validated`.
    refused(
        move_by_apply(ALICE, ns, {"production": 2, "validated": 2}),
        "rule requireDataValidation: protected alias validated may only name a version whose"
        " TrainingRun passed its data validation",
    )
    accepted(move_by_apply(ALICE, ns, {"production": 2}))
    accepted(move_by_apply(ALICE, ns, {"production": 3, "validated": 3}))
    wait_for(
        "production and validated on version 3",
        lambda: status_aliases(ns) == {"production": 3, "validated": 3},
    )
    # Still an approver's move only, also through client-side apply.
    refused(
        move_by_apply(BOB, ns, {"production": 2, "validated": 3}),
        "denied request: rule approvers: bob may not move protected alias production",
    )
    assert status_aliases(ns) == {"production": 3, "validated": 3}
