"""The Job and pods of a finished run leave the caches: its outcome is in its status, and its
reconciles read nothing of them any more. Those of a run still going stay; a restart over a
finished run caches none of them and writes nothing."""

from __future__ import annotations

from modelwerk import kinds, wiring
from tests.reconcile.test_trainingrun import job, pod, terminated
from tests.reconcile.world import NS, World, model, report, run


def cached_children(world: World) -> dict[str, list[str]]:
    return {
        kind.kind: sorted(b["metadata"]["name"] for b in world.mgr.store(kind).values())
        for kind in (kinds.JOB, kinds.POD)
    }


async def test_children_leave_the_caches_once_the_run_has_finished() -> None:
    world = World()
    world.given(model(), run(), job(active=1), pod("run-1", "Running"))
    await world.settle()
    assert world.status(kinds.TRAININGRUN, "run-1")["phase"] == "Running"
    assert cached_children(world) == {"Job": ["run-1"], "Pod": ["run-1-x1"]}

    world.given(
        job(condition="Complete", succeeded=1), pod("run-1", "Succeeded", **terminated(report()))
    )
    await world.settle()
    assert world.status(kinds.TRAININGRUN, "run-1")["phase"] == "Succeeded"
    assert cached_children(world) == {"Job": [], "Pod": []}
    assert await world.reconcile_all() == []

    fresh = await world.restarted()
    assert cached_children(fresh) == {"Job": [], "Pod": []}
    assert await fresh.reconcile_all() == []
    assert fresh.status(kinds.TRAININGRUN, "run-1")["phase"] == "Succeeded"


async def test_a_finished_runs_watch_event_forgets_its_children() -> None:
    world = World()
    world.given(model(), run(), job(active=1), pod("run-1", "Running"))
    finished = world.mgr.store(kinds.TRAININGRUN).get((NS, "run-1"))
    assert finished is not None
    event = {"type": "MODIFIED"}
    body = {**finished, "status": {"phase": "Failed"}}
    wiring.observe(world.mgr, kinds.TRAININGRUN, event, body)
    assert cached_children(world) == {"Job": [], "Pod": []}
    # A later event of a child of the finished run is not cached again.
    wiring.observe(world.mgr, kinds.POD, event, pod("run-1", "Failed"))
    assert cached_children(world) == {"Job": [], "Pod": []}
