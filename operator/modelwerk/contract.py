"""The model server's contract, in one place: what the builders put in a serving pod, what the
server reads and exports, and what the rules and canary queries select on. Pure constants (no
imports beyond the standard library), so the operator, the model server and the tests share
them without pulling in each other's dependencies.

Also the one parser of `pvc://<claim>/<path>` URIs, which the training Job, the serving pods
and the model server mount and read the same way.
"""

from __future__ import annotations

from typing import Final, NamedTuple

# --- environment the builders set and the server reads (serving/config.py) ------------------
ENV_MODEL_URI: Final = "MODELWERK_MODEL_URI"
ENV_MODEL_DIGEST: Final = "MODELWERK_MODEL_DIGEST"
ENV_MODEL_NAME: Final = "MODELWERK_MODEL_NAME"
ENV_MODEL_VERSION: Final = "MODELWERK_MODEL_VERSION"
ENV_FEATURE_NAMES: Final = "MODELWERK_FEATURE_NAMES"
ENV_PVC_ROOT: Final = "MODELWERK_PVC_ROOT"
ENV_ARTIFACT_DIR: Final = "MODELWERK_ARTIFACT_DIR"
ENV_HOST: Final = "MODELWERK_HOST"
ENV_PORT: Final = "MODELWERK_PORT"

# --- mount roots --------------------------------------------------------------------------
# Where a pvc:// claim is mounted: pvc://claim/a/b is <PVC_ROOT>/claim/a/b in the pod.
PVC_ROOT: Final = "/mnt/pvc"
# The root filesystem is read-only; downloads and scratch files land here.
SCRATCH_DIR: Final = "/tmp"

# --- the native server's port and paths (serving/native.py) -------------------------------
PORT: Final = 8000
PORT_NAME: Final = "http"
READINESS_PATH: Final = "/readyz"
LIVENESS_PATH: Final = "/healthz"
METRICS_PATH: Final = "/metrics"

# --- Seldon's microservice wrapper (serving/seldon.py inside seldon-core-microservice) -----
SELDON_HTTP_PORT: Final = 9000
SELDON_METRICS_PORT: Final = 6000
SELDON_METRICS_PORT_NAME: Final = "metrics"
# Seldon serves its metrics, ours included, at $PREDICTIVE_UNIT_METRICS_ENDPOINT (it sets this).
SELDON_METRICS_PATH: Final = "/prometheus"

# --- the exported series (serving/metrics.py; rules and canary queries read them) ---------
# Family names, without the "_total" that counters get on exposition.
MODEL_INFO: Final = "modelwerk_model_info"
REQUESTS: Final = "modelwerk_requests"
REQUEST_DURATION: Final = "modelwerk_request_duration_seconds"
PREDICTIONS: Final = "modelwerk_predictions"
FEATURE_COUNT: Final = "modelwerk_feature_value_count"
FEATURE_POSITIVE_SUM: Final = "modelwerk_feature_value_positive_sum"
FEATURE_NEGATIVE_SUM: Final = "modelwerk_feature_value_negative_sum"
FEATURE_SQUARES: Final = "modelwerk_feature_value_squares_sum"

# The names as scraped, for whoever writes queries against them.
REQUESTS_TOTAL: Final = f"{REQUESTS}_total"
REQUEST_DURATION_BUCKET: Final = f"{REQUEST_DURATION}_bucket"
PREDICTIONS_TOTAL: Final = f"{PREDICTIONS}_total"
FEATURE_COUNT_TOTAL: Final = f"{FEATURE_COUNT}_total"
FEATURE_POSITIVE_SUM_TOTAL: Final = f"{FEATURE_POSITIVE_SUM}_total"
FEATURE_NEGATIVE_SUM_TOTAL: Final = f"{FEATURE_NEGATIVE_SUM}_total"
FEATURE_SQUARES_SUM_TOTAL: Final = f"{FEATURE_SQUARES}_total"

# Label `outcome` of the request counter.
SUCCESS: Final = "success"
CLIENT_ERROR: Final = "client_error"
SERVER_ERROR: Final = "server_error"


# Exit codes a server pod's status shows: 2 is a bad configuration, 3 an artifact that must not
# be served (missing, unreadable, or not the registered digest). The operator reads the latter.
EXIT_CONFIG: Final = 2
EXIT_ARTIFACT: Final = 3


# --- pvc:// -------------------------------------------------------------------------------
class PvcRef(NamedTuple):
    claim: str
    path: str
    """Inside the claim, without a leading slash, as written (not unquoted)."""


def parse_pvc(uri: str) -> PvcRef | None:
    """`pvc://claim/a/b` -> ("claim", "a/b"); None for any other scheme or no claim."""
    if not uri.startswith("pvc://"):
        return None
    claim, _, path = uri.removeprefix("pvc://").partition("/")
    return PvcRef(claim, path) if claim else None
