"""A watched CRD that is deleted while the operator runs must not stop the operator.

kopf (1.45) treats every error of a watch stream but 410 and 429 as fatal: when an optional CRD
(Gateway API, JobSet, Seldon) is deleted, the apiserver ends the watches of its resources, kopf
re-lists at once and gets 404 before its resource observer has noticed the deletion, and the
404 stops the whole operator ("Multidimensional multitasker has failed: 404"). With exact
namespace names the observer is off (settings.py), so every such deletion did it. CI saw it
after the Gateway API CRDs were removed under a running operator (test_gateway).

Here a 404 of a stream ends that stream like a disconnect, after a backoff that doubles per
consecutive 404 (capped), and kopf's own loop (`infinite_watch`) lists again: the observer
cancels the stream once the resource leaves discovery; with the observer off the stream keeps
listing slowly, and resumes by itself when the CRD is installed again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from kopf._cogs.clients import errors, watching

logger = logging.getLogger(__name__)

FIRST_BACKOFF = 1.0
MAX_BACKOFF = 60.0

_original = watching.continuous_watch
# Consecutive 404s per (resource, namespace): the backoff grows while the CRD stays away.
_misses: dict[tuple[str, str | None], int] = {}


def backoff(misses: int) -> float:
    """Seconds to wait after the `misses`-th consecutive 404 of one stream (1, 2, 4, ... 60)."""
    return float(min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** max(0, misses - 1)))


async def continuous_watch(**kwargs: Any) -> AsyncIterator[Any]:
    key = (str(kwargs.get("resource")), kwargs.get("namespace"))
    try:
        async for event in _original(**kwargs):
            _misses.pop(key, None)
            yield event
    except errors.APINotFoundError:
        misses = _misses[key] = _misses.get(key, 0) + 1
        delay = backoff(misses)
        where = f"in {key[1]!r}" if key[1] is not None else "cluster-wide"
        log = logger.warning if misses == 1 else logger.debug
        log(f"{key[0]} {where} is gone (404; its CRD deleted?): listing again in {delay:g} s")
        await asyncio.sleep(delay)


def install() -> None:
    """Idempotent: `infinite_watch` looks the name up in its module at every (re)connect."""
    watching.continuous_watch = continuous_watch
