"""naming.child_name: stable, DNS-1123, at most 63 characters, no collisions on truncation."""

from __future__ import annotations

import re

import pytest

from modelwerk.naming import MAX_NAME, child_name

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


def test_short_names_are_joined_unchanged() -> None:
    assert child_name("iris", "canary") == "iris-canary"
    assert child_name("iris") == "iris"


def test_empty_parts_are_skipped() -> None:
    assert child_name("iris", "", "predictor") == "iris-predictor"
    assert child_name("", "iris") == "iris"


def test_exactly_the_limit_is_kept() -> None:
    name = "a" * 30 + "-" + "b" * 32
    assert len(name) == MAX_NAME == 63
    assert child_name("a" * 30, "b" * 32) == name


@pytest.mark.parametrize("length", [64, 65, 100, 253])
def test_long_names_are_truncated_with_a_hash(length: int) -> None:
    full = "m" * (length - 10) + "-predictor"
    result = child_name(full)
    assert len(result) <= MAX_NAME
    assert re.fullmatch(r".+-[0-9a-f]{8}", result)
    assert result.startswith("m" * 40)
    assert DNS1123_LABEL.fullmatch(result)


def test_stable() -> None:
    parts = ("a-very-long-model-name-that-goes-on-and-on", "production", "canary-predictor")
    assert child_name(*parts) == child_name(*parts)
    assert len(child_name(*parts)) <= MAX_NAME


def test_long_names_with_the_same_prefix_do_not_collide() -> None:
    prefix = "x" * 70
    first = child_name(prefix, "stable")
    second = child_name(prefix, "canary")
    assert first != second
    # The visible part is the same: only the hash tells them apart.
    assert first[:-9] == second[:-9]
    assert len(first) <= MAX_NAME
    assert len(second) <= MAX_NAME


def test_many_long_names_are_distinct() -> None:
    results = {child_name("model-" + "y" * 60, f"v{i}") for i in range(500)}
    assert len(results) == 500
    assert all(len(r) <= MAX_NAME for r in results)


def test_truncation_never_leaves_a_double_or_trailing_dash() -> None:
    # The cut falls right after a '-': it must not produce '--<hash>'.
    for cut in range(40, 60):
        full = "a" * cut + "-" + "b" * 40
        result = child_name(full)
        assert "--" not in result
        assert DNS1123_LABEL.fullmatch(result), result


def test_custom_max_length() -> None:
    result = child_name("abcdefghij" * 5, max_length=20)
    assert len(result) <= 20
    assert re.fullmatch(r"[a-z]+-[0-9a-f]{8}", result)
    assert child_name("short", max_length=20) == "short"
