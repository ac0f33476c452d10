"""JSON for the model server: orjson (in the `ml` extra) when it is installed, else the standard
library. orjson decodes a 100-row request about 4x faster; both refuse what is not JSON (orjson
also NaN and Infinity, which json takes and the validation then refuses)."""

from __future__ import annotations

import json
from typing import Any

try:
    import orjson
except ImportError:  # pragma: no cover - the ml extra installs it
    orjson = None  # type: ignore[assignment]

DecodeError = json.JSONDecodeError
"""What `loads` raises for a body that is not JSON (orjson's error is a subclass)."""


def loads(body: bytes) -> Any:
    if orjson is not None:
        return orjson.loads(body)
    return json.loads(body)


def dumps(obj: Any) -> bytes:
    if orjson is not None:
        return orjson.dumps(obj)
    return json.dumps(obj).encode()
