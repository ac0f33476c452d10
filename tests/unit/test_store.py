"""store.py: the in-memory informer cache (projection, indexes, resourceVersion ordering)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from modelwerk.store import Store, key_of


def pod(
    name: str,
    rv: str | int | None = "1",
    run: str | None = "r1",
    namespace: str | None = "ml",
    **extra: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {}}
    if namespace is not None:
        meta["namespace"] = namespace
    if rv is not None:
        meta["resourceVersion"] = str(rv) if isinstance(rv, int) else rv
    if run is not None:
        meta["labels"]["modelwerk.io/trainingrun"] = run
    return {"metadata": meta, "spec": {"big": "x" * 100}, "status": {"phase": "Running"}, **extra}


def by_run(body: Mapping[str, Any]) -> Iterable[Hashable]:
    run = body["metadata"].get("labels", {}).get("modelwerk.io/trainingrun")
    return [(body["metadata"].get("namespace") or "", run)] if run else []


def project(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body["metadata"]
    return {
        "metadata": {
            "name": meta["name"],
            "namespace": meta.get("namespace"),
            "resourceVersion": meta.get("resourceVersion"),
            "labels": dict(meta.get("labels") or {}),
        },
        "status": dict(body.get("status") or {}),
    }


def store() -> Store:
    return Store(project=project, indexes={"run": by_run})


def names(bodies: list[dict[str, Any]]) -> list[str]:
    return [b["metadata"]["name"] for b in bodies]


def test_key_of() -> None:
    assert key_of(pod("a")) == ("ml", "a")
    assert key_of(pod("node", namespace=None)) == ("", "node")


def test_upsert_get_len_values() -> None:
    s = Store()
    assert len(s) == 0
    assert s.get(("ml", "a")) is None
    stored = s.upsert(pod("a"))
    s.upsert(pod("b"))
    assert len(s) == 2
    assert s.get(("ml", "a")) == stored == pod("a")
    assert sorted(names(list(s.values()))) == ["a", "b"]
    # Same name, other namespace: another object.
    s.upsert(pod("a", namespace="other"))
    assert len(s) == 3


def test_default_store_copies_the_top_level() -> None:
    s = Store()
    body = pod("a")
    s.upsert(body)
    body["status"] = {"phase": "Failed"}
    stored = s.get(("ml", "a"))
    assert stored is not None
    assert stored["status"] == {"phase": "Running"}


def test_projection_is_what_is_stored_and_returned() -> None:
    s = store()
    returned = s.upsert(pod("a"))
    assert "spec" not in returned
    assert s.get(("ml", "a")) == returned
    assert returned["status"] == {"phase": "Running"}


def test_index_lookup_is_sorted_by_key() -> None:
    s = store()
    for name in ("c", "a", "b"):
        s.upsert(pod(name, run="r1"))
    s.upsert(pod("z", run="r2"))
    s.upsert(pod("unlabelled", run=None))
    assert names(s.by_index("run", ("ml", "r1"))) == ["a", "b", "c"]
    assert names(s.by_index("run", ("ml", "r2"))) == ["z"]
    assert s.by_index("run", ("ml", "nope")) == []
    assert s.by_index("run", ("other", "r1")) == []


def test_index_is_computed_on_the_projection() -> None:
    seen: list[Mapping[str, Any]] = []

    def spy(body: Mapping[str, Any]) -> Iterable[Hashable]:
        seen.append(body)
        return by_run(body)

    s = Store(project=project, indexes={"run": spy})
    s.upsert(pod("a"))
    assert seen
    assert all("spec" not in b for b in seen)


def test_reindexing_on_update_moves_the_object() -> None:
    s = store()
    s.upsert(pod("a", rv="1", run="r1"))
    s.upsert(pod("a", rv="2", run="r2"))
    assert s.by_index("run", ("ml", "r1")) == []
    assert names(s.by_index("run", ("ml", "r2"))) == ["a"]
    s.upsert(pod("a", rv="3", run=None))
    assert s.by_index("run", ("ml", "r2")) == []
    assert len(s) == 1


def test_remove_unindexes() -> None:
    s = store()
    s.upsert(pod("a"))
    s.upsert(pod("b"))
    s.remove(("ml", "a"))
    assert s.get(("ml", "a")) is None
    assert names(s.by_index("run", ("ml", "r1"))) == ["b"]
    assert len(s) == 1
    # Removing what is not there is harmless.
    s.remove(("ml", "a"))
    s.remove(("ml", "never"))
    assert len(s) == 1


def test_refuses_an_older_resource_version() -> None:
    s = store()
    newer = s.upsert(pod("a", rv="10", run="r2", status={"phase": "Succeeded"}))
    returned = s.upsert(pod("a", rv="9", run="r1", status={"phase": "Running"}))
    assert returned == newer
    assert s.get(("ml", "a")) == newer
    # The stale object's index entries were not applied either.
    assert s.by_index("run", ("ml", "r1")) == []
    assert names(s.by_index("run", ("ml", "r2"))) == ["a"]


def test_resource_versions_compare_as_numbers_not_strings() -> None:
    s = store()
    s.upsert(pod("a", rv="9", status={"phase": "Running"}))
    updated = s.upsert(pod("a", rv="10", status={"phase": "Succeeded"}))
    assert updated["status"] == {"phase": "Succeeded"}
    assert s.get(("ml", "a")) == updated


def test_accepts_the_same_resource_version() -> None:
    s = store()
    s.upsert(pod("a", rv="5", status={"phase": "Running"}))
    again = s.upsert(pod("a", rv="5", status={"phase": "Pending"}))
    assert again["status"] == {"phase": "Pending"}


def test_unparseable_resource_versions_trust_the_incoming_object() -> None:
    s = store()
    s.upsert(pod("a", rv="abc", status={"phase": "Running"}))
    assert s.upsert(pod("a", rv="1", status={"phase": "Failed"}))["status"] == {"phase": "Failed"}
    s.upsert(pod("b", rv="7", status={"phase": "Running"}))
    assert s.upsert(pod("b", rv=None, status={"phase": "Failed"}))["status"] == {"phase": "Failed"}


def test_multi_valued_index() -> None:
    def by_label_value(body: Mapping[str, Any]) -> Iterable[Hashable]:
        return list(body["metadata"]["labels"].values())

    s = Store(indexes={"label": by_label_value})
    a = pod("a", run="x")
    a["metadata"]["labels"]["other"] = "y"
    s.upsert(a)
    assert names(s.by_index("label", "x")) == ["a"]
    assert names(s.by_index("label", "y")) == ["a"]
    s.remove(("ml", "a"))
    assert s.by_index("label", "x") == []
    assert s.by_index("label", "y") == []


def test_objects_not_worth_keeping_are_dropped_and_unindexed() -> None:
    finished = {"r2"}
    store = Store(
        indexes={"run": by_run},
        keep=lambda body: (
            body["metadata"]["labels"].get("modelwerk.io/trainingrun") not in finished
        ),
    )
    store.upsert(pod("p1", run="r1"))
    store.upsert(pod("p2", rv=1, run="r2"))
    assert [b["metadata"]["name"] for b in store.values()] == ["p1"]
    assert store.by_index("run", ("ml", "r2")) == []
    # An object already cached that is no longer worth keeping leaves the cache and its index.
    finished.add("r1")
    store.upsert(pod("p1", rv=2, run="r1"))
    assert len(store) == 0
    assert store.by_index("run", ("ml", "r1")) == []
