"""Names shared by the API, the builders and the reconcilers: one place to change them."""

from typing import Final

GROUP: Final = "modelwerk.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

MODEL_PLURAL: Final = "models"
TRAININGRUN_PLURAL: Final = "trainingruns"
DEPLOYMENT_PLURAL: Final = "deployments"

# Field manager for server-side apply and status patches: lets `kubectl get --show-managed-fields`
# tell our writes from the user's, and keeps Argo CD's diff on the user's fields only.
FIELD_MANAGER: Final = "modelwerk"

LABEL_PREFIX: Final = GROUP
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
MANAGED_BY: Final = "modelwerk"

LABEL_MODEL: Final = f"{LABEL_PREFIX}/model"
LABEL_TRAININGRUN: Final = f"{LABEL_PREFIX}/trainingrun"
LABEL_DEPLOYMENT: Final = f"{LABEL_PREFIX}/deployment"
LABEL_MODEL_VERSION: Final = f"{LABEL_PREFIX}/model-version"
LABEL_TRACK: Final = f"{LABEL_PREFIX}/track"  # stable | canary

ANNOTATION_RETRAIN_TRIGGER: Final = f"{LABEL_PREFIX}/retrain-trigger"
# A hash of what the operator last applied to a child: equal hash, no write.
ANNOTATION_SPEC_HASH: Final = f"{LABEL_PREFIX}/spec-hash"
# On a ServiceAccount, "true": TrainingRuns of its namespace may run as it (set by whoever may
# edit ServiceAccounts there; a run author alone cannot obtain another identity's token).
ANNOTATION_TRAININGRUNS_ALLOWED: Final = f"{LABEL_PREFIX}/trainingruns-allowed"

# The training container's termination message carries the run's report (metrics, artifact,
# baseline) back to the operator; Kubernetes caps it at 4096 bytes.
TERMINATION_MESSAGE_PATH: Final = "/dev/termination-log"
REPORT_MAX_BYTES: Final = 4096
