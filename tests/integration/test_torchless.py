"""An ops-only install: ``pip install .`` with no extras (so no torch) in a fresh venv.

The machine that ships a job never runs the model, so ``models list``, the help of every
command, and ``run-remote``/``ship``/``jobs`` up to the engine must work without torch. The
venv installs from the project's own source copy (pip's cache and any configured local index
make it quick, about 20 s); its ``python -m venv`` has no system site-packages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from opskit.testing.engine import require_engine

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
KEEP_OUT = shutil.ignore_patterns(".git", ".venv", "runs", "build", "dist", "*.egg-info",
                                  "__pycache__", ".lab", ".pytest_cache", ".ruff_cache")


@pytest.fixture(scope="module")
def opskit_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("torchless")
    src, venv = base / "src", base / "venv"
    shutil.copytree(ROOT, src, ignore=KEEP_OUT)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(src)],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-2000:]
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch"],
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr
    return venv / "bin" / "opskit"


def opskit(binary: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OPSKIT_RUNS_DIR")}
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd=cwd)


def test_models_list_and_every_help_without_torch(opskit_bin: Path) -> None:
    res = opskit(opskit_bin, "models", "list", "--json")
    assert res.returncode == 0, res.stderr
    models = {m["name"]: m for m in json.loads(res.stdout)["models"]}
    assert models["resnet50"]["parameters"] == 25_557_032 and len(models) == 18
    for cmd in (["models", "show"], ["run-remote"], ["ship"], ["jobs"], ["collect"], ["logs"]):
        res = opskit(opskit_bin, *cmd, "--help")
        assert res.returncode == 0 and "Usage: opskit" in res.stdout, (cmd, res.stderr)


def test_models_show_says_what_to_install(opskit_bin: Path) -> None:
    res = opskit(opskit_bin, "models", "show", "lenet")
    assert res.returncode == 2, res.stderr
    assert "torch" in res.stderr and "opskit[train]" in res.stderr
    assert "unexpected" not in res.stderr


def test_run_remote_checks_model_and_options_without_torch(opskit_bin: Path, tmp_path: Path) -> None:
    res = opskit(opskit_bin, "run-remote", "--host", "localhost", "resnet19", "--small", cwd=tmp_path)
    assert res.returncode == 2 and "unknown model 'resnet19'" in res.stderr, res.stderr
    res = opskit(opskit_bin, "run-remote", "--host", "localhost", "lenet", "--bogus", cwd=tmp_path)
    assert res.returncode == 2 and "--bogus" in res.stderr, res.stderr
    res = opskit(opskit_bin, "jobs", "--json", cwd=tmp_path)
    doc = json.loads(res.stdout)  # nothing recorded: every part of the answer empty (SSH hosts, Slurm runs, errors)
    assert res.returncode == 0 and doc["hosts"] == {} and doc["errors"] == {} and not any(doc.values()), doc


def test_run_remote_and_ship_reach_the_engine_without_torch(opskit_bin: Path, tmp_path: Path) -> None:
    require_engine()
    missing = "opskit-test-no-such-image:torchless"
    res = opskit(opskit_bin, "run-remote", "--host", "localhost", "--image", missing,
                 "lenet", "--small", "--steps", "1", cwd=tmp_path)
    assert res.returncode == 2 and missing in res.stderr, res.stderr
    assert "ModuleNotFoundError" not in res.stderr
    res = opskit(opskit_bin, "ship", missing, "--plan", "--json", cwd=tmp_path)
    assert res.returncode != 0 and missing in res.stderr, res.stderr
    assert "ModuleNotFoundError" not in res.stderr
