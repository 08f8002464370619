"""Build a layered training image for a project: fast to rebuild, lean, buildable offline.

The API (used by ``opskit build`` and by remote training)::

    from opskit.images.build import BuildRequest, build_image

    result = build_image(BuildRequest(profile="offline"), client=docker_client, on_event=cb)
    result.image_id, result.tag          # "sha256:…", "opskit-train:offline"

* ``BuildRequest()`` with no ``project`` builds opskit's own training runtime (``src/`` is
  ``opskit.train`` + ``opskit.models``); ``project="path"`` builds a project folder that has
  ``src/``, ``test/`` and optionally ``requirements.txt``. ``client`` defaults to the local
  engine (any docker-py client works, e.g. one over SSH). ``on_event`` receives the typed
  events of :mod:`opskit.images.events` as they happen (``event.to_dict()`` is JSON-ready).
* Steps: refuse secret-looking build arguments -> check the recipe's inputs -> make sure the
  base image exists -> the deps image (``opskit-deps:<hash>``; reused while requirements,
  base and Python are unchanged; else a wheelhouse is fetched on this host and installed with
  no network) -> the build context (``.dockerignore`` honoured) -> the image, streamed through
  docker-py's low-level ``api.build`` (legacy builder) -> its size and the bytes this build
  added. ``result.layers`` / ``result.layer_rows()`` ask the engine for the layer table on use.
* Errors: :class:`~opskit.errors.UsageError` for bad input (says what to do),
  :class:`StepFailed` (a :class:`~opskit.errors.BuildError`) naming the failing step with the
  tail of its output, :class:`~opskit.errors.DockerUnavailable` when there is no engine.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit import __version__
from opskit.errors import UsageError
from opskit.gitinfo import git_facts
from opskit.images import recipes
from opskit.images.context import (
    BuildContext,
    ignore_lines,
    make_context,
    project_files,
    tree_files,
    usual_excludes_sent,
)
from opskit.images.events import (
    BUILT,
    CACHED,
    Notice,
    PhaseDone,
    PhaseStarted,
    StepDone,
)
from opskit.images.layers import ImageLayers, Layer, docker_size, image_layers
from opskit.images.recipefile import is_glob
from opskit.images.secrets import check_build_args, check_context
from opskit.images.stages import (
    LABEL,
    BuildCall,
    BuildPlan,
    EventCallback,
    StepFailed,
    ensure_base,
    ensure_deps,
    run_build,
    with_labels,
)
from opskit.images.wheelhouse import read_requirements, with_torch, without

RUNTIME_SMOKE_TEST = b'''"""Smoke test of opskit's training runtime in this image: python test/test_runtime.py"""
import opskit.models
import opskit.train  # noqa: F401

