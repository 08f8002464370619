"""opskit.settings: one precedence (defaults < settings file < environment < flags), errors
that name the file or variable at fault, and the README's table in step with the code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from opskit import settings
from opskit.errors import ConfigError, UsageError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment of our own: no settings file unless a test writes one."""
    return {"XDG_CONFIG_HOME": str(tmp_path / "config")}


def write_settings(env: dict[str, str], text: str) -> Path:
    path = Path(env["XDG_CONFIG_HOME"]) / "opskit" / "settings.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_precedence_default_file_env_flag(env: dict[str, str]) -> None:
    assert settings.resolve("runs_dir", environ=env) == settings.Value("runs", "default")
    path = write_settings(env, "runs_dir: /data/runs\ndisk_margin: 2g\n")
    assert settings.resolve("runs_dir", environ=env) == settings.Value(
        "/data/runs", f"settings file {path}")
    assert settings.resolve("disk_margin", environ=env).value == 2 << 30
    env["OPSKIT_RUNS_DIR"] = "/env/runs"
    assert settings.resolve("runs_dir", environ=env) == settings.Value("/env/runs", "$OPSKIT_RUNS_DIR")
    assert settings.resolve("runs_dir", "/flag/runs", environ=env) == settings.Value("/flag/runs", "flag")


def test_unset_settings_leave_the_search_to_the_caller(env: dict[str, str]) -> None:
    assert settings.resolve("inventory", environ=env) == settings.Value(None, "default")
    assert settings.resolve("traceback", environ=env).value is False


def test_named_settings_file_and_its_errors(env: dict[str, str], tmp_path: Path) -> None:
    env["OPSKIT_SETTINGS"] = str(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"missing.yaml \(from \$OPSKIT_SETTINGS\) does not exist"):
        settings.resolve("runs_dir", environ=env)
    other = tmp_path / "mine.yaml"
    other.write_text("run_dir: x\n")  # a typo
    env["OPSKIT_SETTINGS"] = str(other)
    with pytest.raises(ConfigError, match="unknown setting 'run_dir'") as exc:
        settings.resolve("runs_dir", environ=env)
    assert "runs_dir" in exc.value.hint
    other.write_text("disk_margin: lots\n")
    with pytest.raises(UsageError, match=r"invalid disk_margin in settings file .*mine.yaml 'lots'"):
        settings.resolve("disk_margin", environ=env)
    other.write_text("- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        settings.resolve("runs_dir", environ=env)


def test_bad_environment_value_names_the_variable(env: dict[str, str]) -> None:
    env["OPSKIT_TRACEBACK"] = "maybe"
    with pytest.raises(UsageError, match=r"invalid \$OPSKIT_TRACEBACK 'maybe'"):
        settings.resolve("traceback", environ=env)
    env["OPSKIT_TRACEBACK"] = "1"
    assert settings.resolve("traceback", environ=env).value is True


def test_runs_dir_and_disk_margin_read_the_settings(monkeypatch, tmp_path: Path) -> None:
    from opskit.jobs.preflight import disk_margin
    from opskit.jobs.store import runs_dir

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("OPSKIT_RUNS_DIR", raising=False)
    monkeypatch.delenv("OPSKIT_DISK_MARGIN", raising=False)
    write_settings({"XDG_CONFIG_HOME": str(tmp_path)}, "runs_dir: /from/file\ndisk_margin: 3m\n")
    assert runs_dir(None) == Path("/from/file") and runs_dir("here") == Path("here")
    assert disk_margin() == 3 << 20
    monkeypatch.setenv("OPSKIT_DISK_MARGIN", "0")
    assert disk_margin() == 0


def env_names_read_in(path: Path) -> set[str]:
    """OPSKIT_* string constants in a module (what it may read from the environment)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.update(re.findall(r"\bOPSKIT_[A-Z_]+\b", node.value))
    return names


# Set for the training container by run-remote / 'opskit train', not settings of the user's.
CONTAINER_VARIABLES = {"OPSKIT_RUN_ID", "OPSKIT_PROJECT_STAMP", "OPSKIT_NODE_RANK"}
# Shell variables of the sbatch script opskit renders (opskit/jobs/slurm/script.py): the job's, not the user's.
JOB_SCRIPT_VARIABLES = {"OPSKIT_NODE_TASK", "OPSKIT_TASK", "OPSKIT_RDZV", "OPSKIT_RDZV_ADDR", "OPSKIT_RDZV_PORT"}


def test_every_variable_is_a_setting_and_in_the_readme() -> None:
    known = {s.env for s in settings.SETTINGS.values()} | {settings.SETTINGS_FILE_ENV}
    used = set()
    for path in (ROOT / "opskit").rglob("*.py"):
        if "testing" not in path.relative_to(ROOT / "opskit").parts:
            used |= env_names_read_in(path)
    ours = CONTAINER_VARIABLES | JOB_SCRIPT_VARIABLES
    assert used - ours <= known, sorted(used - ours - known)
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Settings", 1)[1].split("\n## ", 1)[0]
    for s in settings.SETTINGS.values():
        assert f"`{s.env}`" in section and f"`{s.key}`" in section, s.env
    assert f"`{settings.SETTINGS_FILE_ENV}`" in section
