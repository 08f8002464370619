"""opskit's build context against the real engine, on a corpus of ignore files and trees.

For each case of :mod:`dockerignore_corpus` the same tree is built twice into a tiny image
(``FROM scratch``, ``COPY . /ctx/``; no container runs, no network): once by the docker CLI
(legacy builder, as ``docker build`` sends a context) and once through opskit's own context and
build path. The images' file lists (names and kinds) must be equal. All images of the module
are listed with one ``docker save`` and removed at the end. Cost: ~0.2 s per build, ~35 s in all
(2 cores).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dockerignore_corpus import BAD, CASES, make_tree

from opskit.errors import UsageError
from opskit.images import recipes
from opskit.images.context import DEFAULT_EXCLUDES, make_context, project_files
from opskit.images.dockerignore import PatternMatcher
from opskit.images.events import Event
from opskit.images.stages import BuildCall, run_build
from opskit.testing.engine import require_tool

RECIPE = b"FROM scratch\nCOPY . /ctx/\n"
REPO = "opskit-ditest"


def _docker_cli_build(ctx: Path, tag: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", "build", "--network", "none", "-q", "-t", tag, "-f", "-", os.fsencode(ctx)],
        input=RECIPE, capture_output=True, env={**os.environ, "DOCKER_BUILDKIT": "0"},
        check=False)


def _opskit_build(client: Any, ctx: Path, tag: str) -> None:
    context = make_context(project_files(str(ctx)), recipe=(recipes.DOCKERFILE, lambda _: RECIPE))
    events: list[Event] = []
    try:
        run_build(client, context, BuildCall(tag, {}, False), "image", events.append)
    finally:
        context.close()


def _listings(tags: list[str]) -> dict[str, set[tuple[str, str]]]:
    """{tag: {(path under /ctx, kind)}} of every image, from one ``docker save``."""
    saved = subprocess.run(["docker", "save", *tags], capture_output=True, check=True).stdout
    out: dict[str, set[tuple[str, str]]] = {}
    with tarfile.open(fileobj=io.BytesIO(saved)) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))  # type: ignore[arg-type]
        for entry in manifest:
            layer = outer.extractfile(entry["Layers"][-1])
            assert layer is not None
            with tarfile.open(fileobj=io.BytesIO(layer.read())) as inner:
                names = {(m.name.rstrip("/").removeprefix("ctx/"), _kind(m))
                         for m in inner.getmembers() if m.name.startswith("ctx/")}
            files = {n for n in names if not n[0].startswith(".opskit-build")}
            for tag in entry.get("RepoTags") or []:
                out[tag] = files
    return out


def _kind(member: tarfile.TarInfo) -> str:
    return "dir" if member.isdir() else "link" if member.issym() else "file"


@pytest.fixture(scope="module")
def corpus_images(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    require_tool("docker", "docker.io")
    run = uuid.uuid4().hex[:8]
    root = tmp_path_factory.mktemp("dockerignore")
    tags: dict[str, tuple[str, str]] = {}
    try:
        for i, (name, ignore) in enumerate(sorted(CASES.items())):
            ctx = make_tree(root / name, ignore)
            ref, ours = f"{REPO}:{run}-ref{i}", f"{REPO}:{run}-ops{i}"
            tags[name] = (ref, ours)  # removed at the end, whatever happens
            done = _docker_cli_build(ctx, ref)
            assert done.returncode == 0, (name, done.stderr.decode(errors="replace"))
            _opskit_build(docker_client, ctx, ours)
        yield {name: pair for name, pair in tags.items()} | {"_listing": _listings(
            [t for pair in tags.values() for t in pair])}
    finally:
        all_tags = [t for pair in tags.values() for t in pair]
        if all_tags:
            subprocess.run(["docker", "rmi", "-f", *all_tags], capture_output=True, check=False)


@pytest.mark.parametrize("name", sorted(CASES))
def test_context_matches_the_engine(corpus_images: dict, name: str) -> None:
    ref, ours = corpus_images[name]
    listing = corpus_images["_listing"]
    if CASES[name] is None:  # no .dockerignore: opskit's defaults act as one
        defaults = PatternMatcher(DEFAULT_EXCLUDES)
        listing = {**listing, ref: {e for e in listing[ref] if not defaults.excluded(e[0])}}
    assert listing[ours] == listing[ref], (
        f"only docker: {sorted(listing[ref] - listing[ours])}; "
        f"only opskit: {sorted(listing[ours] - listing[ref])}")


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", sorted(BAD))
def test_ignore_files_docker_refuses_are_refused_clearly(
        docker_client: Any, tmp_path: Path, name: str) -> None:
    require_tool("docker", "docker.io")
    ctx = make_tree(tmp_path / "ctx", BAD[name])
    tag = f"{REPO}:bad-{uuid.uuid4().hex[:8]}"
    done = _docker_cli_build(ctx, tag)
    subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)
    assert done.returncode != 0, "the docker CLI accepted it: the case is not a bad one"
    with pytest.raises(UsageError, match=r"\.dockerignore, line 1: pattern .* is not valid"):
        project_files(str(ctx))
