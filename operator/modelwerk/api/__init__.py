"""The three kinds of modelwerk.io/v1alpha1 as pydantic models; crdgen turns them into CRDs."""

from modelwerk.api.common import (
    ArtifactRef,
    Baseline,
    CodeRef,
    Condition,
    DatasetRef,
    Direction,
    FeatureStats,
    Lineage,
    ObjectMeta,
    ResourceRequirements,
    SecretRef,
)
from modelwerk.api.deployment import (
    Deployment,
    DeploymentPhase,
    DeploymentSpec,
    DeploymentStatus,
    ServingRuntime,
)
from modelwerk.api.kindinfo import KindInfo
from modelwerk.api.model import Framework, Model, ModelPhase, ModelSpec, ModelStatus, ModelVersion
from modelwerk.api.trainingrun import (
    TrainingRun,
    TrainingRunPhase,
    TrainingRunSpec,
    TrainingRunStatus,
)

KindClass = type[Model] | type[TrainingRun] | type[Deployment]

KINDS: tuple[KindClass, ...] = (Model, TrainingRun, Deployment)
"""Every top-level kind, in the order crdgen writes them."""

__all__ = [
    "KINDS",
    "ArtifactRef",
    "Baseline",
    "CodeRef",
    "Condition",
    "DatasetRef",
    "Deployment",
    "DeploymentPhase",
    "DeploymentSpec",
    "DeploymentStatus",
    "Direction",
    "FeatureStats",
    "Framework",
    "KindClass",
    "KindInfo",
    "Lineage",
    "Model",
    "ModelPhase",
    "ModelSpec",
    "ModelStatus",
    "ModelVersion",
    "ObjectMeta",
    "ResourceRequirements",
    "SecretRef",
    "ServingRuntime",
    "TrainingRun",
    "TrainingRunPhase",
    "TrainingRunSpec",
    "TrainingRunStatus",
]
