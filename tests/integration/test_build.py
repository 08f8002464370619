"""`opskit build` against the real engine, on the offline base.

The first build of a cold engine installs torch into the deps image (about a minute) and copies
the venv into the image chain once; every later build here reuses both (stable tags:
opskit-deps:<hash>, opskit-buildtest-tiny:it), so the module costs seconds on a warm engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opskit.errors import UsageError
from opskit.images.build import BuildRequest, StepFailed, build_image
from opskit.images.events import BUILT, CACHED, Event, PhaseDone, StepDone
from opskit.testing.cli import CliRun

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tiny"
TAG = "opskit-buildtest-tiny:it"


BIG = 30 * 1024 * 1024


def _git(root: Path, *argv: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid"}
    return subprocess.run(["git", "-C", str(root), *argv], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


@pytest.fixture(scope="module", autouse=True)
def frozen_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A copy of opskit's training runtime taken once, so that edits to opskit/train in the
    working tree during this module (a shared checkout) cannot change the runtime layer."""
    import opskit
    from opskit.images import build as build_module
    from opskit.images.recipes import RUNTIME_PARTS

    package = tmp_path_factory.mktemp("runtime") / "opskit"
    source = Path(opskit.__file__).parent
    package.mkdir()
    for part in RUNTIME_PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, package / part,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source / part, package / part)
    frozen = build_module.runtime_files
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(build_module, "runtime_files",
                   lambda prefix, package_dir=package: frozen(prefix, package_dir))
        yield


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of examples/tiny in its own git repository, with big files .dockerignore drops."""
    root = tmp_path_factory.mktemp("proj") / "tiny"
    shutil.copytree(EXAMPLE, root)
    (root / "data").mkdir()
    with open(root / "data" / "big.bin", "wb") as fh:
        fh.truncate(BIG)
    (root / "src" / "tinyproj" / "weights.bin").write_bytes(b"\0" * 1024 * 1024)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "tiny")
    return root


def _build(request: BuildRequest, client: Any) -> tuple[Any, list[Event]]:
    events: list[Event] = []
    return build_image(request, client=client, on_event=events.append), events


@pytest.fixture(scope="module")
def first(project: Path, docker_client: Any, base_image: str) -> tuple[Any, list[Event]]:
    return _build(BuildRequest(project=str(project), tag=TAG, base=base_image), docker_client)


def _run(client: Any, image: str, script: str) -> str:
    out = client.containers.run(image, ["-c", script], entrypoint="sh", remove=True,
                                stderr=False, network_disabled=True)
    return out.decode()


def test_example_project_builds_and_imports_torch(first: tuple[Any, list[Event]], docker_client: Any) -> None:
    result, _ = first
    assert result.tag == TAG and result.image_id.startswith("sha256:")
    out = _run(docker_client, TAG,
               'python -c "import torch, tinyproj; print(torch.__version__, tinyproj.VERSION)" '
               "&& python test/test_tinyproj.py "
               "&& find / -xdev -name '*.whl' -not -path '/usr/share/python-wheels/*' "
               "&& ls /app/src/tinyproj")
    lines = out.split()
    assert lines[:3] == ["2.13.0+cpu", "1", "ok"]
    assert ".whl" not in out  # no wheel of the wheelhouse anywhere in the image
    assert "weights.bin" not in out and "model.py" in out


def test_image_is_labelled(first: tuple[Any, list[Event]], docker_client: Any, project: Path) -> None:
    result, _ = first
    labels = docker_client.images.get(TAG).labels
    assert labels["org.opskit.version"]
    assert labels["org.opskit.recipe"] == "offline.Dockerfile"
    assert labels["org.opskit.torch"] == "2.13.0+cpu" and labels["org.opskit.cuda"] == "none"
    assert labels["org.opskit.git.commit"] == _git(project, "rev-parse", "HEAD")
    assert labels["org.opskit.git.dirty"] == "false"
    assert labels["org.opskit.source.sha256"] == result.context["source_sha256"]
    assert labels["org.opskit.deps"].startswith("opskit-deps:")


def test_dockerignored_big_files_stay_out_of_the_context(first: tuple[Any, list[Event]]) -> None:
    result, events = first
    assert result.context["bytes"] < 2 * 1024 * 1024  # 31 MiB of data/ and *.bin left out
    done = next(e for e in events if isinstance(e, PhaseDone) and e.phase == "context")
    assert done.detail["bytes"] == result.context["bytes"]
    assert all(not p["path"].endswith(".bin") for p in done.detail["largest"])


def test_no_wheel_bytes_in_the_final_image(first: tuple[Any, list[Event]], docker_client: Any, base_image: str) -> None:
    result, _ = first
    base_size = docker_client.images.get(base_image).attrs["Size"]
    rows = result.layer_rows()
    venv = next(r for r in rows if r["role"] == "deps")
    others = result.size - base_size - venv["size"]
    assert others < 1024 * 1024, rows  # runtime + code: well under 1 MB, no 190 MB wheelhouse
    deps = docker_client.images.get(result.deps_image).attrs
    assert len(deps["RootFS"]["Layers"]) == 1  # FROM scratch + /opt/venv: no base, no wheels
    assert deps["Size"] == venv["size"]


def _built(events: list[Event]) -> list[StepDone]:
    return [e for e in events if isinstance(e, StepDone) and e.build == "image" and e.status == BUILT]


def _code_index(events: list[Event]) -> int:
    return next(e.index for e in events if isinstance(e, StepDone) and e.build == "image"
                and e.instruction.startswith("COPY ./src"))


def test_one_line_change_rebuilds_only_the_code_layers(
    first: tuple[Any, list[Event]], project: Path, docker_client: Any, base_image: str
) -> None:
    model = project / "src" / "tinyproj" / "__init__.py"
    version = uuid.uuid4().hex  # never built before, so the engine cannot have it cached
    model.write_text(model.read_text().replace('VERSION = "1"', f'VERSION = "{version}"'))
    result, events = _build(BuildRequest(project=str(project), tag=TAG, base=base_image), docker_client)
    code = _code_index(events)
    built = _built(events)
    assert built, "the changed source must be built"
    assert built[0].instruction.startswith("COPY ./src")
    assert all(e.index >= code for e in built), [e.instruction for e in built]
    below = [e for e in events if isinstance(e, StepDone) and e.build == "image" and e.index < code]
    assert all(e.status != BUILT for e in below)
    assert any(e.status == CACHED and "--from=deps" in e.instruction for e in below)
    assert not any(isinstance(e, StepDone) and e.build == "deps" for e in events)
    assert result.deps_reused and result.added_bytes < 64 * 1024
    assert result.labels["org.opskit.git.dirty"] == "true"
    assert version in _run(docker_client, TAG, 'python -c "import tinyproj; print(tinyproj.VERSION)"')
    # Nothing changed since: every step is reused and the image is the same.
    again, events2 = _build(BuildRequest(project=str(project), tag=TAG, base=base_image), docker_client)
    assert _built(events2) == [] and again.image_id == result.image_id and again.added_bytes == 0


def test_broken_recipe_fails_naming_the_step(
    project: Path, tmp_path: Path, base_image: str, opskit_cli: Any
) -> None:
    recipe = (EXAMPLE.parents[1] / "dockerfiles" / "offline.Dockerfile").read_text()
    broken = recipe.replace("\nWORKDIR /app\n", "\nRUN echo about to fail && exit 7\nWORKDIR /app\n")
    (tmp_path / "broken.Dockerfile").write_text(broken)
    proc: CliRun = opskit_cli("build", str(project), "--recipe", str(tmp_path / "broken.Dockerfile"),
                              "--tag", "opskit-buildtest-broken:it", "--base", base_image)
    assert proc.returncode == 1, proc.stderr
    assert "image build failed at step" in proc.stderr
    assert "RUN echo about to fail && exit 7" in proc.stderr
    assert "returned a non-zero code: 7" in proc.stderr
    assert "about to fail" in proc.stderr.split("output of the step")[1]


def test_failure_event_and_exception_carry_the_step(project: Path, tmp_path: Path, docker_client: Any, base_image: str) -> None:
    (tmp_path / "bad.Dockerfile").write_text(
        f"FROM {base_image}\nRUN echo one && echo two >&2 && false\nCOPY ./src /app/src\n")
    events: list[Event] = []
    with pytest.raises(StepFailed) as info:
        build_image(BuildRequest(project=str(project), recipe=str(tmp_path / "bad.Dockerfile"),
                                 tag="opskit-buildtest-broken:it", base=base_image),
                    client=docker_client, on_event=events.append)
    failure = info.value.failure
    assert failure.index == 2 and failure.instruction.startswith("RUN echo one")
    assert sorted(failure.tail) == ["one", "two"]  # stdout and stderr: order not kept
    assert events[-1] == failure


def test_secret_looking_build_arg_is_refused(project: Path, opskit_cli: Any) -> None:
    proc = opskit_cli("build", str(project), "--build-arg", "HF_TOKEN=hf_abc")
    assert proc.returncode == 2
    assert "HF_TOKEN looks like a secret" in proc.stderr and "docker history" in proc.stderr
    assert "hf_abc" not in proc.stderr + proc.stdout


def test_absent_base_says_how_to_make_one(project: Path, docker_client: Any) -> None:
    with pytest.raises(UsageError, match="opskit-buildtest-nobase:1 is not on this engine") as info:
        build_image(BuildRequest(project=str(project), base="opskit-buildtest-nobase:1"),
                    client=docker_client)
    assert "opskit base bootstrap" in (info.value.hint or "")


def test_unresolvable_requirement_names_the_package(tmp_path: Path, docker_client: Any, base_image: str) -> None:
    root = tmp_path / "p"
    shutil.copytree(EXAMPLE, root)
    (root / "requirements.txt").write_text("torch==2.13.0\nopskit-no-such-package==9.9\n")
    with pytest.raises(UsageError, match="opskit-no-such-package==9.9"):
        build_image(BuildRequest(project=str(root), tag="opskit-buildtest-x:it", base=base_image),
                    client=docker_client)


def test_engine_not_running_says_how_to_start_one(
    project: Path, tmp_path: Path, opskit_cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    proc = opskit_cli("build", str(project))
    assert proc.returncode == 1
    assert "no usable Docker engine" in proc.stderr and "start the engine" in proc.stderr


def test_project_missing_recipe_inputs_says_which(tmp_path: Path, opskit_cli: Any) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("")
    proc = opskit_cli("build", str(tmp_path))
    assert proc.returncode == 2 and "lacks test/" in proc.stderr


def test_cli_json_streams_events_and_the_result(project: Path, base_image: str, opskit_cli: Any) -> None:
    import json

    proc = opskit_cli("build", str(project), "--tag", TAG, "--base", base_image, "--json")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    kinds = {e["event"] for e in events}
    assert {"phase_started", "phase_done", "step_started", "step_done", "build_succeeded"} <= kinds
    result = events[-1]
    assert result["event"] == "result" and result["tag"] == TAG
    assert {row["role"] for row in result["layers"]} >= {"base", "deps", "runtime", "code"}


def test_cpu_recipe_builds_on_a_local_base(project: Path, docker_client: Any, base_image: str) -> None:
    """The cpu recipe (python:3.11-slim by default) on the offline base: same layers, so the
    engine reuses them; the recipe and its labels are what this checks."""
    result = build_image(BuildRequest(project=str(project), profile="cpu", base=base_image,
                                      tag="opskit-buildtest-tiny:cpu"), client=docker_client)
    labels = docker_client.images.get("opskit-buildtest-tiny:cpu").labels
    assert labels["org.opskit.recipe"] == "cpu.Dockerfile" and labels["org.opskit.profile"] == "cpu"
    assert labels["org.opskit.torch"] == "2.13.0+cpu"
    rows = result.layer_rows()
    assert [r["role"] for r in rows if r["role"] in ("deps", "runtime", "code")] == [
        "deps", "runtime", "code", "code"]