print("models:", ", ".join(opskit.models.list_models()))
'''
DEFAULT_PROJECT_NOTE = b"The training runtime of this image is the project itself: /app/src/opskit.\n"

__all__ = ["BuildRequest", "BuildResult", "StepFailed", "build_image", "check_build_args", "plan_build"]


@dataclass
class BuildRequest:
    project: str | None = None  # None: opskit's own training runtime is the project
    profile: str = "offline"
    base: str | None = None  # default: the profile's base image
    tag: str | None = None  # default: opskit-train:<profile> / opskit-train-<project>:<profile>
    build_args: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    recipe: str | None = None  # a Dockerfile to use instead of the profile's
    allow_secrets: tuple[str, ...] = ()  # dockerignore patterns of secret-looking files let in


@dataclass
class BuildResult:
    image_id: str
    tag: str
    profile: str
    base: str
    deps_image: str
    deps_reused: bool
    seconds: float
    size: int
    added_bytes: int  # bytes of the layers this build made (not reused from the cache)
    context: dict
    labels: dict[str, str]
    steps: list[StepDone]
    client: Any = field(default=None, repr=False, compare=False)
    _layers: ImageLayers | None = field(default=None, repr=False, compare=False)

    @property
    def built_steps(self) -> list[StepDone]:
        return [s for s in self.steps if s.status == BUILT]

    @property
    def layers(self) -> list[Layer]:
        """The image's layers (asked of the engine on first use: a rebuild does not wait on it)."""
        if self._layers is None:
            self._layers = image_layers(self.client, self.image_id)
        return list(self._layers.layers)

    def layer_rows(self) -> list[dict]:
        """Each layer with the recipe instruction that made it, built/cached/base, and its role."""
        by_id = {s.image_id: s for s in self.steps if s.image_id and s.status in (BUILT, CACHED)}
        rows = []
        for layer in self.layers:
            step = by_id.get(_short(layer.history_id))
            instruction = step.instruction if step else layer.instruction
            rows.append({**layer.to_dict(), "instruction": instruction,
                         "status": step.status if step else "base",
                         "role": recipes.layer_role(instruction) if step else "base"})
        return rows

    def to_dict(self) -> dict:
        return {
            "image_id": self.image_id, "tag": self.tag, "profile": self.profile,
            "base": self.base, "deps_image": self.deps_image, "deps_reused": self.deps_reused,
            "seconds": self.seconds, "size": self.size, "added_bytes": self.added_bytes,
            "context": self.context, "labels": self.labels,
            "steps": [{**s.to_dict(), "role": recipes.layer_role(s.instruction)} for s in self.steps],
            "layers": self.layer_rows(),
        }


def _short(image_id: str | None) -> str:
    return (image_id or "").removeprefix("sha256:")[:12]


def default_tag(project: str | None, profile: str) -> str:
    if project is None:
        return f"opskit-train:{profile}"
    slug = re.sub(r"[^a-z0-9]+", "-", os.path.basename(os.path.abspath(project)).lower()).strip("-")
    return f"opskit-train-{slug or 'project'}:{profile}"


def runtime_files(prefix: str, package: Path | None = None) -> dict[str, str]:
    """opskit's training runtime (``opskit/__init__.py``, ``train/``, ``models/``) as context files.

    ``package`` is the ``opskit`` package folder to take them from (default: this one).
    """
    package = package or Path(__file__).resolve().parents[1]
    out: dict[str, str] = {}
    for part in recipes.RUNTIME_PARTS:
        path = package / part
        if path.is_dir():
            out.update(tree_files(str(path), f"{prefix}/opskit/{part}"))
        elif path.is_file():
            out[f"{prefix}/opskit/{part}"] = str(path)
    return out


def plan_build(request: BuildRequest) -> BuildPlan:
    """Everything decided before the engine is asked anything (bad input fails here)."""
    from docker.utils.build import match_tag

    check_build_args(request.build_args)
    profile = recipes.get_profile(request.profile)
    tag = request.tag or default_tag(request.project, profile.name)
    if not match_tag(tag):
        raise UsageError(f"image tag {tag!r} is not valid", "use lowercase NAME[:TAG], e.g. myproj:dev")
    recipe_path, text = recipes.read_recipe(request.recipe or profile.recipe)
    extra: dict[str, bytes] = {}
    allowed: list[str] = []
    if request.project is None:
        root = None
        files = runtime_files("src")
        extra["test/test_runtime.py"] = RUNTIME_SMOKE_TEST
        extra[f"{recipes.RUNTIME_DIR}/README"] = DEFAULT_PROJECT_NOTE
        requirements: list[str] = []
    else:
        root = os.path.abspath(request.project)
        files = project_files(root)
        allowed = check_context(root, files, ignore_lines(root), request.allow_secrets)
        files.update(runtime_files(recipes.RUNTIME_DIR))
        req_file = os.path.join(root, "requirements.txt")
        requirements = read_requirements(req_file) if os.path.isfile(req_file) else []
    recipes.check_recipe(text, f"recipe {recipe_path}")
    missing = recipes.missing_sources(text, set(files) | set(extra))
    if missing:
        where = root or "opskit's runtime"
        shown = ", ".join(f"a match for {m}" if is_glob(m) else f"{m}/" for m in missing)
        raise UsageError(
            f"project {where} lacks {shown}, which the recipe {os.path.basename(recipe_path)} "
            "copies into the image",
            "create it (an empty folder with one file is fine), or check that .dockerignore "
            "does not leave it out",
        )
    if "torch" not in profile.provided:
        requirements = with_torch(requirements)
    requirements, dropped = without(requirements, profile.provided)
    base = request.base or profile.base_image(request.build_args)
    return BuildPlan(profile, base, tag, os.path.basename(recipe_path), text, root, files, extra,
                     requirements, dropped, dict(request.build_args), allowed)


def build_image(
    request: BuildRequest | None = None,
    *,
    client: Any = None,
    on_event: EventCallback | None = None,
) -> BuildResult:
    """Build (or reuse, layer by layer) the training image described by ``request``."""
    request = request or BuildRequest()
    emit = on_event or (lambda event: None)
    started = time.monotonic()
    plan = plan_build(request)
    if plan.allowed_secrets:
        emit(Notice(f"secret-looking files allowed into the context on purpose: "
                    f"{', '.join(plan.allowed_secrets)}"))
    if plan.dropped:
        emit(Notice(f"the base image {plan.base} provides {', '.join(plan.dropped)}: "
                    "not installed again"))
    if client is None:
        from opskit.hosts.engine import local_docker_client

        client = local_docker_client()
    base_id = ensure_base(client, plan.base, plan.profile, emit)
    deps_tag, deps_labels, deps_reused = ensure_deps(client, plan, base_id, request.no_cache, emit)
    labels: dict[str, str] = {}
    git = git_state(plan.root or str(Path(__file__).resolve().parents[1]))  # the opskit package

    def recipe(source_sha256: str) -> bytes:
        labels.update(image_labels(plan, source_sha256, git, deps_tag, deps_labels))
        return with_labels(plan.recipe_text, labels)

    context = _context(plan, recipe, emit)
    try:
        build_args = {"BASE_IMAGE": plan.base, "DEPS_IMAGE": deps_tag, **plan.build_args}
        emit(PhaseStarted("image", plan.tag))
        t0 = time.monotonic()
        image_id, steps = run_build(client, context, BuildCall(plan.tag, build_args,
                                                               request.no_cache), "image", emit)
    finally:
        context.close()
    size, added = _sizes(client, image_id, steps)
    emit(PhaseDone("image", round(time.monotonic() - t0, 4),
                   detail={"image_id": image_id, "size": size, "added_bytes": added}))
    return BuildResult(image_id, plan.tag, plan.profile.name, plan.base, deps_tag, deps_reused,
                       round(time.monotonic() - started, 4), size, added, context.to_dict(),
                       labels, steps, client)


def _context(plan: BuildPlan, recipe: Callable[[str], bytes], emit: EventCallback) -> BuildContext:
    emit(PhaseStarted("context", plan.root or "opskit runtime"))
    t0 = time.monotonic()
    context = make_context(plan.files, plan.extra, (recipes.DOCKERFILE, recipe))
    emit(PhaseDone("context", round(time.monotonic() - t0, 4), detail=context.to_dict()))
    ignore = os.path.join(plan.root or ".", ".dockerignore")
    usual = usual_excludes_sent(plan.files) if plan.root and os.path.isfile(ignore) else []
    if usual:
        emit(Notice(f"the context holds {', '.join(usual)}, which {ignore} does not leave out "
                    "(docker build would send them too); add them there if the image does not "
                    "need them"))
    if context.large:
        biggest = ", ".join(f"{p} ({docker_size(n)})" for p, n in context.largest)
        emit(Notice(f"the build context is large: {docker_size(context.size)} in {context.files} "
                    f"files (largest: {biggest}); list what the image does not need in "
                    f"{os.path.join(plan.root or '.', '.dockerignore')}"))
    return context


def git_state(path: str) -> tuple[str, str]:
    """(commit, dirty) of the git work tree holding ``path``, as label values; ("unknown",
    "unknown") outside one or when git does not answer in time."""
    facts = git_facts(path, only_path=True)
    if facts.commit is None or facts.dirty is None:
        return "unknown", "unknown"
    return facts.commit, "true" if facts.dirty else "false"


def image_labels(
    plan: BuildPlan, source_sha256: str, git: tuple[str, str], deps_tag: str, deps_labels: dict
) -> dict[str, str]:
    versions = {**plan.profile.build_args, **plan.build_args}
    if "torch" in plan.profile.provided:  # the base brings torch: its versions are build args
        torch = versions.get("TORCH_VERSION", "unknown")
        cuda = versions.get("CUDA_VERSION", "unknown")
    else:
        torch = deps_labels.get(f"{LABEL}.torch", "unknown")
        cuda = recipes.torch_cuda_from_version(torch)
    commit, dirty = git
    return {
        f"{LABEL}.version": __version__, f"{LABEL}.recipe": plan.recipe_name,
        f"{LABEL}.profile": plan.profile.name, f"{LABEL}.torch": torch, f"{LABEL}.cuda": cuda,
        f"{LABEL}.git.commit": commit, f"{LABEL}.git.dirty": dirty,
        f"{LABEL}.source.sha256": source_sha256, f"{LABEL}.deps": deps_tag,
        f"{LABEL}.base": plan.base,
    }


def _sizes(client: Any, image_id: str, steps: list[StepDone]) -> tuple[int, int]:
    """(image size, bytes of the layers this build made) from two engine calls."""
    built = {s.image_id for s in steps if s.status == BUILT and s.image_id}
    added = sum(int(h.get("Size") or 0) for h in client.api.history(image_id)
                if _short(h.get("Id")) in built)
    return int(client.api.inspect_image(image_id).get("Size") or 0), added
