"""Image build figures, side by side in one run. Prints, never asserts.

Targets (issue 3): a rebuild after a one-line change in src/ <= 1 s with every layer below the
code reused; a warm rebuild with nothing changed <= 0.5 s; the final image <= 0.85x the size of
a naive single-stage recipe that copies the wheelhouse into a layer and deletes it later (this
bench builds that one too, from the same wheelhouse, on the same base).

Times are ``build_image`` wall times in this process (docker-py already imported), medians of
``--repeat`` runs. Builds examples/tiny (copied to a temporary folder) with the offline profile.
Usage: python bench/build.py [--repeat 5] [--base opskit-base:bookworm]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TAG = "opskit-bench-build:tiny"
NAIVE_TAG = "opskit-bench-naive:tiny"

NAIVE_RECIPE = """\
# The naive single-stage recipe: the wheelhouse goes into a layer, is installed, then deleted
# in a later layer (its bytes stay in the image).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
COPY wheelhouse /tmp/wheelhouse
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-index --no-cache-dir \\
      --disable-pip-version-check --find-links /tmp/wheelhouse -r /tmp/wheelhouse/requirements.txt
RUN rm -rf /tmp/wheelhouse
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PYTHONPATH=/app/src:/opt/opskit PYTHONUNBUFFERED=1
COPY runtime /opt/opskit
WORKDIR /app
COPY src /app/src
COPY test /app/test
ENTRYPOINT ["python", "-m", "opskit.train"]
"""


def _touch(project: Path) -> None:
    """A one-line change in src/ that the engine has never seen."""
    path = project / "src" / "tinyproj" / "__init__.py"
    lines = [line for line in path.read_text().splitlines() if not line.startswith("BENCH = ")]
    path.write_text("\n".join([*lines, f'BENCH = "{uuid.uuid4().hex}"']) + "\n")


def _timed_build(client: Any, project: Path, base: str) -> tuple[float, Any, list]:
    from opskit.images.build import BuildRequest, build_image

    events: list = []
    t0 = time.perf_counter()
    result = build_image(BuildRequest(project=str(project), tag=TAG, base=base), client=client,
                         on_event=events.append)
    return time.perf_counter() - t0, result, events


def _below_code_reused(events: list) -> bool:
    from opskit.images.events import BUILT, StepDone

    steps = [e for e in events if isinstance(e, StepDone) and e.build == "image"]
    code = next(e.index for e in steps if e.instruction.startswith("COPY ./src"))
    return all(e.status != BUILT for e in steps if e.index < code) and not any(
        isinstance(e, StepDone) and e.build == "deps" for e in events)


def _naive_context(project: Path, wheels: Any) -> Any:
    """The naive recipe's context: wheelhouse + runtime + src + test (sent on every build)."""
    from opskit.images.build import runtime_files
    from opskit.images.context import make_context, project_files

    files = {f"wheelhouse/{n}": os.path.join(wheels.path, n)
             for n in (*wheels.files, "requirements.txt")}
    files.update({k: v for k, v in project_files(str(project)).items()
                  if k.startswith(("src", "test"))})
    files.update(runtime_files("runtime"))
    return make_context(files, {"Dockerfile": NAIVE_RECIPE.encode()})


def _naive_build(client: Any, project: Path, base: str, wheels: Any) -> tuple[float, str, int]:
    t0 = time.perf_counter()
    context = _naive_context(project, wheels)
    size = context.size
    try:
        image_id = None
        for chunk in client.api.build(fileobj=context.fileobj, custom_context=True, tag=NAIVE_TAG,
                                      buildargs={"BASE_IMAGE": base}, rm=True, forcerm=True,
                                      decode=True):
            if "error" in chunk:
                raise SystemExit(f"naive build failed: {chunk['error']}")
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
    finally:
        context.close()
    assert image_id is not None
    return time.perf_counter() - t0, image_id, size


