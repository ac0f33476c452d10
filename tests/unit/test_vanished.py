"""A 404 of a watch stream (its CRD deleted) ends that stream after a growing backoff instead of
escaping into kopf, where it would stop the operator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from kopf._cogs.clients import errors, watching

from modelwerk import vanished


@pytest.mark.parametrize(
    ("misses", "seconds"), [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (50, 60.0)]
)
def test_the_backoff_doubles_up_to_a_minute(misses: int, seconds: float) -> None:
    assert vanished.backoff(misses) == seconds


def _stream(*events: Any, then: Exception | None = None) -> Any:
    async def original(**_: Any) -> AsyncIterator[Any]:
        for event in events:
            yield event
        if then is not None:
            raise then

    return original


async def _drain(**kwargs: Any) -> list[Any]:
    return [event async for event in vanished.continuous_watch(**kwargs)]


async def test_a_404_ends_the_stream_after_backoffs_that_grow_and_reset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(vanished.asyncio, "sleep", sleep)
    monkeypatch.setattr(vanished, "_misses", {})
    gone = errors.APINotFoundError("404 page not found", status=404, headers={})
    key = {"resource": "httproutes", "namespace": "ns"}

    monkeypatch.setattr(vanished, "_original", _stream({"type": None}, then=gone))
    assert await _drain(**key) == [{"type": None}]  # what came before the 404 is delivered
    monkeypatch.setattr(vanished, "_original", _stream(then=gone))
    assert await _drain(**key) == []
    assert slept == [1.0, 2.0]
    # Another stream's misses are its own.
    assert await _drain(resource="httproutes", namespace="other") == []
    assert slept == [1.0, 2.0, 1.0]
    # Once the resource lists again, the next 404 starts from the first backoff.
    monkeypatch.setattr(vanished, "_original", _stream({"type": "ADDED"}))
    assert await _drain(**key) == [{"type": "ADDED"}]
    monkeypatch.setattr(vanished, "_original", _stream(then=gone))
    assert await _drain(**key) == []
    assert slept == [1.0, 2.0, 1.0, 1.0]


async def test_other_errors_still_reach_kopf(monkeypatch: pytest.MonkeyPatch) -> None:
    forbidden = errors.APIForbiddenError("forbidden", status=403, headers={})
    monkeypatch.setattr(vanished, "_original", _stream(then=forbidden))
    with pytest.raises(errors.APIForbiddenError):
        await _drain(resource="pods", namespace=None)


def test_install_replaces_kopfs_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watching, "continuous_watch", vanished._original)
    vanished.install()
    assert watching.continuous_watch is vanished.continuous_watch
