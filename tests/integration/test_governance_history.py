"""A Deployment's serving history across operator restarts, on the real apiserver with the real
operator process (its own, for this namespace only): what changed while the operator was down
is recorded once it is back, once; what was recorded before stays as it was; a restart with
nothing to change writes nothing (counted by the operator's own request counters)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.cluster import apply, get
from tests.integration.conftest import OperatorProcess
from tests.integration.servers import (
    MWD,
    available,
    deployment_manifest,
    model_with,
    wait_available,
    wait_mwd,
)
from tests.integration.test_deployment import declared
from tests.integration.test_restart_writes import quiet, restart

pytestmark = pytest.mark.integration


def history(namespace: str) -> list[dict[str, Any]]:
    obj = get(MWD, "iris", namespace) or {}
    return list((obj.get("status") or {}).get("history") or [])


def served(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (h["reason"], h.get("version"), h.get("canary"), h.get("trafficPercent")) for h in entries
    ]


def canary_serving(version: int, percent: int) -> Any:
    """Version 1 stable and `version` a canary at `percent`, all 2 replicas ready."""

    def check(obj: dict[str, Any]) -> bool:
        canary = (obj.get("status") or {}).get("canary") or {}
        return (
            available(1, 2)(obj)
            and canary.get("version") == version
            and canary.get("trafficPercent") == percent
        )

    return check


def test_deployment_history_survives_operator_restarts(
    namespace: str, operator_here: OperatorProcess
) -> None:
    ns = namespace
    model_with(ns, declared(1), declared(2))
    body = deployment_manifest("iris", "iris", version=1, runtime="native", replicas=2)
    apply(body, ns)
    wait_available(ns, "iris", version=1, ready=2)
    quiet(operator_here, reconciled=2)
    first = history(ns)
    assert served(first) == [("Switched", 1, None, None)]

    # A canary started while the operator is down (killed, no clean shutdown).
    operator_here.kill()
    apply({**body, "spec": {**body["spec"], "canary": {"version": 2, "trafficPercent": 50}}}, ns)
    operator_here.start()
    wait_mwd(ns, "iris", "canary 2 at 50 %, all replicas ready", canary_serving(2, 50), timeout=90)
    quiet(operator_here, reconciled=2)
    second = history(ns)
    # Nothing lost (the entry from before is unchanged, time included), nothing doubled: one
    # entry per change of what is served, the last one what is served now.
    assert second[: len(first)] == first
    assert served(second)[-1] == ("CanaryStarted", 1, 2, 50), second
    assert [h["reason"] for h in second].count("CanaryStarted") == 1, second
    assert [h["reason"] for h in second].count("Switched") == 1, second
    before = get(MWD, "iris", ns)
    assert before is not None

    # Restarts with nothing to change: no write at all, the history as it was.
    for attempt in range(2):
        assert restart(operator_here, reconciled=2) == {}, f"restart {attempt + 1}"
    after = get(MWD, "iris", ns)
    assert after is not None
    assert history(ns) == second
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
