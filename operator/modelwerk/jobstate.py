"""What a TrainingRun's Job, pods and status say, read as pure functions: the container that
trains, the pod that succeeded, the image digest actually run, why it failed, when the run
finished and when its TTL runs out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Final

from modelwerk.api.trainingrun import FINISHED_PHASES
from modelwerk.builders.job import CONTAINER_NAME
from modelwerk.status import get_condition, parse_time

# Container waiting reasons that mean the run cannot make progress by itself.
STUCK_REASONS: Final = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "CrashLoopBackOff",
        "RunContainerError",
    }
)


def time_of(value: str | None) -> dt.datetime | None:
    return parse_time(value) if value else None


def job_condition(job: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    """The Job's condition of that type, if it is True."""
    cond = get_condition((job.get("status") or {}).get("conditions") or [], type_)
    return cond if cond is not None and cond.get("status") == "True" else None


def job_finished(job: Mapping[str, Any]) -> bool:
    return job_condition(job, "Complete") is not None or job_condition(job, "Failed") is not None


def main_container(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER_NAME:
            return dict(status)
    return {}


def newest(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", default=None)


def succeeded_pod(pods: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return newest([p for p in pods if (p.get("status") or {}).get("phase") == "Succeeded"])


def image_id(pods: Sequence[Mapping[str, Any]]) -> str | None:
    for pod in sorted(
        pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True
    ):
        found = main_container(pod).get("imageID")
        if found:
            # Runtimes prefix the digest with a scheme (docker-pullable://); keep ref@digest.
            return str(found).split("://", 1)[-1]
    return None


def failure_detail(pods: Sequence[Mapping[str, Any]]) -> tuple[str | None, str]:
    """The last failed container's reason (OOMKilled, Error...) and a readable message."""
    pod = newest([p for p in pods if (p.get("status") or {}).get("phase") == "Failed"])
    if pod is None:
        return None, ""
    term = (main_container(pod).get("state") or {}).get("terminated") or {}
    reason = term.get("reason")
    code = term.get("exitCode")
    message = f"container exited with code {code}" + (f" ({reason})" if reason else "")
    if term.get("message"):
        message += f": {str(term['message'])[:512]}"
    return reason, message


def termination_message(pod: Mapping[str, Any] | None) -> str | None:
    if pod is None:
        return None
    message = ((main_container(pod).get("state") or {}).get("terminated") or {}).get("message")
    return None if message is None else str(message)


def finished(status: Mapping[str, Any]) -> bool:
    return status.get("phase") in FINISHED_PHASES


def concluded(status: Mapping[str, Any]) -> bool:
    """Finished, and its report read and judged (a verdict is taken once)."""
    evaluated = get_condition(status.get("conditions") or [], "Evaluated")
    return finished(status) and evaluated is not None


def recorded_image(status: Mapping[str, Any]) -> str | None:
    image = (status.get("reproducibility") or {}).get("image")
    return str(image) if image and "@" in str(image) else None


def seconds_since(value: str | None, at: dt.datetime) -> float | None:
    moment = time_of(value)
    if moment is None:
        return None
    return (at - moment).total_seconds()


def ttl_remaining(
    body: Mapping[str, Any], status: Mapping[str, Any], at: dt.datetime | None = None
) -> float | None:
    """Seconds until a finished run is deleted by its TTL (<= 0: now); None: never."""
    ttl = (body.get("spec") or {}).get("ttlSecondsAfterFinished")
    if ttl is None or not finished(status) or status.get("modelVersion"):
        # A run whose version is registered stays: it is that version's lineage.
        return None
    # Runs refused before their Job existed have no completionTime: their newest condition
    # marks when they ended.
    ended = time_of(status.get("completionTime")) or max(
        (t for c in status.get("conditions") or [] if (t := time_of(c.get("lastTransitionTime")))),
        default=None,
    )
    if ended is None:
        return None
    current = at or dt.datetime.now(dt.UTC)
    return (ended + dt.timedelta(seconds=int(ttl)) - current).total_seconds()
