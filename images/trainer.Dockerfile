# The reference trainer: `python -m modelwerk.trainers.iris` with the [ml] extra (and [data]:
# the validate init container reads Parquet with pyarrow), reporting
# through modelwerk.sdk. Also a base for your own training images (FROM it, add your code).
# Build from the repository root:
#
#   docker build -f images/trainer.Dockerfile -t ghcr.io/modelwerk/iris-trainer:0.1.0 .
#
# Pin what a TrainingRun runs by digest (spec.image: ...@sha256:...) for a reproducible run.
#
# The base is pinned by digest: the multi-platform index of python:3.12-slim-bookworm (Debian 12). To move
# to a newer one, resolve the tag and replace the digest in all three Dockerfiles in images/:
#
#   crane digest python:3.12-slim-bookworm
#   docker buildx imagetools inspect python:3.12-slim-bookworm    # the "Digest:" line
#
# Build stage: a wheel of the project and of every dependency. Runtime stage: installs those
# wheels only (--no-index: no network, no compiler) and runs as an unprivileged numeric user.
# The Job the operator generates mounts /tmp and the output directory as emptyDirs.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm@sha256:782412e85d0f0984994c290652577d4018aff08145c85b262bb63dc0c7522254

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN python -m pip wheel --wheel-dir /wheels ".[ml,data]"

FROM ${PYTHON_IMAGE}
ARG MODELWERK_VERSION=0.1.0
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    python -m pip install --no-index --find-links=/wheels "modelwerk[ml,data]==${MODELWERK_VERSION}"
LABEL org.opencontainers.image.title="Modelwerk iris trainer" \
      org.opencontainers.image.description="Reference training image reporting through modelwerk.sdk" \
      org.opencontainers.image.version="${MODELWERK_VERSION}"
WORKDIR /tmp
USER 65532:65532
ENTRYPOINT ["python", "-m", "modelwerk.trainers.iris"]
