"""Canary analysis end to end with a real Prometheus: two real model servers (versions 1 and 2 of
artifacts from the reference trainer) run as local processes and get real traffic, Prometheus
scrapes them every second, and the operator (started with --prometheus-url) reads their error
rate and p99 latency to step the canary up to promotion or roll it back.

The apps Deployments on the kwok nodes do not run the servers: the local processes stand in for
their pods, labelled the same way (model = the Model's name, version = the version number).
Prometheus scrapes them with static configs, so there is no `namespace` label on the series and
the operator runs with MODELWERK_PROMETHEUS_NAMESPACE_LABEL=false."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import apply, condition, get, kubectl, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.servers import (
    LABEL_TRACK,
    MWD,
    Artifact,
    ModelServer,
    Prometheus,
    Stream,
    Traffic,
    Watch,
    deployment_manifest,
    events_of,
    has_condition,
    model_servers,
    model_with,
    mwd,
    own_operator,
    patch,
    pods_of,
    prometheus,
    traffic,
    train,
    version_deployments,
    wait_available,
    wait_mwd,
)
from tests.integration.trainingruns import metric_sum

pytestmark = pytest.mark.integration

MODEL = "iris"
INTERVAL = "5s"
# Every request of this size does well over a millisecond of work in the server (JSON parsing
# and per-value validation of 20 000 numbers): see test_canary_rolled_back_on_latency.
HEAVY_BATCH = 5000


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Artifact]:
    """Versions 1 and 2: the reference trainer with C=1.0 and C=0.5 (different digests)."""
    trained = train(tmp_path_factory.mktemp("artifacts"), {"v1": 1.0, "v2": 0.5})
    return {1: trained["v1"], 2: trained["v2"]}


@dataclass
class Stack:
    namespace: str
    servers: dict[int, ModelServer]
    prometheus: Prometheus
    operator: OperatorProcess
    traffic: Traffic


@pytest.fixture
def stack(
    namespace: str,
    operator: OperatorProcess,
    kubeconfig: str,
    tmp_path: Path,
    artifacts: dict[int, Artifact],
) -> Iterator[Stack]:
    """The servers, Prometheus scraping them, a traffic generator (no streams yet) and an
    operator of this test's own reading that Prometheus; all stopped afterwards, and the session
    operator started again."""
    with contextlib.ExitStack() as stack:
        servers = stack.enter_context(model_servers(tmp_path, MODEL, artifacts, deployment=MODEL))
        prom = stack.enter_context(prometheus(tmp_path, list(servers.values())))
        proc = stack.enter_context(
            own_operator(
                operator,
                kubeconfig,
                tmp_path / "operator.log",
                "--namespace",
                namespace,
                "--prometheus-url",
                prom.url,
                env={"MODELWERK_PROMETHEUS_NAMESPACE_LABEL": "false"},
            )
        )
        load = stack.enter_context(traffic(max_seconds=150))
        model_with(namespace, artifacts[1].declared_version(1), artifacts[2].declared_version(2))
        apply(deployment_manifest(MODEL, MODEL, version=1, runtime="native", replicas=2), namespace)
        wait_available(namespace, MODEL, version=1, ready=2)
        yield Stack(namespace, servers, prom, proc, load)


def canary(interval: str = INTERVAL, **analysis: Any) -> dict[str, Any]:
    return {
        "spec": {
            "canary": {
                "version": 2,
                "analysis": {"interval": interval, "steps": [50, 100], **analysis},
            }
        }
    }


def canary_state(obj: dict[str, Any]) -> str | None:
    state = ((obj.get("status") or {}).get("canary") or {}).get("state")
    return str(state) if state is not None else None


def wait_scraped(prom: Prometheus, version: int, deployment: str = MODEL) -> None:
    """Until Prometheus has a rate of requests for the version (two scrapes with traffic)."""
    labels = f'model="{MODEL}",version="{version}",modelwerk_deployment="{deployment}"'
    query = f"sum(rate(modelwerk_requests_total{{{labels}}}[5s]))"
    wait_for(
        f"Prometheus to see requests to version {version} of {deployment}",
        lambda: (prom.query_value(query) or 0) > 0,
        timeout=30,
    )


def reconciles(stack: Stack) -> float:
    return metric_sum(stack.operator.metrics(), "modelwerk_reconcile_total", kind="Deployment")


def nudge(stack: Stack) -> None:
    """Touches the Deployment and waits until the operator (this test's own, watching only this
    namespace) has reconciled it again."""
    before = reconciles(stack)
    kubectl(
        "annotate",
        "--overwrite",
        MWD,
        MODEL,
        "-n",
        stack.namespace,
        f"test.modelwerk.io/nudge={before}",
    )
    wait_for("another reconcile", lambda: reconciles(stack) > before)


# --- 7a. promotion ---------------------------------------------------------------------------


def test_canary_promoted_after_every_step(stack: Stack) -> None:
    ns = stack.namespace
    stack.traffic.add(Stream(stack.servers[1].predict_url, rate=10))
    wait_scraped(stack.prometheus, 1)

    with Watch(MWD, ns) as watch:
        wait_for("the watch to list the Deployment", watch.snapshot)
        patch(MWD, ns, MODEL, canary(maxErrorRatePercent=50, maxLatencyP99Ms=10000))
        # No request reaches the canary yet: no errors and no latency is no evidence, so the
        # first step holds rather than pass.
        obj = wait_mwd(
            ns,
            MODEL,
            "analysis waiting for canary traffic",
            lambda o: has_condition(o, "CanaryAnalysis", "Unknown", "NoTraffic"),
            timeout=30,
        )
        assert obj["status"]["canary"]["step"] == 0
        assert obj["status"]["canary"]["trafficPercent"] == 50
        assert obj["status"]["canary"]["state"] == "Progressing"

        stack.traffic.add(Stream(stack.servers[2].predict_url, rate=10))
        obj = wait_mwd(
            ns, MODEL, "canary Promoted", lambda o: canary_state(o) == "Promoted", timeout=60
        )
        obj = wait_available(ns, MODEL, version=2, ready=2)

    # Through every step: 50 % then 100 % of the traffic, then promoted.
    seen: list[tuple[Any, Any, Any]] = []
    for event in watch.snapshot():
        status = (event.object.get("status") or {}).get("canary") or {}
        step = (status.get("state"), status.get("step"), status.get("trafficPercent"))
        if status and (not seen or seen[-1] != step):
            seen.append(step)
    assert seen == [("Progressing", 0, 50), ("Progressing", 1, 100), ("Promoted", 1, 100)], seen

    status = obj["status"]
    assert status["currentVersion"] == 2
    assert status["canary"]["version"] == 2
    assert status["canary"]["trafficPercent"] == 100
    # The last measurement, from Prometheus: the canary answered without errors, well in time.
    assert status["canary"]["errorRatePercent"] == 0
    assert 0 < status["canary"]["latencyP99Ms"] < 10000
    promoted = condition(obj, "CanaryAnalysis")
    assert promoted is not None
    assert (promoted["status"], promoted["reason"]) == ("True", "Promoted")
    # The operator never writes spec: the message says how to make the promotion permanent.
    assert "set spec.version to 2 before removing spec.canary" in promoted["message"]
    assert status["rejectedVersions"] == []
    assert status["lineage"] == {}  # declared versions have no training lineage
    # The promotion is on the Model's record: protected aliases' requireCanary reads it.
    model = wait_for(
        "the promotion recorded on the Model",
        lambda: (
            m if (m := get("model", MODEL, ns)) and m["status"].get("canaryPromotions") else None
        ),
    )
    assert [(p["version"], p["deployment"]) for p in model["status"]["canaryPromotions"]] == [
        (2, MODEL)
    ]

    # Only version 2 is left, now the stable track, with all the replicas.
    children = wait_for(
        "v1 removed", lambda: c if list(c := version_deployments(ns, MODEL)) == [2] else None
    )
    assert children[2]["spec"]["replicas"] == 2
    assert children[2]["metadata"]["labels"][LABEL_TRACK] == "stable"
    reasons = [e["reason"] for e in events_of(ns, MODEL)]
    assert "CanaryPromoted" in reasons

    # What a user does next: make version 2 the spec's version and drop the canary. Nothing
    # restarts: the very same pods serve on.
    v2_pods = {p["metadata"]["uid"] for p in pods_of(ns, MODEL, 2)}
    patch(MWD, ns, MODEL, {"spec": {"version": 2, "canary": None}})
    obj = wait_mwd(
        ns,
        MODEL,
        "no canary",
        lambda o: "canary" not in o["status"] and o["status"].get("phase") == "Available",
    )
    assert obj["status"]["currentVersion"] == 2
    assert condition(obj, "CanaryAnalysis") is None
    assert list(version_deployments(ns, MODEL)) == [2]
    assert {p["metadata"]["uid"] for p in pods_of(ns, MODEL, 2)} == v2_pods


# --- 7b. rollback ----------------------------------------------------------------------------


def test_canary_rolled_back_on_latency(stack: Stack) -> None:
    """The breach is the p99 latency against maxLatencyP99Ms: 1. The servers' smallest histogram
    bucket is 1 ms and histogram_quantile interpolates inside it, so a p99 of small requests
    can come out below 1 ms (most single-row predictions take < 1 ms). The canary therefore
    gets requests of 5000 rows, each of which takes several milliseconds in the server: every
    observation lands above the 2.5 ms bucket, so the p99 estimate is > 1 ms whatever the
    machine's speed (a slower machine only makes it larger)."""
    ns = stack.namespace
    stack.traffic.add(Stream(stack.servers[1].predict_url, rate=10))
    stack.traffic.add(Stream(stack.servers[2].predict_url, rate=4, batch=HEAVY_BATCH))
    wait_scraped(stack.prometheus, 2)

    # A fractional Go duration, as the API admits: the PromQL window becomes 4800ms (PromQL
    # itself refuses `0.08m`).
    patch(MWD, ns, MODEL, canary("0.08m", maxErrorRatePercent=50, maxLatencyP99Ms=1))
    obj = wait_mwd(
        ns, MODEL, "canary RolledBack", lambda o: canary_state(o) == "RolledBack", timeout=60
    )
    status = obj["status"]
    measured = status["canary"]["latencyP99Ms"]
    assert measured > 1
    assert status["canary"]["errorRatePercent"] == 0
    assert status["canary"]["trafficPercent"] == 0
    assert status["rejectedVersions"] == [2]
    analysis = condition(obj, "CanaryAnalysis")
    assert analysis is not None
    assert (analysis["status"], analysis["reason"]) == ("False", "RolledBack")
    numbers = [
        float(n) for n in re.findall(r"p99 latency ([0-9.]+) ms > 1 ms", analysis["message"])
    ]
    assert len(numbers) == 1, analysis["message"]
    assert abs(numbers[0] - measured) < 0.1, analysis["message"]

    # The canary's apps Deployment is removed; version 1 serves with all replicas.
    wait_for(
        "the canary's apps Deployment removed", lambda: list(version_deployments(ns, MODEL)) == [1]
    )
    obj = wait_available(ns, MODEL, version=1, ready=2)
    assert version_deployments(ns, MODEL)[1]["spec"]["replicas"] == 2

    warnings = [
        e
        for e in events_of(ns, MODEL)
        if e["reason"] == "CanaryRolledBack" and e["type"] == "Warning"
    ]
    assert len(warnings) == 1, warnings
    assert "p99 latency" in warnings[0]["message"]

    # Later reconciles keep the verdict and its numbers, and never bring version 2 back.
    nudge(stack)
    obj = mwd(ns, MODEL)
    assert condition(obj, "CanaryAnalysis") == analysis
    assert obj["status"]["canary"]["latencyP99Ms"] == measured
    assert obj["status"]["rejectedVersions"] == [2]
    assert list(version_deployments(ns, MODEL)) == [1]
    assert [e["reason"] for e in events_of(ns, MODEL)].count("CanaryRolledBack") == 1


