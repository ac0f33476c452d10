"""Faulty network: the operator talks to the apiserver through our fault-injecting proxy
(proxy.py). Under 5xx answers, lost responses of writes that happened, 409s, 429s with
Retry-After, latency and watch streams cut mid-event, every TrainingRun still converges with
its version registered once and one Job; no request repeats before the Retry-After it got;
requests per second stay bounded (no hot loop). Then every open watch is stalled silently: the
operator notices within its watch inactivity timeout, reopens the stream, and a run created
during the stall converges."""

from __future__ import annotations

import collections
import re
import time
from pathlib import Path

import pytest

from tests.integration.cluster import apply, get, get_list, wait_for
from tests.integration.conftest import OperatorProcess
from tests.integration.trainingruns import (
    as_list,
    model_manifest,
    reference_report,
    run_manifest,
    wait_phase,
)
from tests.reliability import figures
from tests.reliability.apiclient import endpoint
from tests.reliability.proxy import Entry, FaultProxy, Faults

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

SCENARIO = "faulty network (proxy)"
INACTIVITY = 8.0  # MODELWERK_WATCH_INACTIVITY_SECONDS for this operator (default 70)
FAULTS = Faults(
    server_error=0.05,
    lost_response=0.05,
    conflict=0.05,
    throttle=0.05,
    retry_after=2,
    latency=0.2,
    truncate_watch=0.3,
)
# A lifecycle costs 6 writes and a few reads without faults (the benchmark); with one request
# in five failing, retries add a few. A hot loop retries as fast as the apiserver answers:
# hundreds per run.
MAX_PER_RUN = 20
MODEL_STATUS = re.compile(r".*/models/[^/]+/status$")


def per_second(entries: list[Entry]) -> list[int]:
    if not entries:
        return []
    counts = collections.Counter(int(e.at - entries[0].at) for e in entries)
    return [counts.get(s, 0) for s in range(max(counts) + 1)]


def retry_after_violations(entries: list[Entry], seconds: float) -> list[str]:
    """Requests sent again (same method, path and, for creates, name) sooner than the
    Retry-After of a 429. The Retry-After binds the work-queue key that got it; left out are
    the paths several keys write: events (best effort: a refused one is dropped, not retried,
    and the next POST is another event) and a Model's status (its own reconcile and every run
    registering a version into it)."""
    violations = []
    for i, entry in enumerate(entries):
        if entry.fault != "429" or entry.path.endswith("/events") or MODEL_STATUS.match(entry.path):
            continue
        following = next(
            (
                e
                for e in entries[i + 1 :]
                if (e.method, e.path, e.name) == (entry.method, entry.path, entry.name)
            ),
            None,
        )
        if following is not None and following.at - entry.at < seconds - 0.05:
            violations.append(
                f"{entry.method} {entry.path} again after {following.at - entry.at:.2f} s"
            )
    return violations


def registered_once(ns: str, names: list[str]) -> None:
    versions = (get("model", "iris", ns) or {}).get("status", {}).get("versions") or []
    assert sorted(v["version"] for v in versions) == list(range(1, len(names) + 1)), versions
    jobs = collections.Counter(
        j["metadata"]["labels"]["modelwerk.io/trainingrun"]
        for j in get_list("jobs", ns, "modelwerk.io/trainingrun")
    )
    assert jobs == dict.fromkeys(names, 1), jobs


def test_the_operator_converges_through_a_faulty_network(
    kubeconfig: str, own_namespace: str, tmp_path: Path
) -> None:
    ns = own_namespace
    runs = figures.sized(30, 300)
    report = reference_report().text
    proxy = FaultProxy(endpoint(kubeconfig))
    proxy.start()
    operator = OperatorProcess(
        proxy.kubeconfig(tmp_path / "kubeconfig"),
        tmp_path / "operator.log",
        "--namespace",
        ns,
        env={"MODELWERK_WATCH_INACTIVITY_SECONDS": str(INACTIVITY)},
    )
    try:
        operator.start()
        apply(model_manifest("iris"), ns)
        proxy.faults = FAULTS
        started = time.monotonic()
        names = [f"run-{i:04d}" for i in range(runs)]
        for i in range(0, runs, 10):
            batch = names[i : i + 10]
            apply(as_list(*(run_manifest(n, "iris", report=report) for n in batch)), ns)
        for name in names:
            wait_phase(ns, name, "Succeeded", timeout=180)
        converged = time.monotonic() - started
        faulty = proxy.log.snapshot(since=started)
        proxy.faults = Faults()
        registered_once(ns, names)
        violations = retry_after_violations(faulty, FAULTS.retry_after)
        rates = per_second(faulty)
        injected = collections.Counter(e.fault for e in faulty if e.fault)

        # A quiet minute's worth: what a converged operator asks for with nobody changing anything.
        quiet_from = time.monotonic()
        time.sleep(10)
        quiet = [e for e in proxy.log.snapshot(since=quiet_from) if not e.watch]

        # Stall every open watch: a run created now is seen only once the stream is reopened.
        stalled_at = proxy.stall_watches()
        apply(run_manifest("after-stall", "iris", report=report), ns)
        path = f"/apis/modelwerk.io/v1alpha1/namespaces/{ns}/trainingruns"

        def reopened() -> Entry | None:
            return next(
                (e for e in proxy.log.snapshot(since=stalled_at) if e.watch and e.path == path),
                None,
            )

        watch = wait_for("the TrainingRun watch reopened", reopened, timeout=INACTIVITY * 4)
        detected = watch.at - stalled_at
        wait_phase(ns, "after-stall", "Succeeded", timeout=60)
        after_stall = time.monotonic() - stalled_at
        registered_once(ns, [*names, "after-stall"])

        log = operator.log()
        assert operator.proc is not None, log[-3000:]
        assert operator.proc.poll() is None, log[-3000:]
        tracebacks = log.count("Traceback")
    finally:
        operator.kill()
        proxy.stop()

    figures.record(SCENARIO, "runs converged under faults (versions once, one Job)", runs)
    figures.record(
        SCENARIO,
        "faults injected",
        ", ".join(f"{k} {n}" for k, n in sorted(injected.items())),
    )
    figures.record(SCENARIO, "all runs Succeeded under faults", f"{converged:.1f} s")
    figures.record(SCENARIO, "requeue sooner than Retry-After", len(violations), "0")
    figures.record(
        SCENARIO, "requests per run under faults", f"{len(faulty) / runs:.1f}", f"≤ {MAX_PER_RUN}"
    )
    figures.record(
        SCENARIO,
        "requests/s under faults, max / mean",
        f"{max(rates)} / {sum(rates) / len(rates):.1f}",
    )
    figures.record(SCENARIO, "requests/s converged (no watch)", f"{len(quiet) / 10:.1f}", "0")
    figures.record(
        SCENARIO,
        "stalled watch reopened after",
        f"{detected:.1f} s",
        f"≤ inactivity timeout {INACTIVITY:g} s + 2",
    )
    figures.record(SCENARIO, "run created during the stall Succeeded after", f"{after_stall:.1f} s")
    figures.record(SCENARIO, "operator tracebacks", tracebacks, "0")
    assert not violations, violations[:10]
    assert len(faulty) / runs <= MAX_PER_RUN, collections.Counter(
        (e.method, e.path) for e in faulty
    )
    assert not quiet, quiet[:10]
    assert detected <= INACTIVITY + 2, detected
    assert tracebacks == 0, log[-5000:]
