"""The base image's stand-in for hack/images.py: a Debian rootfs from mmdebstrap with this
machine's CPython copied into /usr/local, packed by umoci, keyed by all it is made of."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from images_dockerfile import BuildError, base_of, digest, run, say, sh

# Bump when what is built changes without any input changing (the recipe, not the wording).
RECIPE = 2
CACHE = Path(os.environ.get("MODELWERK_CACHE") or Path.home() / ".cache" / "modelwerk") / "images"
MIRROR = os.environ.get("MODELWERK_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What the official python:*-slim images hold besides Python's own libraries.
BASE_PACKAGES = ("ca-certificates", "netbase", "tzdata", "usr-is-merged")
# apt picks usrmerge (and with it perl) for init-system-helpers; usr-is-merged suffices.
PURGE = (
    "usrmerge",
    "libfile-find-rule-perl",
    "libnumber-compare-perl",
    "libtext-glob-perl",
    "perl",
    "libperl5.36",
    "perl-modules-5.36",
)
# Left out of the copied CPython, as the official image leaves them out (or never needs them).
SKIP_LIB = {"test", "idlelib", "tkinter", "turtledemo", "site-packages", "__phello__"}
SKIP_MODULE = re.compile(r"^(_tkinter|_test|_ctypes_test|_xx|xx)")
DPKG_EXCLUDES = ("/usr/share/man/*", "/usr/share/doc/*", "/usr/share/info/*", "/usr/share/locale/*")
# Builds kept per image (and bases per suite and Python), the last used first.
KEEP = 4


# --- the base: Debian <suite> with this machine's CPython X.Y ------------------------------------


@dataclass
class Python:
    executable: Path
    prefix: Path
    version: str


def find_python(minor: str) -> Python:
    """The CPython X.Y the venv is made from (hack/bootstrap.sh looks in the same places)."""
    candidates = [os.environ.get("MODELWERK_PYTHON", "")]
    for root in (os.environ.get("PYENV_ROOT", ""), str(Path.home() / ".pyenv")):
        found = sorted(
            Path(root or "/nonexistent").glob(f"versions/{minor}.*/bin/python{minor}"),
            key=lambda p: [int(n) if n.isdigit() else -1 for n in p.parts[-3].split(".")],
        )
        candidates += [str(p) for p in found[-1:]]
    candidates.append(shutil.which(f"python{minor}") or "")
    probe = (
        "import sys, sysconfig; print(sys.base_prefix); "
        "print(sysconfig.get_python_version()); print(sys.version.split()[0])"
    )
    for candidate in filter(None, candidates):
        proc = subprocess.run([candidate, "-c", probe], capture_output=True, text=True, check=False)
        lines = proc.stdout.split()
        if proc.returncode == 0 and lines[1] == minor:
            return Python(Path(candidate), Path(lines[0]), lines[2])
    raise BuildError(
        f"no CPython {minor} found (pyenv, python{minor} on PATH, or MODELWERK_PYTHON)"
    )


def python_files(python: Python) -> list[tuple[Path, str]]:
    """(source, path under /usr/local) of what is copied into the base."""
    minor = python.version.rsplit(".", 1)[0]
    lib = python.prefix / "lib" / f"python{minor}"
    files = [(python.prefix / "bin" / f"python{minor}", f"bin/python{minor}")]
    files += [(p, f"lib/{p.name}") for p in sorted((python.prefix / "lib").glob("libpython*.so*"))]
    for top, dirs, names in os.walk(lib):
        rel = Path(top).relative_to(lib)
        dirs[:] = sorted(d for d in dirs if not (rel == Path(".") and d in SKIP_LIB))
        for name in sorted(names):
            # Optimised bytecode (-O, -OO) is never used by the entrypoints; plain .pyc is kept
            # because a read-only root filesystem cannot cache what it would recompile.
            if name.endswith((".a", ".opt-1.pyc", ".opt-2.pyc")) or (
                rel.name == "lib-dynload" and SKIP_MODULE.match(name)
            ):
                continue
            files.append((Path(top) / name, f"lib/python{minor}/{rel / name}"))
    return files


def library_packages(python: Python, files: list[tuple[Path, str]]) -> list[str]:
    """The Debian packages whose shared libraries the copied interpreter and modules link."""
    binaries = [
        str(src) for src, rel in files if rel.endswith(".so") or ".so." in rel or "/" not in rel[4:]
    ]
    libraries = set()
    for line in sh("ldd", *binaries, capture=True).splitlines():
        if "=>" in line and "/" in line.split("=>")[1]:
            library = line.split("=>")[1].split()[0]
            if not os.path.realpath(library).startswith(str(python.prefix)):  # libpython: copied
                libraries.add(library)
    # Under merged /usr dpkg knows a library by one of its names only.
    names = {
        lib: [lib, os.path.realpath(lib), "/usr" + lib, "/usr" + os.path.realpath(lib)]
        for lib in libraries
    }
    query = sorted({path for paths in names.values() for path in paths})
    proc = subprocess.run(["dpkg", "-S", *query], capture_output=True, text=True, check=False)
    owners = {}
    for line in proc.stdout.splitlines():
        package, _, path = line.partition(": ")
        owners[path.strip()] = package.split(",")[0].split(":")[0]
    packages = set()
    for library, paths in sorted(names.items()):
        found = [owners[p] for p in paths if p in owners]
        if not found:
            raise BuildError(f"{library}: no Debian package holds it (is this machine Debian?)")
        packages.add(found[0])
    return sorted(packages)


@dataclass
class Base:
    key: str
    suite: str
    python: Python
    dir: Path

    @property
    def layout(self) -> Path:
        return self.dir / "oci"

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "PYTHON_VERSION": self.python.version,
        }


@functools.cache
def base_plan(reference: str) -> tuple[Base, tuple[tuple[Path, str], ...], tuple[str, ...]]:
    """The stand-in's identity (the key over everything it is made from), files and packages."""
    suite, minor = base_of(reference)
    python = find_python(minor)
    files = python_files(python)
    packages = sorted({*BASE_PACKAGES, *library_packages(python, files)})
    key = digest(
        f"recipe={RECIPE}",
        suite,
        MIRROR,
        *packages,
        python.version,
        *(digest(src.read_bytes()) for src, rel in files if not rel.endswith((".py", ".pyc"))),
    )[:16]
    result = Base(key, suite, python, CACHE / f"base-{suite}-py{minor}-{key}")
    return result, tuple(files), tuple(packages)


