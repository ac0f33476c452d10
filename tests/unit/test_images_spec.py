"""hack/images.py builds the images by interpreting the Dockerfiles in images/, so the two cannot
drift apart: the Dockerfile rules (tests/unit/test_dockerfiles.py) read each Dockerfile with the
script's own parser, and these tests hold that the one thing it stands in for, the base image,
has the same distribution and Python as the tag the Dockerfiles pin, and that anything it
cannot build faithfully is refused rather than approximated. Nothing here builds an image."""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

from tests.unit import test_dockerfiles as rules

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("images_build", ROOT / "hack" / "images.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["images_build"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


images = _load()
# Beside it in hack/, importable once images.py has put its directory on sys.path.
base_module = importlib.import_module("images_base")
dockerfile_module = importlib.import_module("images_dockerfile")
ENTRYPOINTS = {
    "operator": (["modelwerk"], ["run"]),
    "model-server": (["python", "-m", "modelwerk.serving"], []),
    "trainer": (["python", "-m", "modelwerk.trainers.iris"], []),
}


@pytest.mark.parametrize("name", images.NAMES)
def test_built_configuration_is_the_dockerfiles(name: str) -> None:
    config, runs = images.interpret(images.image(name))
    assert config.user == "65532:65532"
    assert (config.entrypoint, config.cmd) == ENTRYPOINTS[name]
    assert config.workdir == "/tmp"
    # What makes a read-only root filesystem work: no bytecode written, HOME on the emptyDir.
    assert config.env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert config.env["HOME"] == "/tmp"
    assert config.env["PATH"].startswith("/usr/local/bin:")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert config.labels["org.opencontainers.image.version"] == version
    builder, final = runs
    assert any("pip wheel" in str(command) for command, _ in builder)
    assert any("--no-index" in str(command) for command, _ in final)


def test_extras_reach_the_pip_commands() -> None:
    for spec, extras in (("model-server", "ml"), ("model-server:EXTRAS=ml,seldon", "ml,seldon")):
        _, runs = images.interpret(images.image(spec))
        for stage in runs:
            # RUN is expanded by the shell from the build args in its environment.
            assert [env["EXTRAS"] for _, env in stage] == [extras] * len(stage)
    _, runs = images.interpret(images.image("trainer"))
    assert '".[ml,data]"' in runs[0][0][0]


def test_base_stand_in_has_the_pinned_distribution_and_python() -> None:
    (reference,) = {rules.parse(rules._text(n)).args["PYTHON_IMAGE"] for n in images.NAMES}
    assert images.base_of(reference) == ("bookworm", "3.12")
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.12"
    python = base_module.find_python("3.12")
    assert python.version.startswith("3.12.")
    # The interpreter copied in is the one whose minor version the tag names.
    assert f"python{python.version.rsplit('.', 1)[0]}" in python.executable.name


def test_base_libraries_come_from_debian_packages() -> None:
    python = base_module.find_python("3.12")
    files = base_module.python_files(python)
    rels = {rel for _, rel in files}
    assert "bin/python3.12" in rels
    assert "lib/python3.12/os.py" in rels
    assert not [r for r in rels if "/test/" in r or r.endswith(".opt-1.pyc") or "_tkinter" in r]
    assert not [r for r in rels if "site-packages" in r], "packages come from the Dockerfile's pip"
    packages = base_module.library_packages(python, files)
    assert {"libssl3", "libffi8", "zlib1g"} <= set(packages)
    assert not [p for p in packages if p.startswith(("libtk", "libx11"))]


def test_unsupported_instructions_and_bases_are_refused(tmp_path: Path) -> None:
    dockerfile = tmp_path / "x.Dockerfile"
    digest = "@sha256:" + "0" * 64
    for text, message in (
        (f"FROM python:3.12-slim-bookworm{digest}\nHEALTHCHECK CMD true\n", "HEALTHCHECK"),
        (f"FROM python:3.12-slim-bookworm{digest}\nADD https://x/y /y\n", "ADD"),
        (
            f"FROM python:3.12-slim-bookworm{digest}\nRUN --mount=type=cache,target=/c true\n",
            "--mount",
        ),
        (f"FROM python:3.12-slim-bookworm{digest}\nCMD python app.py\n", "exec (JSON) form"),
        (f"FROM python:3.12-slim{digest}\nUSER 1\n", "python:X.Y-slim-<suite>"),
        (f"FROM debian:bookworm{digest}\nUSER 1\n", "python:X.Y-slim-<suite>"),
    ):
        dockerfile.write_text(text)
        img = images.Image("x", "x", dockerfile, {})
        with pytest.raises(images.BuildError, match=re.escape(message)):
            images.interpret(img)


def test_variants_and_unknown_build_args() -> None:
    assert images.image("model-server:EXTRAS=ml,seldon").id == "model-server-ml-seldon"
    assert images.image("model-server").id == "model-server"
    with pytest.raises(images.BuildError, match="no ARG EXTRAS"):
        images.image("trainer:EXTRAS=ml,s3")
    with pytest.raises(images.BuildError, match="unknown image"):
        images.image("scheduler")


def test_context_is_what_the_dockerignore_admits() -> None:
    files = dockerfile_module.context_files(ROOT / "images" / "trainer.Dockerfile")
    assert {"pyproject.toml", "README.md", "operator/modelwerk/__init__.py"} <= set(files)
    assert all(f in {"pyproject.toml", "README.md"} or f.startswith("operator/") for f in files)
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc")]


def test_cache_key_follows_the_inputs(tmp_path: Path) -> None:
    base = images.image("model-server")
    variant = images.image("model-server:EXTRAS=ml,seldon")
    assert images.key(base, "b1") == images.key(base, "b1")
    assert len({images.key(base, "b1"), images.key(base, "b2"), images.key(variant, "b1")}) == 3
    changed = tmp_path / "model-server.Dockerfile"
    changed.write_text(base.dockerfile.read_text() + "LABEL extra=1\n")
    (tmp_path / "model-server.Dockerfile.dockerignore").write_text(
        (ROOT / "images" / "model-server.Dockerfile.dockerignore").read_text()
    )
    assert images.key(images.Image("model-server", "model-server", changed, {}), "b1") != (
        images.key(base, "b1")
    )
