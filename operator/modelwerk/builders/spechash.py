"""The spec hash every applied child carries: `modelwerk.io/spec-hash`, the sha256 of the
child's own canonical JSON (without that annotation). A reconciler skips the write when the
observed child carries the hash of what it would apply (reconcilers/common.apply_children)."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Final

from modelwerk import constants
from modelwerk.builders.common import Manifest

ANNOTATION_SPEC_HASH: Final = constants.ANNOTATION_SPEC_HASH


def _without_spec_hash(manifest: Mapping[str, Any]) -> Manifest:
    stripped = copy.deepcopy(dict(manifest))
    metadata = stripped.get("metadata")
    if isinstance(metadata, dict):
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict):
            annotations.pop(ANNOTATION_SPEC_HASH, None)
            if not annotations:
                del metadata["annotations"]
    return stripped


def spec_hash(manifest: Mapping[str, Any]) -> str:
    """sha256 of the manifest's canonical JSON (sorted keys, no whitespace), leaving out the
    spec-hash annotation itself (and `annotations` when that was its only entry)."""
    canonical = json.dumps(
        _without_spec_hash(manifest),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def with_spec_hash(manifest: Mapping[str, Any]) -> Manifest:
    """A copy of `manifest` annotated with its spec hash; idempotent."""
    result = _without_spec_hash(manifest)
    metadata = result.setdefault("metadata", {})
    metadata.setdefault("annotations", {})[ANNOTATION_SPEC_HASH] = spec_hash(result)
    return result


def observed_spec_hash(obj: Mapping[str, Any] | None) -> str | None:
    """The spec hash an existing child carries (None for none, or no child)."""
    if not obj:
        return None
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(ANNOTATION_SPEC_HASH)
    return str(value) if value is not None else None
