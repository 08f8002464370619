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
  docker-py's low-level ``api.build`` (legacy builder) -> its layers.
* Errors: :class:`~opskit.errors.UsageError` for bad input (says what to do),
  :class:`StepFailed` (a :class:`~opskit.errors.BuildError`) naming the failing step with the
  tail of its output, :class:`~opskit.errors.DockerUnavailable` when there is no engine.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit import __version__
from opskit.errors import BuildError, UsageError
from opskit.images import recipes
from opskit.images.context import BuildContext, make_context, project_files, tree_files
from opskit.images.events import (
    BUILT,
    CACHED,
    BuildFailed,
    Event,
    Notice,
    PhaseDone,
    PhaseStarted,
    StepDone,
    StreamParser,
)
from opskit.images.layers import ImageLayers, Layer, docker_size, image_layers
from opskit.images.wheelhouse import (
    ensure_wheelhouse,
    read_requirements,
    requirements_key,
    with_torch,
    without,
)

SECRET_MARKERS = ("TOKEN", "PASSWORD", "SECRET", "KEY")
LABEL = "org.opskit"
DEPS_REPO = "opskit-deps"
RUNTIME_SMOKE_TEST = b'''"""Smoke test of opskit's training runtime in this image: python test/test_runtime.py"""
import opskit.models
import opskit.train  # noqa: F401

print("models:", ", ".join(opskit.models.list_models()))
'''
DEFAULT_PROJECT_NOTE = b"The training runtime of this image is the project itself: /app/src/opskit.\n"

EventCallback = Callable[[Event], None]


class StepFailed(BuildError):
    """A build step failed; ``failure`` holds the step, the engine's message and output tail."""

    def __init__(self, what: str, failure: BuildFailed):
        where = (f"step {failure.index}: {failure.instruction}" if failure.index
                 else "before the first step")
        tail = "".join(f"\n    {line}" for line in failure.tail)
        super().__init__(
            f"{what} build failed at {where}\n  {failure.message}"
            + (f"\n  output of the step (last {len(failure.tail)} lines):{tail}" if tail else ""),
            "fix that step of the recipe (or its inputs) and build again",
        )
        self.failure = failure


@dataclass
class BuildRequest:
    project: str | None = None  # None: opskit's own training runtime is the project
    profile: str = "offline"
    base: str | None = None  # default: the profile's base image
    tag: str | None = None  # default: opskit-train:<profile> / opskit-train-<project>:<profile>
    build_args: dict[str, str] = field(default_factory=dict)
    no_cache: bool = False
    recipe: str | None = None  # a Dockerfile to use instead of the profile's


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


@dataclass
class _Plan:
    profile: recipes.Profile
    base: str
    tag: str
    recipe_name: str
    recipe_text: str
    root: str | None
    files: dict[str, str]
    extra: dict[str, bytes]
    requirements: list[str]
    dropped: list[str]  # requirements the base image provides (not installed again)
    build_args: dict[str, str]


def check_build_args(build_args: dict[str, str]) -> None:
    """Refuse names that look like secrets: build arguments stay readable in the history."""
    for name in build_args:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise UsageError(f"build argument name {name!r} is not valid", "use NAME=value")
        marker = next((m for m in SECRET_MARKERS if m in name.upper()), None)
        if marker:
            raise UsageError(
                f"build argument {name} looks like a secret (its name contains {marker}); "
                "build arguments stay readable in the image: 'docker history --no-trunc' shows "
                "their values to anyone who has the image",
                "pass secrets when the container runs (docker run -e, or a mounted file), "
                "never at build time",
            )


def default_tag(project: str | None, profile: str) -> str:
    if project is None:
        return f"opskit-train:{profile}"
    slug = re.sub(r"[^a-z0-9]+", "-", os.path.basename(os.path.abspath(project)).lower()).strip("-")
    return f"opskit-train-{slug or 'project'}:{profile}"


def runtime_files(prefix: str) -> dict[str, str]:
    """opskit's training runtime (``opskit/__init__.py``, ``train/``, ``models/``) as context files."""
    package = Path(__file__).resolve().parents[1]
    out: dict[str, str] = {}
    for part in recipes.RUNTIME_PARTS:
        path = package / part
        if path.is_dir():
            out.update(tree_files(str(path), f"{prefix}/opskit/{part}"))
        elif path.is_file():
            out[f"{prefix}/opskit/{part}"] = str(path)
    return out


