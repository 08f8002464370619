"""The engine side of a build: the base image, the deps image, and one streamed build.

``run_build`` sends a context to docker-py's low-level ``api.build`` (the legacy builder) and
turns its JSON stream into events; a failed step raises :class:`StepFailed` naming the step
with the tail of its output. ``ensure_base`` finds (or, where the profile allows, pulls) the
base image; ``ensure_deps`` makes or reuses the deps image ``opskit-deps:<hash>``: a venv at
/opt/venv installed from a wheelhouse with no network, FROM scratch, no wheel bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opskit import __version__
from opskit.errors import BuildError, UsageError
from opskit.hosts.dockererrors import docker_error, is_docker_exception, or_none
from opskit.images import recipes
from opskit.images.context import BuildContext, make_context
from opskit.images.events import (
    BuildFailed,
    Event,
    PhaseDone,
    PhaseStarted,
    StepDone,
    StepOutput,
    StreamParser,
    parse_stream,
)
from opskit.images.wheelhouse import ensure_wheelhouse, requirements_key

LABEL = "org.opskit"
DEPS_REPO = "opskit-deps"
EventCallback = Callable[[Event], None]
# Seconds a build may send nothing (one step working silently) before opskit gives up on it.
SILENCE_TIMEOUT = 1800


@dataclass
class BuildPlan:
    """Everything ``build_image`` decided before asking the engine anything (made by
    ``opskit.images.build.plan_build``; the stages here read it)."""

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
    allowed_secrets: list[str] = field(default_factory=list)


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


def ensure_base(client: Any, base: str, profile: recipes.Profile, emit: EventCallback) -> str:
    """The base image's id; pulled when the profile allows and the engine lacks it."""
    from docker.errors import APIError
    from docker.utils import parse_repository_tag

    image = or_none(lambda: client.images.get(base))
    if image is not None:
        return image.id
    # not here yet: made (offline), pulled below, or a clear error
    if not profile.pullable:
        return make_base(client, base, profile, emit)
    emit(PhaseStarted("pull", base))
    t0 = time.monotonic()
    repo, tag = parse_repository_tag(base)  # NAME:TAG, REGISTRY:PORT/NAME, NAME@sha256:...
    try:
        for chunk in client.api.pull(repo, tag=tag or "latest", stream=True, decode=True):
            if "error" in chunk:
                raise APIError(chunk["error"])
        image = client.images.get(base)
    except Exception as exc:
        if not is_docker_exception(exc):
            raise
        raise docker_error(
            exc, f"base image {base} is not on this engine and cannot be pulled", error=UsageError,
            hint="where no registry can be reached, 'docker load' the base image from an "
            "archive, or use --profile offline (its base comes from 'opskit base bootstrap')",
        ) from exc
    emit(PhaseDone("pull", round(time.monotonic() - t0, 4), detail={"image_id": image.id}))
    return image.id


def make_base(client: Any, base: str, profile: recipes.Profile, emit: EventCallback) -> str:
    """Make a missing offline base with debootstrap (progress as events), or say the one
    command that makes it."""
    from opskit.images import base as basemod

    blocker = basemod.bootstrap_blocker(base)
    if blocker is not None:
        reason, command = blocker
        raise UsageError(f"base image {base} is not on this engine (profile {profile.name} "
                         f"never pulls), and opskit cannot make it here: {reason}",
                         f"make it with: {command}")
    suite = basemod.suite_of(base) or basemod.DEFAULT_SUITE
    emit(PhaseStarted("base", f"{base} is not on this engine: making it with debootstrap "
                              f"{suite} from this host's apt mirror (a few minutes, once)"))
    t0 = time.monotonic()

    def log(line: str) -> None:
        if basemod.progress_line(line):
            emit(StepOutput("base", 0, line))

    result = basemod.bootstrap(client, basemod.BaseRequest(suite=suite, tag=base, log=log))
    emit(PhaseDone("base", round(time.monotonic() - t0, 4), detail=result.to_dict()))
    return result.image_id


def _image_labels_or_none(client: Any, tag: str) -> dict[str, str] | None:
    image = or_none(lambda: client.images.get(tag))
    return None if image is None else (image.labels or {})


def ensure_deps(
    client: Any, plan: BuildPlan, base_id: str, no_cache: bool, emit: EventCallback
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
                               log=lambda line: emit(StepOutput("wheelhouse", 0, line)))
    emit(PhaseDone("wheelhouse", round(time.monotonic() - t0, 4), reused=wheels.reused,
                   detail=wheels.to_dict()))
    torch = wheels.version_of("torch") or plan.build_args.get("TORCH_VERSION", "unknown")
    labels = {f"{LABEL}.version": __version__, f"{LABEL}.deps.key": key,
              f"{LABEL}.requirements.sha256": req_key, f"{LABEL}.torch": torch}
    files = {name: os.path.join(wheels.path, name) for name in (*wheels.files, "requirements.txt")}
    context = make_context(files, recipe=(recipes.DOCKERFILE, lambda _: with_labels(deps_text, labels)))
    try:
        args = {"BASE_IMAGE": plan.base, "PYTHON": profile.python, "VENV_FLAGS": profile.venv_flags}
        run_build(client, context, BuildCall(tag, args, no_cache), "deps", emit)
    finally:
        context.close()
    emit(PhaseDone("deps", round(time.monotonic() - t0, 4), detail={"tag": tag}))
    return tag, labels, False


def with_labels(recipe_text: str, labels: dict[str, str]) -> bytes:
    """The recipe with one ``LABEL`` line appended (the API's ``labels=`` makes a step per label)."""
    pairs = " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))
    return (recipe_text.rstrip("\n") + f"\nLABEL {pairs}\n").encode()


@dataclass
class BuildCall:
    tag: str
    build_args: dict[str, str]
    no_cache: bool


def run_build(
    client: Any, context: BuildContext, call: BuildCall, what: str, emit: EventCallback
) -> tuple[str, list[StepDone]]:
    """Stream one legacy-builder build; (image id, steps) or :class:`StepFailed`."""
    from docker.errors import APIError
    from requests.exceptions import RequestException

    parser = StreamParser(what)
    try:
        stream = client.api.build(
            fileobj=context.fileobj, custom_context=True, dockerfile=recipes.DOCKERFILE,
            tag=call.tag, buildargs=call.build_args, nocache=call.no_cache,
            rm=True, forcerm=True, pull=False, decode=True, timeout=SILENCE_TIMEOUT,
        )
        for event in parse_stream(stream, parser=parser):
            emit(event)
    except APIError as exc:
        raise docker_error(exc, f"the engine refused the {what} build", error=BuildError,
                           hint="check the recipe's syntax") from exc
    except RequestException as exc:  # the engine went silent or away in the middle of a build
        step = parser.steps[-1].index + 1 if parser.steps else 1
        raise BuildError(
            f"the {what} build lost the engine during step {step} ({type(exc).__name__}: {exc})",
            f"a step may not stay silent for more than {SILENCE_TIMEOUT} s; check 'docker info'",
        ) from exc
    if parser.failed is not None:
        raise StepFailed(what, parser.failed)
    assert parser.image_id is not None
    return parser.image_id, parser.steps
