"""How long the first `make demo` takes on a fresh machine, beside a second (warm) one. Prints.

"Fresh" is an engine with NO images and an empty HOME (no wheelhouse cache): a Docker-in-Docker
legacy engine made the local engine (opskit.testing.localengine), never this machine's own
warm one. Runs exactly the Makefile's demo commands (``opskit status``, then ``opskit
run-remote --host localhost lenet --small --steps 50``) with this checkout's opskit, twice on
that engine; the second run is the reference (everything reused). Phases are read from the
progress lines (``build deps: done in 83.4s``). The engine is removed afterwards.
Usage: python bench/demo.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PHASE = re.compile(r"\] (?:build )?(base|wheelhouse|deps|image)\b.*?(?:done|made|built) in ([\d.]+)s")


def demo_commands() -> list[list[str]]:
    text = (ROOT / "Makefile").read_text()
    args = re.search(r"^DEMO_ARGS \?= (.*)$", text, re.M).group(1)
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", text, re.M).group(1)
    return [[sys.executable, "-m", "opskit", *line.strip().replace("$(DEMO_ARGS)", args).split()[1:]]
            for line in recipe.splitlines()]


def run_demo(env: dict[str, str]) -> tuple[float, dict[str, float], str]:
    """Wall time of the demo's commands, the phases they reported, and the log."""
    start, log = time.perf_counter(), ""
    for argv in demo_commands():
        proc = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
        log += proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(argv[3:])} failed ({proc.returncode}):\n{log[-3000:]}")
    phases = {name: float(sec) for name, sec in PHASE.findall(log)}
    return time.perf_counter() - start, phases, log


def main() -> int:
    from opskit.hosts.engine import local_docker_client
    from opskit.testing.engine import configure_testcontainers
    from opskit.testing.localengine import start_local_engine

    configure_testcontainers()
    engine = start_local_engine(local_docker_client(), "legacy")
    try:
        runs = Path(tempfile.mkdtemp(prefix="opskit-bench-demo-"))
        env = {**os.environ, **engine.env(), "OPSKIT_RUNS_DIR": str(runs), "COLUMNS": "200"}
        for key in ("OPSKIT_CACHE_DIR", "XDG_CACHE_HOME"):
            env.pop(key, None)
        first, phases, _ = run_demo(env)
        images = len(engine.client.images.list())
        second, _, _ = run_demo(env)
    finally:
        engine.close()
    print(f"engine: empty Docker 20.10 (DinD), {os.cpu_count()} CPUs")
    print(f"first make demo (nothing there):   {first:7.1f} s  ({images} images made)")
    for name, sec in phases.items():
        print(f"  {name:<12} {sec:7.1f} s")
    print(f"second make demo (all reused):     {second:7.1f} s  (reference)")
    print(f"first / second: {first / second:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
