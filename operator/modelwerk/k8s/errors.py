"""The API's refusals as exceptions (by HTTP status), and the Retry-After the work queue honours."""

from __future__ import annotations

import json


class ApiError(Exception):
    def __init__(
        self, status: int, reason: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        # The apiserver's Retry-After (429 from priority and fairness, 503 while starting): the
        # work queue waits at least this long before the next attempt.
        self.retry_after = retry_after


class NotFound(ApiError):
    pass


class Conflict(ApiError):
    """409: a resourceVersion precondition failed, or the object already exists."""


class Invalid(ApiError):
    """422 or 400: the apiserver refused the object (schema, CEL, admission)."""


class Forbidden(ApiError):
    pass


class NotLeader(ApiError):
    """A write refused before it was sent: this replica is not (or no longer surely) the
    leader. Retried with backoff like any failure of the world; a follower's queues never run."""

    def __init__(self) -> None:
        super().__init__(503, "NotLeader", "not the leader: writes are fenced off")


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (the apiserver sends whole seconds; an HTTP date or
    garbage is ignored), capped so a broken proxy cannot park a key for hours."""
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is None or not 0 <= seconds < float("inf"):
        return None
    return min(seconds, 600.0)


def error_from(status: int, text: str, after: float | None = None) -> ApiError:
    try:
        body = json.loads(text)
        reason, message = str(body.get("reason", "")), str(body.get("message", text))
    except ValueError:
        reason, message = "", text
    cls: type[ApiError] = {
        404: NotFound,
        409: Conflict,
        422: Invalid,
        400: Invalid,
        403: Forbidden,
    }.get(status, ApiError)
    return cls(status, reason, message, after)
