"""Model reconciler, table-driven: declared versions merge into the registered ones, aliases
resolve, collisions are refused (never overwritten); and the fake honours k8s.Api."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import pytest

from modelwerk import k8s, kinds
from tests.reconcile.fake import FakeKube
from tests.reconcile.world import DIGEST, World, model, model_with, registered, summary

DECLARED = {"version": 1, "artifact": {"uri": "s3://bucket/iris/v1.joblib", "digest": DIGEST}}


@dataclass
class Case:
    name: str
    body: dict[str, Any]
    phase: str
    condition: tuple[str, str]
    versions: list[int]
    aliases: dict[str, int]


CASES = [
    Case("nothing registered yet", model(), "Pending", ("True", "Resolved"), [], {}),
    Case(
        "a declared version",
        model(versions=[DECLARED], aliases={"production": 1}),
        "Ready",
        ("True", "Resolved"),
        [1],
        {"production": 1},
    ),
    Case(
        "a declared number taken by a registered version is refused",
        {**model_with(registered(1)), "spec": {**model()["spec"], "versions": [DECLARED]}},
        "Degraded",
        ("False", "VersionConflict"),
        [1],
        {},
    ),
    Case(
        "an alias naming no version",
        model(aliases={"production": 7}),
        "Degraded",
        ("False", "VersionConflict"),
        [],
        {},
    ),
    Case(
        "promotion by metric picks the best version",
        {
            **model_with(registered(1), {**registered(2), "metrics": {"accuracy": 0.97}}),
            "spec": {
                **model()["spec"],
                "promotion": {"alias": "candidate", "metric": "accuracy", "direction": "max"},
            },
        },
        "Ready",
        ("True", "Resolved"),
        [1, 2],
        {"candidate": 2},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_one_reconcile(case: Case) -> None:
    world = World()
    world.given(case.body)
    _, writes = await world.reconcile(kinds.MODEL, "iris")
    assert summary(writes) == ["status Model iris"]
    status = world.status(kinds.MODEL, "iris")
    assert status["phase"] == case.phase
    assert world.condition(kinds.MODEL, "iris", "Ready") == case.condition
    assert [v["version"] for v in status["versions"]] == case.versions
    assert status["aliases"] == case.aliases
    # Registered versions stay exactly as they were.
    for before in (case.body.get("status") or {}).get("versions") or []:
        assert before in status["versions"]
    _, again = await world.reconcile(kinds.MODEL, "iris")
    assert again == []


async def test_a_conflicting_writer_is_retried_from_a_fresh_read() -> None:
    world = World()
    world.given(model(versions=[DECLARED]))
    world.kube.conflicts = 2
    _, writes = await world.reconcile(kinds.MODEL, "iris")
    assert summary(writes) == ["status Model iris"] * 3
    assert [v["version"] for v in world.status(kinds.MODEL, "iris")["versions"]] == [1]


def test_the_fake_has_the_interface_of_the_real_client() -> None:
    for name, member in inspect.getmembers(k8s.Api, inspect.isfunction):
        if name.startswith("_"):
            continue
        fake = getattr(FakeKube, name)
        assert inspect.iscoroutinefunction(fake), name
        real = inspect.signature(member)
        assert list(inspect.signature(fake).parameters) == list(real.parameters), name
        assert list(inspect.signature(getattr(k8s.Kube, name)).parameters) == list(
            real.parameters
        ), name


async def test_the_fake_refuses_a_status_the_api_does_not_define() -> None:
    world = World()
    world.given(model())
    body = world.kube.find(kinds.MODEL, "iris")
    assert body is not None
    with pytest.raises(AssertionError, match=r"status\.bogus"):
        await world.kube.patch_status(body, {"bogus": 1})


async def test_a_request_the_rbac_table_does_not_grant_is_refused_before_it_is_sent() -> None:
    """As k8s.Kube does: the operator never patches a Model itself, only its status."""
    world = World()
    world.given(model())
    with pytest.raises(kinds.NotGranted, match=r"patch models\.modelwerk\.io"):
        await world.kube.patch(kinds.MODEL, "iris", "ns", {"metadata": {"labels": {"a": "b"}}})
    with pytest.raises(kinds.NotGranted, match=r"delete models\.modelwerk\.io"):
        await world.kube.delete(kinds.MODEL, "iris", "ns")
    with pytest.raises(kinds.NotGranted, match="get pods"):
        await world.kube.get(kinds.POD, "p", "ns")
    body = world.kube.find(kinds.MODEL, "iris")
    assert body is not None
    await world.kube.patch_status(body, {"phase": "Ready"})
    kube = k8s.Kube("http://127.0.0.1:1", None, checked=False)  # type: ignore[arg-type]
    kube._require(kinds.MODEL, "patch")  # not the operator: nothing refused
