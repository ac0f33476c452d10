"""registry.py: version numbers, declared versions, promotion and aliases."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modelwerk.api.common import Baseline, Direction
from modelwerk.api.model import Model
from modelwerk.registry import (
    better,
    find_by_uid,
    find_number,
    metric_of_alias,
    next_number,
    resolve,
)

NOW = "2024-05-01T12:00:00Z"
EARLIER = "2024-04-01T08:00:00Z"


def digest(n: int) -> str:
    return "sha256:" + f"{n:02x}" * 32


def artifact(n: int) -> dict[str, Any]:
    return {"uri": f"s3://models/iris/v{n}", "digest": digest(n)}


def registered(
    number: int, metrics: dict[str, float] | None = None, **extra: Any
) -> dict[str, Any]:
    """A version as it sits in status.versions, registered by a run."""
    return {
        "version": number,
        "artifact": artifact(number),
        "metrics": dict(metrics or {}),
        "source": {"trainingRun": f"iris-{number}", "uid": f"uid-{number}"},
        "registeredAt": EARLIER,
        **extra,
    }


def declared(number: int, art: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"version": number, "artifact": art or artifact(number), **extra}


def model(**spec: Any) -> Model:
    return Model.from_body({"metadata": {"name": "iris", "namespace": "ml"}, "spec": spec})


def numbers(versions: list[dict[str, Any]]) -> list[int]:
    return [int(v["version"]) for v in versions]


# --- numbers and lookups --------------------------------------------------------------------


def test_next_number_starts_at_one() -> None:
    assert next_number([]) == 1


def test_next_number_is_one_past_the_highest_even_with_gaps_and_disorder() -> None:
    assert next_number([registered(3), registered(1)]) == 4
    assert next_number([registered(1), registered(7), registered(2)]) == 8


def test_next_number_never_reuses_a_number() -> None:
    versions = [registered(n) for n in (1, 2, 5)]
    assert next_number(versions) not in numbers(versions)


def test_find_by_uid() -> None:
    versions = [registered(1), registered(2), {"version": 3, "artifact": artifact(3)}]
    found = find_by_uid(versions, "uid-2")
    assert found is not None
    assert found["version"] == 2
    assert find_by_uid(versions, "uid-9") is None
    # Declared versions have a source without a uid: they must not match an empty uid by accident.
    assert find_by_uid([declared(4, source={"declared": True})], "") is None


def test_find_by_uid_tolerates_null_source() -> None:
    assert find_by_uid([{"version": 1, "source": None}], "uid-1") is None


def test_find_number() -> None:
    versions = [registered(1), registered(4)]
    found = find_number(versions, 4)
    assert found is not None
    assert found["artifact"] == artifact(4)
    assert find_number(versions, 2) is None


# --- better ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "direction", "expected"),
    [
        (0.9, 0.8, Direction.MAX, True),
        (0.8, 0.9, Direction.MAX, False),
        (0.9, 0.9, Direction.MAX, False),
        (0.1, 0.2, Direction.MIN, True),
        (0.2, 0.1, Direction.MIN, False),
        (0.2, 0.2, Direction.MIN, False),
        (0.9, 0.8, "max", True),
        (0.1, 0.2, "min", True),
        (0.2, 0.1, "min", False),
    ],
)
def test_better_is_strict_in_either_direction(
    a: float, b: float, direction: Direction | str, expected: bool
) -> None:
    assert better(a, b, direction) is expected


def test_better_refuses_an_unknown_direction() -> None:
    with pytest.raises(ValueError, match="sideways"):
        better(1.0, 2.0, "sideways")


# --- declared versions ----------------------------------------------------------------------


def test_declared_version_is_merged_into_an_empty_registry() -> None:
    baseline = {"features": {"petal_length": {"mean": 3.7, "std": 1.7}}}
    spec = model(versions=[declared(1, metrics={"accuracy": 0.93}, baseline=baseline)])
    result = resolve(spec, [], NOW)
    assert result.problems == []
    (entry,) = result.versions
    # The baseline is the API's JSON form (it may carry defaulted fields): compare it parsed.
    assert Baseline.model_validate(entry.pop("baseline")) == Baseline.model_validate(baseline)
    assert entry == {
        "version": 1,
        "artifact": artifact(1),
        "metrics": {"accuracy": 0.93},
        "source": {"declared": True},
        "registeredAt": NOW,
    }


def test_declared_artifact_without_digest_omits_it() -> None:
    spec = model(versions=[declared(2, {"uri": "https://example.com/m.onnx"})])
    result = resolve(spec, [], NOW)
    assert result.versions[0]["artifact"] == {"uri": "https://example.com/m.onnx"}
    assert "baseline" not in result.versions[0]


def test_declared_collision_by_number_is_a_problem_and_not_overwritten() -> None:
    existing = [registered(1, {"accuracy": 0.9}), registered(2, {"accuracy": 0.95})]
    before = copy.deepcopy(existing)
    other = {"uri": "s3://elsewhere/model", "digest": digest(99)}
    result = resolve(
        model(versions=[declared(2, other, metrics={"accuracy": 0.99})]), existing, NOW
    )

    assert len(result.problems) == 1
    assert "declared version 2 collides" in result.problems[0]
    assert "s3://models/iris/v2" in result.problems[0]
    assert numbers(result.versions) == [1, 2]
    assert result.versions == before
    assert existing == before


def test_declared_digest_already_registered_under_another_number_is_a_problem() -> None:
    existing = [registered(1), registered(2)]
    duplicate = {"uri": "s3://copy/of/v1", "digest": digest(1)}
    result = resolve(model(versions=[declared(5, duplicate)]), existing, NOW)
    assert len(result.problems) == 1
    assert "declared version 5 has the digest of registered version 1" in result.problems[0]
    assert numbers(result.versions) == [1, 2]


def test_identical_redeclaration_is_neither_a_problem_nor_a_duplicate() -> None:
    spec = model(versions=[declared(1, metrics={"accuracy": 0.9})])
    first = resolve(spec, [], EARLIER)
    second = resolve(spec, first.versions, NOW)
    assert second.problems == []
    assert numbers(second.versions) == [1]
    # The stored entry stays as it was registered (time included).
    assert second.versions == first.versions
    assert second.versions[0]["registeredAt"] == EARLIER


def test_declared_version_matching_a_run_registered_one_is_not_a_problem() -> None:
    existing = [registered(1)]
    result = resolve(model(versions=[declared(1, artifact(1))]), existing, NOW)
    assert result.problems == []
    assert result.versions == existing


def test_two_declared_versions_with_one_digest_keep_only_the_first() -> None:
    same = {"uri": "s3://a/model", "digest": digest(7)}
    again = {"uri": "s3://b/model", "digest": digest(7)}
    result = resolve(model(versions=[declared(1, same), declared(2, again)]), [], NOW)
    assert numbers(result.versions) == [1]
    assert len(result.problems) == 1
    assert "declared version 2" in result.problems[0]


def test_merged_versions_are_sorted_by_number() -> None:
    existing = [registered(4), registered(2)]
    result = resolve(model(versions=[declared(3), declared(1)]), existing, NOW)
    assert result.problems == []
    assert numbers(result.versions) == [1, 2, 3, 4]


def test_resolve_does_not_modify_its_input_versions() -> None:
    existing = [registered(2, {"accuracy": 0.5}), registered(1, {"accuracy": 0.7})]
    before = copy.deepcopy(existing)
    spec = model(
        versions=[declared(3, metrics={"accuracy": 0.9})],
        promotion={"alias": "candidate", "metric": "accuracy"},
    )
    result = resolve(spec, existing, NOW)
    assert existing == before
    for version in before:
        assert version in result.versions


# --- promotion ------------------------------------------------------------------------------


def promoting(direction: str = "max", **spec: Any) -> Model:
    return model(promotion={"alias": "candidate", "metric": "loss", "direction": direction}, **spec)


def test_promotion_picks_the_highest_for_max() -> None:
    versions = [
        registered(1, {"loss": 0.3}),
        registered(2, {"loss": 0.7}),
        registered(3, {"loss": 0.5}),
    ]
    assert resolve(promoting("max"), versions, NOW).aliases == {"candidate": 2}


def test_promotion_picks_the_lowest_for_min() -> None:
    versions = [
        registered(1, {"loss": 0.3}),
        registered(2, {"loss": 0.7}),
        registered(3, {"loss": 0.5}),
    ]
    assert resolve(promoting("min"), versions, NOW).aliases == {"candidate": 1}


@pytest.mark.parametrize("direction", ["max", "min"])
def test_promotion_ties_go_to_the_newer_version(direction: str) -> None:
    versions = [
        registered(1, {"loss": 0.5}),
        registered(2, {"loss": 0.5}),
        registered(3, {"loss": 0.5}),
    ]
    assert resolve(promoting(direction), versions, NOW).aliases == {"candidate": 3}


def test_promotion_tie_goes_to_the_newer_number_not_the_later_list_position() -> None:
    versions = [registered(3, {"loss": 0.5}), registered(1, {"loss": 0.5})]
    assert resolve(promoting("max"), versions, NOW).aliases == {"candidate": 3}


def test_promotion_ignores_versions_without_the_metric() -> None:
    versions = [registered(1, {"loss": 0.2}), registered(2, {"accuracy": 0.99}), registered(3)]
    assert resolve(promoting("max"), versions, NOW).aliases == {"candidate": 1}


def test_promotion_without_any_scored_version_sets_no_alias() -> None:
    versions = [registered(1, {"accuracy": 0.9})]
    assert resolve(promoting("max"), versions, NOW).aliases == {}
    assert resolve(promoting("max"), [], NOW).aliases == {}


def test_promotion_considers_declared_versions() -> None:
    versions = [registered(1, {"loss": 0.4})]
    spec = promoting("min", versions=[declared(2, metrics={"loss": 0.1})])
    assert resolve(spec, versions, NOW).aliases == {"candidate": 2}


def test_no_promotion_no_aliases() -> None:
    assert resolve(model(), [registered(1, {"loss": 0.1})], NOW).aliases == {}


# --- declared aliases -----------------------------------------------------------------------


def test_spec_alias_overrides_promotion() -> None:
    versions = [registered(1, {"loss": 0.9}), registered(2, {"loss": 0.1})]
    spec = promoting("max", aliases={"candidate": 2, "production": 1})
    result = resolve(spec, versions, NOW)
    assert result.problems == []
    assert result.aliases == {"candidate": 2, "production": 1}


def test_alias_to_an_unknown_version_is_a_problem_and_not_set() -> None:
    versions = [registered(1, {"loss": 0.9})]
    spec = promoting("max", aliases={"production": 7, "stable": 1})
    result = resolve(spec, versions, NOW)
    assert result.aliases == {"candidate": 1, "stable": 1}
    assert len(result.problems) == 1
    assert "'production'" in result.problems[0]
    assert "version 7" in result.problems[0]


def test_alias_to_a_declared_version_resolves_in_the_same_pass() -> None:
    result = resolve(model(versions=[declared(1)], aliases={"production": 1}), [], NOW)
    assert result.problems == []
    assert result.aliases == {"production": 1}


def test_alias_to_a_refused_declared_version_is_a_problem() -> None:
    # Version 2 is refused (same digest as 1), so an alias naming it names nothing.
    dup = {"uri": "s3://x/y", "digest": digest(1)}
    result = resolve(
        model(versions=[declared(2, dup)], aliases={"production": 2}), [registered(1)], NOW
    )
    assert "production" not in result.aliases
    assert len(result.problems) == 2


# --- metric_of_alias ------------------------------------------------------------------------


def test_metric_of_alias() -> None:
    versions = [registered(1, {"accuracy": 0.8}), registered(2, {"accuracy": 1})]
    aliases = {"production": 1, "candidate": 2, "dangling": 9, "unscored": 1}
    assert metric_of_alias(versions, aliases, "production", "accuracy") == (1, 0.8)
    # An int metric comes back as a float.
    held = metric_of_alias(versions, aliases, "candidate", "accuracy")
    assert held == (2, 1.0)
    assert held is not None
    assert isinstance(held[1], float)
    assert metric_of_alias(versions, aliases, "unscored", "loss") == (1, None)
    assert metric_of_alias(versions, aliases, "dangling", "accuracy") == (9, None)
    assert metric_of_alias(versions, aliases, "missing", "accuracy") is None
    assert metric_of_alias([], {}, "production", "accuracy") is None
