"""Crash: two operator replicas with leader election, the leader SIGKILLed every few seconds
while TrainingRuns go through their lifecycle and a Deployment switches versions. Every run
converges, versions 1..N are registered once each, one Job per run, the Deployment never serves
with fewer ready replicas than asked for, nothing is left with a finalizer, and each failover is
measured (kill to the survivor leading)."""

from __future__ import annotations

import collections
import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import apply, get, get_list, kubectl, wait_for
from tests.integration.servers import (
    LABEL_DEPLOYMENT,
    MWD,
    Watch,
    deployment_manifest,
    patch,
    ready_replicas,
    wait_available,
)
from tests.integration.trainingruns import (
    TERMINAL_PHASES,
    as_list,
    model_manifest,
    reference_report,
    run_manifest,
)
from tests.reliability import figures
from tests.reliability.operators import LEASE_BOUND, Chaos, replicas

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

SCENARIO = "crash (SIGKILL leader)"
WAVE = 10
REPLICAS = 2


def declared(number: int) -> dict[str, Any]:
    return {
        "version": number,
        "artifact": {
            "uri": f"s3://bucket/served/{number}/model.joblib",
            "digest": "sha256:" + f"{number:02x}" * 32,
        },
        "metrics": {"accuracy": 0.9},
    }


def phases(namespace: str) -> dict[str, str | None]:
    return {
        r["metadata"]["name"]: (r.get("status") or {}).get("phase")
        for r in get_list("trainingruns", namespace)
    }


def test_sigkill_the_leader_through_lifecycles_and_version_switches(
    kubeconfig: str, own_namespace: str, tmp_path: Path
) -> None:
    runs = figures.sized(40, 500)
    switches = figures.sized(5, 50)
    report = reference_report().text
    ns = own_namespace
    procs = replicas(kubeconfig, ns, tmp_path)
    for proc in procs:
        proc.start()
    chaos = Chaos(procs)
    try:
        apply(model_manifest("iris"), ns)
        apply(model_manifest("served", versions=[declared(1), declared(2)]), ns)
        apply(deployment_manifest("serve", "served", version=1, runtime="native", replicas=2), ns)
        wait_available(ns, "serve", version=1, ready=REPLICAS)
        chaos.start()
        started = time.monotonic()
        names = [f"run-{i:05d}" for i in range(runs)]
        waves = [names[i : i + WAVE] for i in range(0, runs, WAVE)]
        switch_after = {round((k + 1) * len(waves) / (switches + 1)) for k in range(switches)}
        version, done = 1, 0
        with Watch("deployments.apps", ns, f"{LABEL_DEPLOYMENT}=serve") as apps:
            wait_for("the watch to list serve-v1", lambda: apps.snapshot())
            for index, wave in enumerate(waves):
                # Staggered ends (1 to 4 s of simulated training), so kills land mid-registration.
                manifests = [
                    run_manifest(n, "iris", report=report, sim={"DURATION": f"{1 + j * 0.3:.1f}s"})
                    for j, n in enumerate(wave)
                ]
                apply(as_list(*manifests), ns)
                while done < switches and (index in switch_after or index == len(waves) - 1):
                    version = 3 - version
                    patch(MWD, ns, "serve", {"spec": {"version": version}})
                    wait_available(ns, "serve", version=version, ready=REPLICAS)
                    done += 1
                    if index != len(waves) - 1:
                        break
            states = apps.states()
        assert done == switches

        def converged() -> bool:
            current = phases(ns)
            return len(current) == runs and all(p in TERMINAL_PHASES for p in current.values())

        wait_for(f"{runs} runs finished", converged, timeout=120 + runs, interval=1)
        converge = time.monotonic() - started
        chaos.stop()

        final = phases(ns)
        assert set(final.values()) == {"Succeeded"}, collections.Counter(final.values())
        model = get("model", "iris", ns) or {}
        versions = (model.get("status") or {}).get("versions") or []
        numbers = sorted(v["version"] for v in versions)
        assert numbers == list(range(1, runs + 1)), numbers
        by_run = {r["metadata"]["uid"]: r for r in get_list("trainingruns", ns)}
        assert sorted(v["source"]["uid"] for v in versions) == sorted(by_run)
        for v in versions:
            assert by_run[v["source"]["uid"]]["status"]["modelVersion"] == v["version"]
        jobs = collections.Counter(
            j["metadata"]["labels"]["modelwerk.io/trainingrun"]
            for j in get_list("jobs", ns, "modelwerk.io/trainingrun")
        )
        assert jobs == dict.fromkeys(names, 1), {n: c for n, c in jobs.items() if c != 1}
        # From the first listing of serve-v1 with all its replicas ready to the end, no moment
        # with fewer ready pods than asked for.
        first = next(i for i, s in enumerate(states) if ready_replicas(s) >= REPLICAS)
        least = min(ready_replicas(s) for s in states[first:])
        assert least >= REPLICAS, least

        # Deleting everything (still under chaos would hide nothing: no finalizers to run).
        kubectl(
            "delete",
            "trainingruns,deployments.modelwerk.io,models",
            "--all",
            "-n",
            ns,
            "--wait=false",
        )
        left: list[dict[str, Any]] = []

        def gone() -> bool:
            nonlocal left
            left = [o for kind in ("trainingruns", MWD, "models") for o in get_list(kind, ns)]
            return not left

        deadline = time.monotonic() + 60
        while not gone() and time.monotonic() < deadline:
            time.sleep(1)
        stuck = [o["metadata"]["name"] for o in left if o["metadata"].get("finalizers")]
        assert not left, json.dumps([o["metadata"] for o in left])[:2000]

        for proc in procs:
            assert "Traceback" not in proc.log(), proc.log()[-5000:]
    finally:
        chaos.halt()
        for proc in procs:
            proc.kill()

    f = chaos.failovers
    assert f, "the leader was never killed"
    figures.record(SCENARIO, "TrainingRun lifecycles / version switches", f"{runs} / {switches}")
    figures.record(SCENARIO, "leader SIGKILLs (failovers)", len(f))
    figures.record(
        SCENARIO,
        "failover: kill → survivor leads, max / p50",
        figures.seconds(f),
        f"≤ {LEASE_BOUND + 2:g} s (lease + retry + 2)",
    )
    figures.record(SCENARIO, "all runs Succeeded, from first kill", f"{converge:.1f} s")
    figures.record(SCENARIO, "versions registered once each", f"1..{runs}", f"1..{runs}")
    figures.record(SCENARIO, "Jobs per run", "1", "1")
    figures.record(SCENARIO, "least ready serving replicas during switches", least, f"≥ {REPLICAS}")
    figures.record(SCENARIO, "objects left with finalizers after delete", len(stuck), "0")
    assert max(f) <= LEASE_BOUND + 2, f
