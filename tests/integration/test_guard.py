"""spec.guard against a real Prometheus: the stack of test_canary (two real model servers of
versions 1 and 2 as local processes, real traffic, Prometheus scraping them every second, an
operator reading it). A version switched to under a guard is measured on its real requests: a
breach switches back, a clean window passes."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.integration.cluster import condition, wait_for
from tests.integration.servers import (
    MWD,
    Stream,
    events_of,
    has_condition,
    patch,
    version_deployments,
    wait_available,
    wait_mwd,
)

# The fixtures `artifacts` and `stack` are test_canary's: imported, pytest uses them here too
# (ruff sees their parameters as redefinitions: F811).
from tests.integration.test_canary import (  # noqa: F401
    HEAVY_BATCH,
    MODEL,
    Stack,
    artifacts,
    stack,
    wait_scraped,
)

pytestmark = pytest.mark.integration


def switch_to_two(
    stack: Stack,  # noqa: F811
    **guard: Any,
) -> None:
    patch(MWD, stack.namespace, MODEL, {"spec": {"version": 2, "guard": guard}})
    wait_mwd(
        stack.namespace,
        MODEL,
        "version 2 current and watched",
        lambda o: (
            o["status"].get("currentVersion") == 2
            or (o["status"].get("guard") or {}).get("state") == "Reverted"
        ),
    )


def test_guard_reverts_a_version_that_breaches_on_real_requests(stack: Stack) -> None:  # noqa: F811
    """The breach is the p99 latency of real requests of 5000 rows (several ms each, see
    test_canary_rolled_back_on_latency) against maxLatencyP99Ms: 1."""
    ns = stack.namespace
    stack.traffic.add(Stream(stack.servers[1].predict_url, rate=10))
    stack.traffic.add(Stream(stack.servers[2].predict_url, rate=4, batch=HEAVY_BATCH))
    wait_scraped(stack.prometheus, 2)

    switch_to_two(stack, window="5m", interval="5s", maxErrorRatePercent=50, maxLatencyP99Ms=1)
    obj = wait_mwd(
        ns,
        MODEL,
        "Guard=False Reverted",
        lambda o: has_condition(o, "Guard", "False", "Reverted"),
        timeout=90,
    )
    guard = obj["status"]["guard"]
    assert (guard["version"], guard["previousVersion"], guard["state"]) == (2, 1, "Reverted")
    measured = guard["latencyP99Ms"]
    assert measured > 1
    assert obj["status"]["rejectedVersions"] == [2]
    message = (condition(obj, "Guard") or {})["message"]
    assert re.search(r"version 2: p99 latency [0-9.]+ ms > 1 ms; version 1 serves again", message)

    # Zero-downtime back to version 1 (a switch like any other), recorded as Reverted.
    obj = wait_available(ns, MODEL, version=1, ready=2)
    wait_for(
        "version 2's apps Deployment removed", lambda: list(version_deployments(ns, MODEL)) == [1]
    )
    history = obj["status"]["history"]
    assert [(h.get("version"), h["reason"]) for h in history][-2:] == [
        (2, "Switched"),
        (1, "Reverted"),
    ], history
    warnings = [
        e for e in events_of(ns, MODEL) if e["reason"] == "GuardReverted" and e["type"] == "Warning"
    ]
    assert len(warnings) == 1, warnings
    numbers = re.findall(r"p99 latency ([0-9.]+) ms", warnings[0]["message"])
    assert len(numbers) == 1, warnings[0]["message"]
    assert abs(float(numbers[0]) - measured) < 0.1, warnings[0]["message"]


def test_guard_passes_a_version_whose_window_ends_within_limits(stack: Stack) -> None:  # noqa: F811
    ns = stack.namespace
    stack.traffic.add(Stream(stack.servers[1].predict_url, rate=10))
    stack.traffic.add(Stream(stack.servers[2].predict_url, rate=10))
    wait_scraped(stack.prometheus, 2)

    switch_to_two(stack, window="20s", interval="5s", maxErrorRatePercent=50, maxLatencyP99Ms=10000)
    watching = wait_mwd(
        ns,
        MODEL,
        "Guard=True Watching with a measurement",
        lambda o: has_condition(o, "Guard", "True", "Watching"),
        timeout=60,
    )
    guard = watching["status"]["guard"]
    assert guard["errorRatePercent"] == 0
    assert 0 < guard["latencyP99Ms"] < 10000

    obj = wait_mwd(
        ns, MODEL, "Guard=True Passed", lambda o: has_condition(o, "Guard", "True", "Passed")
    )
    assert obj["status"]["currentVersion"] == 2
    assert obj["status"]["guard"]["state"] == "Passed"
    assert obj["status"].get("rejectedVersions", []) == []
    wait_available(ns, MODEL, version=2, ready=2)
    assert "GuardReverted" not in [e["reason"] for e in events_of(ns, MODEL)]
