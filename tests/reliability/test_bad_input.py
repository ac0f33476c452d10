"""Bad input: manifests generated from our CRDs' schemas with hypothesis and mutated (wrong
types, out-of-range numbers, over-long strings and lists, broken patterns and enums, dropped
required fields, unknown fields, NaN/inf, 300 kB strings, nulls, invalid names). Each one is
sent to the apiserver as a server-side dry-run create, and a sample as a real create: it is
refused (400/422, never a 5xx), or, created, reconciled by the operator at its generation with
every condition carrying a reason (the operator's verdict on input the schema admits). The
operator never exits or logs a traceback, and what was registered before stays as it was."""

from __future__ import annotations

import collections
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from tests.integration.cluster import apply, get, get_list, wait_for
from tests.integration.servers import MWD, deployment_manifest, reconciled, wait_available
from tests.integration.trainingruns import model_manifest
from tests.reliability import figures
from tests.reliability.apiclient import Client
from tests.reliability.operators import leader_of, replicas
from tests.reliability.schemas import Crd, case, crds

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

SCENARIO = "bad input (hypothesis)"
REASON = re.compile(r"^[A-Z][A-Za-z0-9]*$")


def declared(number: int) -> dict[str, Any]:
    return {
        "version": number,
        "artifact": {
            "uri": f"s3://bucket/anchor/{number}/model.joblib",
            "digest": "sha256:" + f"{number:02x}" * 32,
        },
        "metrics": {"accuracy": 0.9},
    }


def registered(ns: str) -> dict[str, Any]:
    model = get("model", "anchor", ns) or {}
    dep = get(MWD, "anchor", ns) or {}
    return {
        "versions": (model.get("status") or {}).get("versions"),
        "aliases": (model.get("status") or {}).get("aliases"),
        "serving": (dep.get("status") or {}).get("currentVersion"),
    }


def verdict_problems(obj: dict[str, Any]) -> list[str]:
    """What is wrong with the operator's verdict on a created object (empty: nothing)."""
    if not reconciled(obj):
        return ["not reconciled at its generation"]
    conditions = (obj.get("status") or {}).get("conditions") or []
    if not conditions:
        return ["no conditions"]
    return [
        f"condition {c.get('type')} without a reason or message: {c}"
        for c in conditions
        if not REASON.match(str(c.get("reason") or "")) or "message" not in c
    ]


def test_generated_and_mutated_manifests_are_refused_or_judged(
    kubeconfig: str, own_namespace: str, tmp_path: Path
) -> None:
    ns = own_namespace
    total = figures.sized(1000, 5000)
    sample_every = 10  # one real create in ten
    kinds = crds()
    client = Client(kubeconfig)
    procs = replicas(kubeconfig, ns, tmp_path)
    for proc in procs:
        proc.start()
    outcomes: collections.Counter[tuple[str, int]] = collections.Counter()
    created: list[tuple[Crd, dict[str, Any], str]] = []
    mismatched: list[str] = []
    server_errors: list[str] = []
    try:
        wait_for("a leader", lambda: leader_of(procs), timeout=60)
        apply(model_manifest("anchor", versions=[declared(1), declared(2)]), ns)
        apply(deployment_manifest("anchor", "anchor", version=1, runtime="native", replicas=1), ns)
        wait_available(ns, "anchor", version=1, ready=1)
        before = registered(ns)
        started = time.monotonic()
        count = 0

        @settings(
            max_examples=total,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case(kinds))
        def probe(drawn: tuple[Crd, dict[str, Any], str]) -> None:
            nonlocal count
            crd, manifest, mutation = drawn
            count += 1
            path = crd.path.format(ns=ns) + "?fieldValidation=Strict"
            status, body = client.request(
                "POST", path + "&dryRun=All", json.dumps(manifest).encode()
            )
            outcomes[(mutation, status)] += 1
            if status >= 500 or status not in (200, 201, 400, 422):
                server_errors.append(
                    f"{status} {body.get('message')}: {json.dumps(manifest)[:300]}"
                )
            if count % sample_every:
                return
            if manifest["metadata"]["name"] == "fuzz":
                manifest["metadata"]["name"] = f"fuzz-{count}"
            real, body = client.request("POST", path, json.dumps(manifest).encode())
            if (real < 300) != (status < 300):
                mismatched.append(f"dry-run {status}, create {real}: {body.get('message')}")
            if real < 300:
                created.append((crd, manifest, mutation))

        probe()
        sent = time.monotonic() - started

        def judged() -> list[str] | None:
            problems = []
            objects = {
                (crd.kind, o["metadata"]["name"]): o
                for crd in kinds
                for o in get_list(f"{crd.plural}.modelwerk.io", ns)
            }
            for crd, manifest, mutation in created:
                name = manifest["metadata"]["name"]
                obj = objects.get((crd.kind, name))
                # A finished run with a TTL is deleted by the operator: that is its verdict.
                ttl = "ttlSecondsAfterFinished" in manifest["spec"]
                found = ([] if ttl else ["gone"]) if obj is None else verdict_problems(obj)
                problems += [f"{crd.kind} {name} ({mutation}): {p}" for p in found]
            return problems or None

        last: list[str] | None = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            last = judged()
            if last is None:
                break
            time.sleep(2)
        assert last is None, "\n".join(last[:20])
        objects = [
            o
            for crd in kinds
            for o in get_list(f"{crd.plural}.modelwerk.io", ns)
            if o["metadata"]["name"].startswith("fuzz-")
        ]
        judged_false = sum(
            1
            for o in objects
            if any(c["status"] == "False" for c in o["status"].get("conditions") or [])
        )
        assert not server_errors, server_errors[:10]
        assert not mismatched, mismatched[:10]
        assert registered(ns) == before
        exits = sum(1 for p in procs if p.proc is None or p.proc.poll() is not None)
        tracebacks = sum(p.log().count("Traceback") for p in procs)
        assert exits == 0, [p.log()[-3000:] for p in procs]
        assert tracebacks == 0, [p.log()[-5000:] for p in procs]
    finally:
        client.close()
        for proc in procs:
            proc.kill()

    refused = sum(n for (_, status), n in outcomes.items() if status >= 400)
    figures.record(SCENARIO, "manifests generated and sent (dry-run create)", count, "≥ 1,000")
    figures.record(SCENARIO, "refused at apply (400/422)", refused)
    figures.record(SCENARIO, "5xx answers", len(server_errors), "0")
    figures.record(
        SCENARIO,
        "real creates (1 in 10) / accepted, judged by the operator",
        f"{count // sample_every} / {len(created)}",
    )
    figures.record(SCENARIO, "created and judged with a False condition (reason)", judged_false)
    figures.record(SCENARIO, "operator exits / tracebacks", f"{exits} / {tracebacks}", "0 / 0")
    figures.record(SCENARIO, "registered versions, aliases, serving changed", "no", "no")
    figures.record(SCENARIO, "dry-run requests per second", f"{count / sent:.0f}")
