from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelwerk.runtime import Runtime
from modelwerk.store import ObjectKey, key_of


def observe(rt: Runtime, kind: str, event: Mapping[str, Any], body: Mapping[str, Any]) -> ObjectKey:
    """Updates the cache of `kind` from a watch event and returns the object's key."""
    key = key_of(body)
    if event.get("type") == "DELETED":
        rt.store(kind).remove(key)
    else:
        rt.store(kind).upsert(dict(body))
    return key
