# The model server the operator runs for a modelwerk Deployment (its --serving-image):
# `python -m modelwerk.serving` on :8000 with the [ml] extra (scikit-learn, joblib, numpy).
# Build from the repository root:
#
#   docker build -f images/model-server.Dockerfile -t ghcr.io/modelwerk/model-server:0.1.0 .
#
# The Seldon Core variant adds the [seldon] extra (Seldon's microservice wrapper, BSL 1.1: opt
# in explicitly). It serves both runtimes; under Seldon the wrapper listens on 9000 (REST) and
# 6000 (metrics), as the generated SeldonDeployment declares:
#
#   docker build -f images/model-server.Dockerfile --build-arg EXTRAS=ml,seldon \
#       -t ghcr.io/modelwerk/model-server:0.1.0-seldon .
#
# The base is pinned by digest: the multi-platform index of python:3.12-slim-bookworm (Debian 12). To move
# to a newer one, resolve the tag and replace the digest in all three Dockerfiles in images/:
#
#   crane digest python:3.12-slim-bookworm
#   docker buildx imagetools inspect python:3.12-slim-bookworm    # the "Digest:" line
#
# Build stage: a wheel of the project and of every dependency. Runtime stage: installs those
# wheels only (--no-index: no network, no compiler) and runs as an unprivileged numeric user.
# Artifacts are downloaded to /tmp, the pod's writable emptyDir (the root filesystem is
# read-only in the pods the operator generates).
ARG PYTHON_IMAGE=python:3.12-slim-bookworm@sha256:782412e85d0f0984994c290652577d4018aff08145c85b262bb63dc0c7522254

FROM ${PYTHON_IMAGE} AS builder
ARG EXTRAS=ml
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN python -m pip wheel --wheel-dir /wheels ".[${EXTRAS}]"

FROM ${PYTHON_IMAGE}
ARG EXTRAS=ml
ARG MODELWERK_VERSION=0.1.0
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m pip install --no-index --find-links=/wheels \
        "modelwerk[${EXTRAS}]==${MODELWERK_VERSION}"
LABEL org.opencontainers.image.title="Modelwerk model server" \
      org.opencontainers.image.description="Serves a registered model version; verifies the artifact digest before serving" \
      org.opencontainers.image.version="${MODELWERK_VERSION}"
WORKDIR /tmp
USER 65532:65532
EXPOSE 8000
ENTRYPOINT ["python", "-m", "modelwerk.serving"]