def plan_build(request: BuildRequest) -> _Plan:
    """Everything decided before the engine is asked anything (bad input fails here)."""
    from docker.utils.build import match_tag

    check_build_args(request.build_args)
    profile = recipes.get_profile(request.profile)
    tag = request.tag or default_tag(request.project, profile.name)
    if not match_tag(tag):
        raise UsageError(f"image tag {tag!r} is not valid", "use lowercase NAME[:TAG], e.g. myproj:dev")
    recipe_path, text = recipes.read_recipe(request.recipe or profile.recipe)
    extra: dict[str, bytes] = {}
    if request.project is None:
        root = None
        files = runtime_files("src")
        extra["test/test_runtime.py"] = RUNTIME_SMOKE_TEST
        extra[f"{recipes.RUNTIME_DIR}/README"] = DEFAULT_PROJECT_NOTE
        requirements: list[str] = []
    else:
        root = os.path.abspath(request.project)
        files = project_files(root)
        files.update(runtime_files(recipes.RUNTIME_DIR))
        req_file = os.path.join(root, "requirements.txt")
        requirements = read_requirements(req_file) if os.path.isfile(req_file) else []
    missing = recipes.missing_sources(text, set(files) | set(extra))
    if missing:
        where = root or "opskit's runtime"
        raise UsageError(
            f"project {where} lacks {', '.join(m + '/' for m in missing)}, which the recipe "
            f"{os.path.basename(recipe_path)} copies into the image",
            "create it (an empty folder with one file is fine), or check that .dockerignore "
            "does not leave it out",
        )
    if "torch" not in profile.provided:
        requirements = with_torch(requirements)
    requirements, dropped = without(requirements, profile.provided)
    base = request.base or profile.base_image(request.build_args)
    return _Plan(profile, base, tag, os.path.basename(recipe_path), text, root, files, extra,
                 requirements, dropped, dict(request.build_args))


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
    if plan.dropped:
        emit(Notice(f"the base image {plan.base} provides {', '.join(plan.dropped)}: "
                    "not installed again"))
    if client is None:
        from opskit.hosts.engine import local_docker_client

        client = local_docker_client()
    base_id = ensure_base(client, plan.base, plan.profile, emit)
    deps_tag, deps_labels, deps_reused = ensure_deps(client, plan, base_id, request.no_cache, emit)
    labels: dict[str, str] = {}
    git = git_state(plan.root or str(Path(__file__).resolve().parent))

    def recipe(source_sha256: str) -> bytes:
        labels.update(image_labels(plan, source_sha256, git, deps_tag, deps_labels))
        return with_labels(plan.recipe_text, labels)

    context = _context(plan, recipe, emit)
    try:
        build_args = {"BASE_IMAGE": plan.base, "DEPS_IMAGE": deps_tag, **plan.build_args}
        emit(PhaseStarted("image", plan.tag))
        t0 = time.monotonic()
        image_id, steps = run_build(client, context, _BuildCall(plan.tag, build_args,
                                                               request.no_cache), "image", emit)
    finally:
        context.close()
    size, added = _sizes(client, image_id, steps)
    emit(PhaseDone("image", round(time.monotonic() - t0, 4),
                   detail={"image_id": image_id, "size": size, "added_bytes": added}))
    return BuildResult(image_id, plan.tag, plan.profile.name, plan.base, deps_tag, deps_reused,
                       round(time.monotonic() - started, 4), size, added, context.to_dict(),
                       labels, steps, client)


