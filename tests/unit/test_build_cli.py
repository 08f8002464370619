"""`opskit build` / `opskit image` command-line parsing and the live view (no engine)."""

from __future__ import annotations

from typing import Any

import click
import pytest

from opskit.cli.images import BuildView, _parse_build_args
from opskit.images.events import (
    BuildFailed,
    Notice,
    PhaseDone,
    PhaseStarted,
    StepDone,
    StepOutput,
    StepStarted,
)


def test_cli_profile_choices_are_the_recipes_profiles() -> None:
    """The CLI spells the profiles out (recipes is not imported for --help): same set, same order."""
    from opskit.cli.images import PROFILES
    from opskit.images.recipes import PROFILES as RECIPE_PROFILES

    assert tuple(RECIPE_PROFILES) == PROFILES


def test_build_args_are_key_value() -> None:
    assert _parse_build_args(("SYSTEM_PACKAGES=git curl", "X=a=b", "EMPTY=")) == {
        "SYSTEM_PACKAGES": "git curl", "X": "a=b", "EMPTY": ""}
    with pytest.raises(click.BadParameter):
        _parse_build_args(("NOVALUE",))


def test_bad_build_arg_and_profile_are_usage_errors(opskit_cli: Any) -> None:
    run = opskit_cli("build", "--build-arg", "NOVALUE")
    assert run.returncode == 2 and "KEY=VALUE" in run.stderr
    run = opskit_cli("build", "--profile", "tpu")
    assert run.returncode == 2 and "tpu" in run.stderr


def test_secret_build_arg_is_refused_before_the_engine(opskit_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/opskit-test.sock")
    run = opskit_cli("build", "--build-arg", "DB_PASSWORD=hunter2")
    assert run.returncode == 2
    assert "DB_PASSWORD looks like a secret" in run.stderr and "hunter2" not in run.stderr


def test_live_view_prints_one_line_per_step(capsys: pytest.CaptureFixture) -> None:
    view = BuildView()
    for event in [
        PhaseStarted("deps", "opskit-deps:abc"),
        PhaseDone("deps", 0.01, reused=True, detail={"tag": "opskit-deps:abc"}),
        PhaseDone("context", 0.02, detail={"bytes": 2048, "files": 3, "source_sha256": "f" * 64,
                                           "largest": []}),
        StepStarted("image", 1, 3, "ARG BASE_IMAGE=x"),
        StepDone("image", 1, 3, "ARG BASE_IMAGE=x", "meta", 0.0, None),
        StepStarted("image", 2, 3, "COPY --from=deps /opt/venv /opt/venv"),
        StepDone("image", 2, 3, "COPY --from=deps /opt/venv /opt/venv", "cached", 0.01, "abc"),
        StepStarted("image", 3, 3, "RUN make"),
        StepOutput("image", 3, "compiling"),
        StepDone("image", 3, 3, "RUN make", "built", 1.5, "def"),
        Notice("the build context is large"),
        BuildFailed("image", 3, "RUN make", "exit 2", ["compiling"]),
    ]:
        view(event)
    view.stop()
    err = capsys.readouterr().err
    assert "deps: reused" in err and "context: 2.0K, 3 files" in err
    assert "ARG BASE_IMAGE" not in err  # steps before the first FROM are not shown
    assert "[ 2/3] cached" in err and "[ 3/3] built " in err and "1.50s" in err
    assert "| compiling" in err
    assert "warning: the build context is large" in err
    assert "build failed at step 3: RUN make" in err


def test_run_remote_view_announces_making_the_base_up_front(capsys: pytest.CaptureFixture) -> None:
    from opskit.cli.render import EventView

    view = EventView()
    view(PhaseStarted("base", "opskit-base:bookworm is not on this engine: making it"))
    view(PhaseDone("base", 200.0))
    err = capsys.readouterr().err
    assert "[localhost] build base: opskit-base:bookworm is not on this engine" in err
    assert "[localhost] build base: done in 200.0s" in err
