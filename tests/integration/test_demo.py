"""`make demo` on a fresh machine: an engine with NO images at all.

The engine is a Docker-in-Docker legacy engine made this process's local engine
(:mod:`opskit.testing.localengine`): empty, with its own empty HOME (no wheelhouse cache), so
nothing this machine's warm engine or caches hold can help. The test runs exactly the commands
of the Makefile's ``demo`` target (read from the Makefile), with this checkout's opskit.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def demo_commands(makefile: Path = ROOT / "Makefile") -> list[list[str]]:
    """The ``demo`` target's recipe lines as argv lists ($(BIN)/opskit -> python -m opskit)."""
    text = makefile.read_text()
    args = re.search(r"^DEMO_ARGS \?= (.*)$", text, re.M).group(1)
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", text, re.M).group(1)
    commands = []
    for line in recipe.splitlines():
        line = line.strip().replace("$(DEMO_ARGS)", args)
        assert line.startswith("$(BIN)/opskit "), f"unexpected demo step: {line}"
        commands.append([sys.executable, "-m", "opskit", *shlex.split(line)[1:]])
    return commands


def test_demo_target_is_status_then_run_remote_on_localhost():
    assert [c[3:] for c in demo_commands()] == [
        ["status"], ["run-remote", "--host", "localhost", "lenet", "--small", "--steps", "50"]]


def test_make_demo_on_an_engine_with_no_images(empty_local_engine, tmp_path):
    engine = empty_local_engine
    assert engine.client.images.list(all=True) == []  # a fresh machine's engine
    env = {**os.environ, **engine.env(), "OPSKIT_RUNS_DIR": str(tmp_path / "runs"), "COLUMNS": "200"}
    env.pop("OPSKIT_CACHE_DIR", None)
    env.pop("XDG_CACHE_HOME", None)  # the wheelhouse cache is under the empty HOME
    status, run = (subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True,
                                  timeout=2400, check=False) for argv in demo_commands())
    assert status.returncode == 0, status.stderr
    assert re.search(r"docker +Docker 20\.10\S*, 0 images", status.stdout), status.stdout  # that engine
    assert run.returncode == 0, run.stderr[-3000:] + run.stdout[-2000:]
    log = run.stderr + run.stdout
    for made in ("base", "wheelhouse", "deps", "image"):  # a progress line for each, on the way
        assert re.search(rf"\[localhost\] .*{made}", log, re.I), f"no progress line for {made}"
    assert "[localhost] step 50/50" in log
    tags = {t for image in engine.client.images.list() for t in image.tags}
    assert "opskit-base:bookworm" in tags and any(t.startswith("opskit-deps:") for t in tags)
    [run_dir] = (tmp_path / "runs").iterdir()
    card = json.loads((run_dir / "job.json").read_text())
    assert card["state"] == "exited" and card["exit_code"] == 0 and card["collected"]["verified"]
    assert card["image"]["ref"] in tags
    assert json.loads((run_dir / "results/summary.json").read_text())["status"] == "completed"