def ensure_base(client: Any, base: str, profile: recipes.Profile, emit: EventCallback) -> str:
    """The base image's id; pulled when the profile allows and the engine lacks it."""
    from docker.errors import APIError, ImageNotFound

    try:
        return client.images.get(base).id
    except ImageNotFound:
        pass
    bootstrap_hint = "make it with 'opskit base bootstrap" + (
        f" --tag {base}'" if base != "opskit-base:bookworm" else "'")
    if not profile.pullable:
        raise UsageError(f"base image {base} is not on this engine (profile {profile.name} "
                         "never pulls)", bootstrap_hint)
    emit(PhaseStarted("pull", base))
    t0 = time.monotonic()
    repo, _, tag = base.rpartition(":") if ":" in base.split("/")[-1] else (base, "", "latest")
    try:
        for chunk in client.api.pull(repo, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                raise APIError(chunk["error"])
        image = client.images.get(base)
    except (APIError, ImageNotFound) as exc:
        raise UsageError(
            f"base image {base} is not on this engine and cannot be pulled ({exc})",
            f"where no registry can be reached, use --profile offline and {bootstrap_hint}, "
            "or 'docker load' the base image",
        ) from exc
    emit(PhaseDone("pull", round(time.monotonic() - t0, 4), detail={"image_id": image.id}))
    return image.id


def _image_labels_or_none(client: Any, tag: str) -> dict[str, str] | None:
    from docker.errors import ImageNotFound

    try:
        return client.images.get(tag).labels or {}
    except ImageNotFound:
        return None


def ensure_deps(
    client: Any, plan: _Plan, base_id: str, no_cache: bool, emit: EventCallback
) -> tuple[str, dict[str, str], bool]:
    """(tag, labels, reused) of the deps image for the plan's requirements on its base."""
    _, deps_text = recipes.read_recipe(recipes.DEPS_RECIPE)
    profile = plan.profile
    req_key = requirements_key(plan.requirements, profile.python_version)
    key = hashlib.sha256(json.dumps(
        [req_key, base_id, profile.python, profile.venv_flags, deps_text]).encode()).hexdigest()
    tag = f"{DEPS_REPO}:{key[:16]}"
    emit(PhaseStarted("deps", tag))
    t0 = time.monotonic()
    labels = _image_labels_or_none(client, tag)
    if labels is not None and not no_cache:
        emit(PhaseDone("deps", round(time.monotonic() - t0, 4), reused=True, detail={"tag": tag}))
        return tag, labels, True
    emit(PhaseStarted("wheelhouse", " ".join(plan.requirements)))
    wheels = ensure_wheelhouse(plan.requirements, python_version=profile.python_version,
                               log=lambda line: emit(Notice(line)) if line.startswith("$") else None)
    emit(PhaseDone("wheelhouse", round(time.monotonic() - t0, 4), reused=wheels.reused,
                   detail=wheels.to_dict()))
    torch = wheels.version_of("torch") or plan.build_args.get("TORCH_VERSION", "unknown")
    labels = {f"{LABEL}.version": __version__, f"{LABEL}.deps.key": key,
              f"{LABEL}.requirements.sha256": req_key, f"{LABEL}.torch": torch}
    files = {name: os.path.join(wheels.path, name) for name in (*wheels.files, "requirements.txt")}
    context = make_context(files, recipe=(recipes.DOCKERFILE, lambda _: with_labels(deps_text, labels)))
    try:
        args = {"BASE_IMAGE": plan.base, "PYTHON": profile.python, "VENV_FLAGS": profile.venv_flags}
        run_build(client, context, _BuildCall(tag, args, no_cache), "deps", emit)
    finally:
        context.close()
    emit(PhaseDone("deps", round(time.monotonic() - t0, 4), detail={"tag": tag}))
    return tag, labels, False


def _context(plan: _Plan, recipe: Callable[[str], bytes], emit: EventCallback) -> BuildContext:
    emit(PhaseStarted("context", plan.root or "opskit runtime"))
    t0 = time.monotonic()
    context = make_context(plan.files, plan.extra, (recipes.DOCKERFILE, recipe))
    emit(PhaseDone("context", round(time.monotonic() - t0, 4), detail=context.to_dict()))
    if context.large:
        biggest = ", ".join(f"{p} ({docker_size(n)})" for p, n in context.largest)
        emit(Notice(f"the build context is large: {docker_size(context.size)} in {context.files} "
                    f"files (largest: {biggest}); list what the image does not need in "
                    f"{os.path.join(plan.root or '.', '.dockerignore')}"))
    return context


def git_state(path: str) -> tuple[str, str]:
    """(commit, dirty) of the git work tree holding ``path``; ("unknown", "unknown") outside one."""
    def git(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", path, *argv], capture_output=True, text=True)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return "unknown", "unknown"
        status = git("status", "--porcelain", "--", ".")
    except FileNotFoundError:  # no git on this host
        return "unknown", "unknown"
    return head.stdout.strip(), "true" if status.stdout.strip() else "false"


def image_labels(
    plan: _Plan, source_sha256: str, git: tuple[str, str], deps_tag: str, deps_labels: dict
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


def with_labels(recipe_text: str, labels: dict[str, str]) -> bytes:
    """The recipe with one ``LABEL`` line appended (the API's ``labels=`` makes a step per label)."""
    pairs = " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
    return (recipe_text.rstrip("\n") + f"\nLABEL {pairs}\n").encode()


@dataclass
class _BuildCall:
    tag: str
    build_args: dict[str, str]
    no_cache: bool


def run_build(
    client: Any, context: BuildContext, call: _BuildCall, what: str, emit: EventCallback
) -> tuple[str, list[StepDone]]:
    """Stream one legacy-builder build; (image id, steps) or :class:`StepFailed`."""
    from docker.errors import APIError

    parser = StreamParser(what)
    try:
        stream = client.api.build(
            fileobj=context.fileobj, custom_context=True, dockerfile=recipes.DOCKERFILE,
            tag=call.tag, buildargs=call.build_args, nocache=call.no_cache,
            rm=True, forcerm=True, pull=False, decode=True,
        )
        for chunk in stream:
            for event in parser.feed(chunk):
                emit(event)
            if parser.failed is not None:
                break
        else:
            for event in parser.finish():
                emit(event)
    except APIError as exc:
        raise BuildError(f"the engine refused the {what} build: {exc.explanation or exc}",
                         "check the recipe's syntax") from exc
    if parser.failed is not None:
        raise StepFailed(what, parser.failed)
    assert parser.image_id is not None
    return parser.image_id, parser.steps


def _sizes(client: Any, image_id: str, steps: list[StepDone]) -> tuple[int, int]:
    """(image size, bytes of the layers this build made) from two engine calls."""
    built = {s.image_id for s in steps if s.status == BUILT and s.image_id}
    added = sum(int(h.get("Size") or 0) for h in client.api.history(image_id)
                if _short(h.get("Id")) in built)
    return int(client.api.inspect_image(image_id).get("Size") or 0), added