def base(reference: str, create: bool = True) -> Base:
    """The local stand-in for `reference`, built unless cached (or only named: create=False)."""
    result, files, packages = base_plan(reference)
    suite, python = result.suite, result.python
    minor = python.version.rsplit(".", 1)[0]
    if (result.dir / "done").exists() or not create:
        if create:
            os.utime(result.dir)  # last used, for prune()
        return result
    say(f"base {reference} -> Debian {suite} + CPython {python.version} from {python.prefix}")
    shutil.rmtree(result.dir, ignore_errors=True)
    result.dir.mkdir(parents=True)
    rootfs = result.dir / "rootfs"
    excludes = [f"--dpkgopt=path-exclude={p}" for p in DPKG_EXCLUDES]
    sh(
        "mmdebstrap",
        "--quiet",
        "--variant=minbase",
        "--mode=root",
        "--format=directory",
        f"--include={','.join(packages)}",
        *excludes,
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",
        '--aptopt=Acquire::Languages "none"',
        suite,
        rootfs,
        MIRROR,
    )
    say(f"mmdebstrap {suite} done")
    local = rootfs / "usr" / "local"
    for src, rel in files:
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, local / rel, follow_symlinks=False)
    for link in ("python3", "python"):
        (local / "bin" / link).symlink_to(f"python{minor}")
    # The host's device nodes, DNS and name stay out; the runtime mounts its own there.
    for path in (rootfs / "dev").iterdir():
        subprocess.run(["rm", "-rf", str(path)], check=True)
    for name in ("resolv.conf", "hostname"):
        (rootfs / "etc" / name).write_text("")
    purge = f"dpkg --purge {' '.join(PURGE)} >/dev/null"
    run(
        rootfs,
        f"{purge} && ldconfig && python -m ensurepip --default-pip >/dev/null"
        " && rm -rf /root/.cache",
        result.env,
    )
    say("CPython copied, pip installed")
    sh("umoci", "init", "--layout", result.layout)
    sh("umoci", "new", "--image", f"{result.layout}:base")
    sh("umoci", "insert", "--no-history", "--image", f"{result.layout}:base", rootfs, "/")
    sh(
        "umoci",
        "config",
        "--no-history",
        "--image",
        f"{result.layout}:base",
        *(f"--config.env={k}={v}" for k, v in result.env.items()),
        "--config.cmd=python3",
    )
    shutil.rmtree(rootfs)  # stages unpack the layout; the tree is not needed twice
    (result.dir / "done").write_text(reference + "\n")
    prune(f"base-{suite}-py{minor}", result.dir)
    say(f"base ready: {result.dir}")
    return result


def prune(prefix: str, keep: Path) -> None:
    """Builds of the same image from other inputs, beyond the KEEP last used: other clones or
    branches on this machine share the cache, so their current builds are kept too."""
    pattern = re.compile(rf"{re.escape(prefix)}-[0-9a-f]{{16}}")
    others = [d for d in CACHE.iterdir() if d != keep and pattern.fullmatch(d.name)]
    others.sort(key=lambda d: d.stat().st_mtime, reverse=True)
    for old in others[KEEP - 1 :]:
        shutil.rmtree(old, ignore_errors=True)