# --- 7c. two Deployments of one Model in one namespace ---------------------------------------


def test_two_deployments_of_one_model_never_mix_their_numbers(
    namespace: str,
    operator: OperatorProcess,
    kubeconfig: str,
    tmp_path: Path,
    artifacts: dict[int, Artifact],
) -> None:
    """iris-a and iris-b serve the same Model in one namespace, both with version 2 as canary.
    Only iris-a's canary gets requests: iris-a is promoted, while iris-b's analysis sees none of
    iris-a's requests to the same version number and holds (NoTraffic). Once iris-b's own canary
    gets requests, it is promoted on its own numbers."""
    ns = namespace
    names = ("iris-a", "iris-b")
    with contextlib.ExitStack() as stack:
        servers = {
            name: stack.enter_context(model_servers(tmp_path, MODEL, artifacts, deployment=name))
            for name in names
        }
        prom = stack.enter_context(
            prometheus(
                tmp_path, [s for by_version in servers.values() for s in by_version.values()]
            )
        )
        stack.enter_context(
            own_operator(
                operator,
                kubeconfig,
                tmp_path / "operator.log",
                "--namespace",
                ns,
                "--prometheus-url",
                prom.url,
                env={"MODELWERK_PROMETHEUS_NAMESPACE_LABEL": "false"},
            )
        )
        load = stack.enter_context(traffic(max_seconds=150))
        model_with(ns, artifacts[1].declared_version(1), artifacts[2].declared_version(2))
        for name in names:
            apply(deployment_manifest(name, MODEL, version=1, runtime="native", replicas=2), ns)
        for name in names:
            wait_available(ns, name, version=1, ready=2)

        for name in names:
            load.add(Stream(servers[name][1].predict_url, rate=5))
        load.add(Stream(servers["iris-a"][2].predict_url, rate=10))
        wait_scraped(prom, 2, "iris-a")
        for name in names:
            patch(MWD, ns, name, canary(maxErrorRatePercent=50, maxLatencyP99Ms=10000))

        wait_mwd(ns, "iris-a", "canary Promoted", lambda o: canary_state(o) == "Promoted")
        # iris-b was measured after its first interval as well (both started together), while
        # iris-a's canary had requests all along: none of them counted for iris-b.
        held = wait_mwd(
            ns,
            "iris-b",
            "analysis waiting for its own canary traffic",
            lambda o: has_condition(o, "CanaryAnalysis", "Unknown", "NoTraffic"),
            timeout=30,
        )
        assert held["status"]["canary"]["state"] == "Progressing"
        assert held["status"]["canary"]["step"] == 0
        assert "modelwerk_deployment='iris-b'" in (condition(held, "CanaryAnalysis") or {}).get(
            "message", ""
        )
        assert load.count(servers["iris-b"][2].predict_url) == 0

        load.add(Stream(servers["iris-b"][2].predict_url, rate=10))
        obj = wait_mwd(ns, "iris-b", "canary Promoted", lambda o: canary_state(o) == "Promoted")
        assert obj["status"]["canary"]["errorRatePercent"] == 0
        assert 0 < obj["status"]["canary"]["latencyP99Ms"] < 10000
        assert load.errors == []
