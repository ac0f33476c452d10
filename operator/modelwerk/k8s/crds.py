"""Whether a CRD is there to use: the check behind Api.crd_installed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def crd_serving(crd: Mapping[str, Any]) -> bool:
    """Whether new objects of a CRD can be created: it is Established and not being deleted. A
    terminating CRD still answers lists, but the apiserver refuses every create while it deletes
    the instances, so treating it as installed would only fail (and retry) each apply."""
    if crd.get("metadata", {}).get("deletionTimestamp"):
        return False
    conditions = crd.get("status", {}).get("conditions", [])
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)
