"""How pods and traffic split between a stable and a canary version (native runtime: the
Service sends each connection to one of the ready pods of both versions)."""

from __future__ import annotations

from modelwerk.api.deployment import Autoscaling
from modelwerk.builders.modelserver import Track


def split_replicas(total: int, canary_percent: int) -> tuple[int, int]:
    """(stable, canary) pods for `total` pods of which `canary_percent` should serve the canary.

    The Service sends each connection to one of the ready pods of both versions, so the canary's
    share of traffic is canary / (stable + canary) ready pods, not `canary_percent` itself:

    - the resolution is one pod: canary = total * p / 100 rounded to the nearest pod, a tie
      going to the stable side, so the share is off by at most 50 / total percentage points
      (10 pods: 10 % -> 1 pod; 15 % -> 1 pod = 10 %; 16 % -> 2 pods = 20 %);
    - 0 < p < 100 keeps at least one pod on each side, which can move the share further
      (10 pods, 1 % -> 1 pod = 10 %; 10 pods, 99 % -> 9 pods = 90 %);
    - total == 1 and 0 < p < 100 gives (1, 1): the only case that exceeds `total`, because a
      single pod could serve only one of the two versions; the canary then gets 50 %;
    - it holds for ready pods only: during a rollout or with a failing canary the share drifts
      with readiness, and with keep-alive clients it is per connection rather than per request.

    p == 0 -> (total, 0); p == 100 -> (0, total); total == 0 -> (0, 0).
    """
    if total < 0:
        raise ValueError(f"replicas must not be negative, got {total}")
    if not 0 <= canary_percent <= 100:
        raise ValueError(f"canary percent must be within 0..100, got {canary_percent}")
    if total == 0 or canary_percent == 0:
        return total, 0
    if canary_percent == 100:
        return 0, total
    if total == 1:
        return 1, 1
    # Nearest, ties to the stable side (Python's round() would tie to even).
    canary = (total * canary_percent + 49) // 100
    canary = min(max(canary, 1), total - 1)
    return total - canary, canary


def canary_share_percent(stable: int, canary: int) -> float:
    """The canary's actual share of traffic, in percent, for these ready pods."""
    pods = stable + canary
    return 100.0 * canary / pods if pods else 0.0


def autoscaling_bounds(
    autoscaling: Autoscaling, track: Track, canary_percent: int = 0
) -> tuple[int, int]:
    """(minReplicas, maxReplicas) of one version's HPA: both bounds split like `split_replicas`
    so that the pod ratio, and with it the traffic, approaches the canary share as load grows.
    Each bound is at least 1 (an HPA cannot scale to zero), so at minimum scale the split is
    coarser: with minReplicas 1 stable and canary get one pod each, i.e. 50 % each."""
    index = 1 if track == "canary" else 0
    low = split_replicas(autoscaling.min_replicas, canary_percent)[index]
    high = split_replicas(autoscaling.max_replicas, canary_percent)[index]
    low = max(low, 1)
    return low, max(high, low)
