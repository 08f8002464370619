"""Build profiles (gpu, cpu, offline) and the recipe files in ``dockerfiles/`` they use.

Every recipe has the same layer order, from what changes least to what changes most::

    base -> system packages -> Python dependencies (/opt/venv) -> opskit training runtime
         -> WORKDIR /app -> COPY ./src -> COPY ./test -> ENTRYPOINT (python -m opskit.train)

The Python dependencies come from a separate *deps image* (``dockerfiles/deps.Dockerfile``,
made from a wheelhouse, tagged by a hash of the requirements) through
``COPY --from=deps /opt/venv /opt/venv``: the recipe's own context is just the project's code.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from opskit.errors import UsageError

# Where opskit puts its own files inside a build context (never taken from the project).
CONTEXT_DIR = ".opskit-build"
RUNTIME_DIR = f"{CONTEXT_DIR}/runtime"
DOCKERFILE = f"{CONTEXT_DIR}/Dockerfile"
# Parts of the opskit package that run inside the image (torch + stdlib only).
RUNTIME_PARTS = ("__init__.py", "train", "models")


@dataclass(frozen=True)
class Profile:
    name: str
    recipe: str  # file name under dockerfiles/
    base: str  # default base image; {ARG} fields come from build_args
    python: str  # the interpreter in the base that makes /opt/venv
    python_version: str  # what the wheelhouse is downloaded for
    description: str
    venv_flags: str = ""
    provided: tuple[str, ...] = ()  # requirements the base image already satisfies
    pullable: bool = True  # may the base come from a registry
    build_args: dict[str, str] = field(default_factory=dict)

    def base_image(self, build_args: dict[str, str] | None = None) -> str:
        args = {**self.build_args, **(build_args or {})}
        return self.base.format(**args)


PROFILES: dict[str, Profile] = {
    "gpu": Profile(
        name="gpu",
        recipe="gpu.Dockerfile",
        base="pytorch/pytorch:{TORCH_VERSION}-cuda{CUDA_VERSION}-cudnn{CUDNN_VERSION}-runtime",
        python="python",
        python_version="3.11",
        description="CUDA + cuDNN runtime with PyTorch (pytorch/pytorch), for GPU hosts",
        venv_flags="--system-site-packages",
        provided=("torch",),
        build_args={"TORCH_VERSION": "2.5.1", "CUDA_VERSION": "12.4", "CUDNN_VERSION": "9"},
    ),
    "cpu": Profile(
        name="cpu",
        recipe="cpu.Dockerfile",
        base="python:3.11-slim-bookworm",
        python="python3",
        python_version="3.11",
        description="python:3.11-slim with a CPU build of PyTorch, for CPU hosts and CI",
    ),
    "offline": Profile(
        name="offline",
        recipe="offline.Dockerfile",
        base="opskit-base:bookworm",
        python="python3",
        python_version="3.11",
        description="the image of 'opskit base bootstrap', for machines that can pull nothing",
        pullable=False,
    ),
}
DEPS_RECIPE = "deps.Dockerfile"


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise UsageError(
            f"unknown profile {name!r}", f"use one of: {', '.join(PROFILES)}"
        ) from None


def dockerfiles_dir() -> Path:
    """``$OPSKIT_DOCKERFILES``, else ``dockerfiles/`` beside the package (or inside it)."""
    from opskit import settings

    if settings.get("dockerfiles"):
        return Path(settings.get("dockerfiles"))
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parent / "dockerfiles", package / "dockerfiles"):
        if (candidate / DEPS_RECIPE).is_file():
            return candidate
    raise UsageError(
        "cannot find opskit's dockerfiles/ folder",
        "set OPSKIT_DOCKERFILES to the folder that holds offline.Dockerfile and deps.Dockerfile",
    )


def read_recipe(name_or_path: str) -> tuple[str, str]:
    """(path, text) of a recipe: a file under dockerfiles/ or a path given by the user."""
    path = name_or_path if os.sep in name_or_path or os.path.isfile(name_or_path) else str(
        dockerfiles_dir() / name_or_path
    )
    if not os.path.isfile(path):
        raise UsageError(f"recipe {path} does not exist")
    with open(path, encoding="utf-8") as fh:
        return path, fh.read()


def recipe_arg_defaults(text: str) -> dict[str, str]:
    """``ARG NAME=value`` defaults of a recipe (to check they match the profile's)."""
    from opskit.images.recipefile import parse

    out = {}
    for ins in parse(text):
        if ins.cmd == "ARG":
            for item in ins.value:
                name, eq, value = item.partition("=")
                if eq:
                    out[name] = value.strip('"')
    return out


def _instructions(text: str) -> list[str]:
    """Logical lines of a Dockerfile as Docker's parser reads them (continuations joined)."""
    from opskit.images.recipefile import parse

    return [ins.original for ins in parse(text)]


def copy_sources(text: str) -> list[str]:
    """Context paths that COPY/ADD instructions of a recipe read (``--from`` copies left out)."""
    from opskit.images.recipefile import copy_sources as sources
    from opskit.images.recipefile import parse

    return sources(parse(text), CONTEXT_DIR)


def missing_sources(text: str, arcnames: set[str]) -> list[str]:
    """The recipe's COPY sources that the context does not hold (globs: no match)."""
    from opskit.images.recipefile import source_present

    return [s for s in copy_sources(text) if not source_present(s, arcnames)]


def check_recipe(text: str, name: str) -> None:
    """Refuse, up front, a recipe Docker cannot parse or that needs BuildKit."""
    from opskit.images.recipefile import check_classic_builder, has_buildx, parse

    instructions = parse(text, name)
    check_classic_builder(instructions, name, has_buildx)


def layer_role(instruction: str) -> str:
    """What a recipe step is, for the layer table: base, system, deps, runtime, code, metadata."""
    word = instruction.split(maxsplit=1)[0].upper() if instruction.strip() else ""
    if word == "FROM":
        return "base"
    if word == "RUN":
        return "system"
    if word in ("COPY", "ADD"):
        if "--from=deps" in instruction:
            return "deps"
        if RUNTIME_DIR in instruction:
            return "runtime"
        return "code"
    return "metadata"


def torch_cuda_from_version(version: str | None) -> str:
    """CUDA version a torch wheel was built for: ``2.13.0+cpu`` -> none, ``+cu124`` -> 12.4."""
    if not version:
        return "unknown"
    local = version.partition("+")[2]
    if local == "cpu":
        return "none"
    m = re.fullmatch(r"cu(\d+)(\d)", local)
    return f"{m.group(1)}.{m.group(2)}" if m else "unknown"
