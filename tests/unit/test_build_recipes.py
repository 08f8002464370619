"""Recipes, profiles and the build plan (everything decided before the engine is asked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opskit.errors import UsageError
from opskit.images import recipes
from opskit.images.build import (
    BuildRequest,
    check_build_args,
    default_tag,
    plan_build,
    runtime_files,
    with_labels,
)

SEED_ORDER = ["FROM", "RUN", "COPY --from=deps", "COPY .opskit-build/runtime", "WORKDIR /app",
              "COPY ./src", "COPY ./test", "ENTRYPOINT"]


def _main_stage(text: str) -> list[str]:
    lines = recipes._instructions(text)
    start = max(i for i, line in enumerate(lines) if line.startswith("FROM "))
    return lines[start:]


@pytest.mark.parametrize("profile", sorted(recipes.PROFILES))
def test_every_recipe_has_the_seed_layer_order(profile: str) -> None:
    _, text = recipes.read_recipe(recipes.PROFILES[profile].recipe)
    stage = [line for line in _main_stage(text) if not line.startswith(("ARG", "ENV"))]
    assert len(stage) == len(SEED_ORDER)
    for line, want in zip(stage, SEED_ORDER, strict=True):
        assert line.startswith(want), (line, want)
    assert stage[-1] == 'ENTRYPOINT ["python", "-m", "opskit.train"]'
    assert "latest" not in text.replace("`latest`", "")


@pytest.mark.parametrize("profile", sorted(recipes.PROFILES))
def test_recipe_defaults_match_the_profile(profile: str) -> None:
    p = recipes.PROFILES[profile]
    _, text = recipes.read_recipe(p.recipe)
    defaults = recipes.recipe_arg_defaults(text)
    for key, value in p.build_args.items():
        assert defaults[key] == value
    if "{" not in p.base:
        assert defaults["BASE_IMAGE"] == p.base
    else:
        assert p.base_image() == "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime"


def test_deps_recipe_leaves_no_wheels_in_its_result() -> None:
    _, text = recipes.read_recipe(recipes.DEPS_RECIPE)
    final = _main_stage(text)
    assert final == ["FROM scratch", "COPY --from=install /opt/venv /opt/venv"]
    assert "--no-index" in text


def test_copy_sources_and_missing_ones() -> None:
    text = ("FROM x\nCOPY --from=deps /opt/venv /opt/venv\nCOPY .opskit-build/runtime /opt\n"
            "COPY ./src /app/src\nADD data/ \\\n  /data\nCOPY --chown=1:1 ./test /app/test\n")
    assert recipes.copy_sources(text) == ["src", "data", "test"]
    assert recipes.missing_sources(text, {"src/a.py", "test", "data/x"}) == []
    assert recipes.missing_sources(text, {"src/a.py"}) == ["data", "test"]


def test_layer_roles() -> None:
    assert recipes.layer_role("FROM ${BASE_IMAGE}") == "base"
    assert recipes.layer_role("RUN apt-get install -y git") == "system"
    assert recipes.layer_role("COPY --from=deps /opt/venv /opt/venv") == "deps"
    assert recipes.layer_role("COPY .opskit-build/runtime /opt/opskit") == "runtime"
    assert recipes.layer_role("COPY ./src /app/src") == "code"
    assert recipes.layer_role('ENTRYPOINT ["python"]') == "metadata"


def test_cuda_of_torch_versions() -> None:
    assert recipes.torch_cuda_from_version("2.13.0+cpu") == "none"
    assert recipes.torch_cuda_from_version("2.5.1+cu124") == "12.4"
    assert recipes.torch_cuda_from_version("2.5.1") == "unknown"


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(UsageError) as info:
        recipes.get_profile("tpu")
    assert "gpu, cpu, offline" in (info.value.hint or "")


@pytest.mark.parametrize("name", ["HF_TOKEN", "db_password", "AWS_SECRET_ACCESS_KEY", "API_KEY"])
def test_secret_looking_build_args_are_refused(name: str) -> None:
    with pytest.raises(UsageError, match="looks like a secret") as info:
        check_build_args({name: "x"})
    assert "docker history" in info.value.message
    assert "container runs" in (info.value.hint or "")


def test_ordinary_build_args_pass() -> None:
    check_build_args({"SYSTEM_PACKAGES": "git", "TORCH_VERSION": "2.5.1"})
    with pytest.raises(UsageError, match="not valid"):
        check_build_args({"A B": "x"})


def test_default_tags() -> None:
    assert default_tag(None, "offline") == "opskit-train:offline"
    assert default_tag("/x/My Project", "gpu") == "opskit-train-my-project:gpu"


def test_labels_go_into_one_instruction() -> None:
    out = with_labels("FROM x\n", {"b": 'say "hi"', "a": "1"}).decode()
    assert out == 'FROM x\nLABEL a="1" b="say \\"hi\\""\n'


def test_runtime_is_torch_and_stdlib_code_only() -> None:
    files = runtime_files("rt")
    assert "rt/opskit/__init__.py" in files
    assert any(f.startswith("rt/opskit/train/") for f in files)
    assert any(f.startswith("rt/opskit/models/") for f in files)
    assert not any(f.startswith(("rt/opskit/cli", "rt/opskit/hosts", "rt/opskit/images")) for f in files)
    assert not any("__pycache__" in f for f in files)


def _project(root: Path, *, src: bool = True, test: bool = True, reqs: str | None = None) -> Path:
    if src:
        (root / "src/pkg").mkdir(parents=True)
        (root / "src/pkg/__init__.py").write_text("")
    if test:
        (root / "test").mkdir()
        (root / "test/test_x.py").write_text("")
    if reqs is not None:
        (root / "requirements.txt").write_text(reqs)
    return root


def test_plan_for_a_project(tmp_path: Path) -> None:
    plan = plan_build(BuildRequest(project=str(_project(tmp_path, reqs="numpy==2.0\n"))))
    assert plan.requirements == ["numpy==2.0", "torch==2.13.0"]
    assert plan.base == "opskit-base:bookworm"
    assert plan.tag.endswith(":offline")
    assert "src/pkg/__init__.py" in plan.files and "test/test_x.py" in plan.files
    assert f"{recipes.RUNTIME_DIR}/opskit/__init__.py" in plan.files


def test_plan_for_the_default_project() -> None:
    plan = plan_build(BuildRequest())
    assert plan.tag == "opskit-train:offline" and plan.root is None
    assert "src/opskit/train/__init__.py" in plan.files
    assert "test/test_runtime.py" in plan.extra
    assert plan.requirements == ["torch==2.13.0"]


def test_gpu_plan_leaves_torch_to_the_base(tmp_path: Path) -> None:
    plan = plan_build(BuildRequest(project=str(_project(tmp_path, reqs="torch==2.13.0\nrich\n")),
                                   profile="gpu", build_args={"TORCH_VERSION": "2.4.0"}))
    assert plan.requirements == ["rich"] and plan.dropped == ["torch==2.13.0"]
    assert plan.base == "pytorch/pytorch:2.4.0-cuda12.4-cudnn9-runtime"


def test_project_without_the_recipe_inputs_says_which(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="lacks test/") as info:
        plan_build(BuildRequest(project=str(_project(tmp_path, test=False))))
    assert "src/" not in info.value.message
    assert ".dockerignore" in (info.value.hint or "")


def test_dockerignored_inputs_count_as_missing(tmp_path: Path) -> None:
    root = _project(tmp_path)
    (root / ".dockerignore").write_text("src\n")
    with pytest.raises(UsageError, match="lacks src/"):
        plan_build(BuildRequest(project=str(root)))


def test_bad_tag_and_missing_recipe(tmp_path: Path) -> None:
    root = str(_project(tmp_path))
    with pytest.raises(UsageError, match="tag"):
        plan_build(BuildRequest(project=root, tag="Bad Tag"))
    with pytest.raises(UsageError, match="does not exist"):
        plan_build(BuildRequest(project=root, recipe=str(tmp_path / "nope.Dockerfile")))


def test_secret_arg_is_refused_before_anything_else(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="secret"):
        plan_build(BuildRequest(project=str(tmp_path / "missing"), build_args={"MY_TOKEN": "x"}))


def test_large_context_warns_with_its_largest_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from opskit.images import build, context
    from opskit.images.events import Notice, PhaseDone

    root = _project(tmp_path)
    (root / "src" / "weights.pt").write_bytes(b"\0" * 50_000)
    monkeypatch.setattr(context, "LARGE_CONTEXT", 10_000)
    events: list = []
    ctx = build._context(plan_build(BuildRequest(project=str(root))), lambda sha: b"FROM x\n",
                         events.append)
    ctx.close()
    done = next(e for e in events if isinstance(e, PhaseDone))
    assert done.detail["largest"][0] == {"path": "src/weights.pt", "bytes": 50_000}
    notice = next(e for e in events if isinstance(e, Notice))
    assert "build context is large" in notice.message and "src/weights.pt (50kB)" in notice.message
    assert str(root / ".dockerignore") in notice.message


class _NoImages:
    """A docker-py client stand-in with no images and no registry (control flow only; the
    real engine path of a missing base is in tests/integration/test_build.py)."""

    def __init__(self) -> None:
        from types import SimpleNamespace

        self.pulled: list[tuple[str, str]] = []
        self.images = SimpleNamespace(get=self._get)
        self.api = SimpleNamespace(pull=self._pull)

    def _get(self, ref: str) -> None:
        from docker.errors import ImageNotFound

        raise ImageNotFound(f"no such image: {ref}")

    def _pull(self, repo: str, tag: str, stream: bool, decode: bool):  # noqa: ANN202
        self.pulled.append((repo, tag))
        yield {"error": "dial tcp: lookup registry-1.docker.io: no such host"}


def test_missing_base_is_pulled_only_where_the_profile_allows(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from opskit.images import base as basemod
    from opskit.images.stages import ensure_base

    client = _NoImages()
    monkeypatch.setattr(basemod.os, "geteuid", lambda: 1000)
    with pytest.raises(UsageError, match="never pulls.*needs root") as info:
        ensure_base(client, "opskit-base:bookworm", recipes.PROFILES["offline"], lambda e: None)
    assert info.value.hint == "make it with: sudo opskit base bootstrap" and client.pulled == []
    monkeypatch.undo()
    with pytest.raises(UsageError, match="cannot be pulled") as info:
        ensure_base(client, "pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime", recipes.PROFILES["gpu"],
                    lambda e: None)
    assert client.pulled == [("pytorch/pytorch", "2.5.1-cuda12.4-cudnn9-runtime")]
    assert "docker load" in (info.value.hint or "") and "--profile offline" in (info.value.hint or "")
    digest = "sha256:" + "ab" * 32
    for ref in ("localhost:5000/team/base", f"team/base@{digest}"):
        with pytest.raises(UsageError, match="cannot be pulled"):
            ensure_base(client, ref, recipes.PROFILES["gpu"], lambda e: None)
    assert client.pulled[1:] == [("localhost:5000/team/base", "latest"), ("team/base", digest)]


def test_git_state_of_a_work_tree_and_outside_one(tmp_path: Path) -> None:
    import subprocess

    from opskit.images.build import git_state

    assert git_state(str(tmp_path)) == ("unknown", "unknown")
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.invalid", "PATH": "/usr/bin:/bin"}
    (tmp_path / "a.py").write_text("A = 1\n")
    for argv in (["init", "-q"], ["add", "a.py"], ["commit", "-q", "-m", "a"]):
        subprocess.run(["git", "-C", str(tmp_path), *argv], check=True, env=env)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    assert git_state(str(tmp_path)) == (head, "false")
    (tmp_path / "a.py").write_text("A = 2\n")
    assert git_state(str(tmp_path)) == (head, "true")


def test_a_git_that_hangs_gives_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from opskit import gitinfo
    from opskit.images import build

    fake = tmp_path / "bin" / "git"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    monkeypatch.setattr(gitinfo, "GIT_TIMEOUT", 0.5)
    assert build.git_state(str(tmp_path)) == ("unknown", "unknown")


def test_missing_offline_base_is_made_with_progress_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """Control flow only: the real debootstrap into an empty engine is the fresh-machine test."""
    from opskit.images import base as basemod
    from opskit.images.events import PhaseDone, PhaseStarted, StepOutput
    from opskit.images.stages import ensure_base

    made: list[basemod.BaseRequest] = []

    def fake_bootstrap(client: Any, request: basemod.BaseRequest) -> basemod.BaseResult:
        made.append(request)
        for line in ("I: Retrieving InRelease", "I: Retrieving libc6 2.36-9",
                     "I: Extracting tzdata...", "I: Unpacking required packages...",
                     "I: Configuring libc6:amd64...", "I: Base system installed successfully."):
            request.log(line)
        return basemod.BaseResult(request.tag or "", "sha256:" + "1" * 64, 1, False, "debootstrap")

    monkeypatch.setattr(basemod, "bootstrap_blocker", lambda tag: None)
    monkeypatch.setattr(basemod, "bootstrap", fake_bootstrap)
    events: list[Any] = []
    image_id = ensure_base(_NoImages(), "opskit-base:trixie", recipes.PROFILES["offline"],
                           events.append)
    assert image_id == "sha256:" + "1" * 64
    assert [(r.suite, r.tag) for r in made] == [("trixie", "opskit-base:trixie")]
    assert isinstance(events[0], PhaseStarted) and events[0].phase == "base"
    assert [e.line for e in events if isinstance(e, StepOutput)] == [
        "I: Retrieving InRelease", "I: Unpacking required packages...",
        "I: Base system installed successfully."]
    assert isinstance(events[-1], PhaseDone) and events[-1].detail["source"] == "debootstrap"


@pytest.mark.parametrize(("tag", "euid", "which", "want"), [
    ("opskit-base:bookworm", 1000, "/usr/sbin/debootstrap", "sudo opskit base bootstrap"),
    ("opskit-base:trixie", 0, None,
     "apt-get install -y debootstrap && opskit base bootstrap --suite trixie --tag opskit-base:trixie"),
    ("myteam/base:1", 0, "/usr/sbin/debootstrap", "opskit base bootstrap --tag myteam/base:1   (a Debian"),
])
def test_one_command_fixes_a_missing_base(monkeypatch: pytest.MonkeyPatch, tag: str, euid: int,
                                          which: str | None, want: str) -> None:
    from opskit.images import base as basemod

    monkeypatch.setattr(basemod.os, "geteuid", lambda: euid)
    monkeypatch.setattr(basemod.shutil, "which", lambda name: which)
    blocker = basemod.bootstrap_blocker(tag)
    assert blocker is not None and blocker[1].startswith(want)