@dataclass
class Figures:
    """What one bench run measured (seconds, bytes)."""

    repeat: int
    warm: list[float] = field(default_factory=list)
    warm_built: int = 0
    change: list[float] = field(default_factory=list)
    reused_all: bool = True
    added: list[int] = field(default_factory=list)
    context_bytes: int = 0
    naive_first: float = 0.0
    naive_change: float = 0.0
    naive_ctx: int = 0
    naive_size: int = 0
    final: int = 0


def _measure(client: Any, project: Path, base: str, repeat: int) -> Figures:
    from opskit.images.wheelhouse import ensure_wheelhouse, read_requirements

    fig = Figures(repeat)
    t_first, first, _ = _timed_build(client, project, base)
    print(f"first build (deps {'reused' if first.deps_reused else 'made'}): {t_first:.2f}s",
          flush=True)
    for _ in range(repeat):
        seconds, result, events = _timed_build(client, project, base)
        fig.warm.append(seconds)
        fig.warm_built += len(result.built_steps)
        for step in result.built_steps:
            print(f"  warm rebuild built step {step.index}: {step.instruction[:60]}", flush=True)
    for _ in range(repeat):
        _touch(project)
        seconds, result, events = _timed_build(client, project, base)
        fig.change.append(seconds)
        fig.reused_all &= _below_code_reused(events)
        fig.added.append(result.added_bytes)
    fig.context_bytes = result.context["bytes"]
    wheels = ensure_wheelhouse(read_requirements(str(project / "requirements.txt")),
                               python_version="3.11")
    fig.naive_first, _, fig.naive_ctx = _naive_build(client, project, base, wheels)
    _touch(project)
    fig.naive_change, _, _ = _naive_build(client, project, base, wheels)
    fig.naive_size = client.api.inspect_image(NAIVE_TAG)["Size"]
    fig.final = client.api.inspect_image(TAG)["Size"]
    return fig


def _report(fig: Figures) -> None:
    from opskit.images.layers import docker_size

    change, warm = statistics.median(fig.change), statistics.median(fig.warm)
    ratio = fig.final / fig.naive_size
    rows = [
        ("one-line change in src/, rebuild", f"{change:.3f}s",
         f"{fig.naive_change:.2f}s", "<= 1 s", change <= 1.0),
        ("  every layer below the code reused", "yes" if fig.reused_all else "NO", "-", "yes",
         fig.reused_all),
        ("  bytes added per rebuild", docker_size(int(statistics.median(fig.added))), "-", "-",
         None),
        ("warm rebuild, nothing changed", f"{warm:.3f}s", "-", "<= 0.5 s",
         warm <= 0.5 and fig.warm_built == 0),
        ("final image size", docker_size(fig.final), docker_size(fig.naive_size),
         "<= 0.85x naive", ratio <= 0.85),
        ("  ratio to naive", f"{ratio:.3f}x", "1x", "<= 0.85", ratio <= 0.85),
        ("build context per rebuild", docker_size(fig.context_bytes), docker_size(fig.naive_ctx),
         "-", None),
    ]
    print(f"\nopskit build bench (examples/tiny, offline profile, median of {fig.repeat}; "
          f"naive first build {fig.naive_first:.1f}s)")
    print(f"{'figure':38} {'opskit':>10} {'naive':>10}  {'target':14} met")
    for name, mine, naive, target, met in rows:
        flag = "" if met is None else ("yes" if met else "NO")
        print(f"{name:38} {mine:>10} {naive:>10}  {target:14} {flag}")
    print(f"(warm rebuild runs: {fig.repeat}, steps built in them: {fig.warm_built}; "
          f"one-line runs: {', '.join(f'{s:.3f}' for s in fig.change)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--base", default="opskit-base:bookworm")
    args = parser.parse_args(argv)

    from opskit.hosts.engine import local_docker_client

    client = local_docker_client()
    tmp = Path(tempfile.mkdtemp(prefix="opskit-bench-build-"))
    try:
        project = tmp / "tiny"
        shutil.copytree(ROOT / "examples" / "tiny", project)
        figures = _measure(client, project, args.base, args.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _report(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
