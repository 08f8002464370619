"""A two-host run against a one-host run on two fresh Docker-in-Docker hosts (gloo on CPU,
lenet --small, --threads 1). Prints, never asserts (issue 12 section 1):

- start-to-first-step: from ``opskit run-remote`` starting (image already on the hosts) to the
  first training step line it prints; two nodes vs one (goal: <= 1.5x);
- death-to-stop: from ``docker kill`` of one node's container to the other node's container
  having stopped (opskit's coordinated teardown; goal: <= 10 s).

Usage: python bench/multihost.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAIN = ["lenet", "--small", "--batch-size", "16", "--train-samples", "512", "--val-samples", "64",
         "--threads", "1", "--device", "cpu", "--log-every", "1"]


def first_step(env: dict, args: list[str]) -> float:
    """Seconds from starting run-remote to its first 'step ' line on stdout (the run goes on
    to its end; the figure is taken at that line)."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "opskit", "run-remote", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if seen is None and "] step " in line:
            seen = time.monotonic() - start
    proc.wait()
    if seen is None or proc.returncode != 0:
        raise SystemExit(f"run-remote {' '.join(args[:8])}... failed (exit {proc.returncode})")
    return seen


def death_to_stop(env: dict, bed, common: list[str], run_id: str) -> float:
    h1, h2 = bed.names
    proc = subprocess.Popen([sys.executable, "-m", "opskit", "run-remote", "--host", h1, "--host", h2, *common,
                             "--run-id", run_id, *TRAIN, "--steps", "100000"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    if not any("] step 5/" in line for line in proc.stdout):
        raise SystemExit(f"run {run_id} never trained (exit {proc.wait()})")
    t0 = time.monotonic()
    bed.host(h2).exec(["docker", "kill", f"opskit-run-{run_id}"])
    while True:
        code, out = bed.host(h1).exec(["docker", "inspect", "-f", "{{.State.Running}}", f"opskit-run-{run_id}"])
        if out.strip() == "false":
            took = time.monotonic() - t0
            break
        if time.monotonic() - t0 > 300:
            raise SystemExit(f"{h1}: run {run_id} still running 300 s after the other node was killed")
        time.sleep(0.1)
    proc.communicate(timeout=300)
    return took


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=2, help="runs of each kind (median)")
    args = ap.parse_args(argv)
    from opskit.hosts.engine import local_docker_client
    from opskit.images import ship as shipmod
    from opskit.images.build import BuildRequest, build_image
    from opskit.testing.dind import start_gpu_hosts

    client = local_docker_client()
    image = build_image(BuildRequest(profile="offline", tag="opskit-train:remote-tests"), client=client).tag
    with tempfile.TemporaryDirectory(prefix="opskit-bench-multi-") as tmp:
        bed = start_gpu_hosts(client, 2, workdir=str(Path(tmp) / "bed"), name_prefix="opskit-bench-mh")
        try:
            assert shipmod.ship(client, image, bed.specs()).ok
            env = {**os.environ, **bed.env(), "OPSKIT_RUNS_DIR": str(Path(tmp) / "runs")}
            h1, h2 = bed.names
            one, two = [], []
            for i in range(args.repeat):
                one.append(first_step(env, ["--host", h1, "--gpus", "0", "--image", image, "--run-id", f"b1-{i}",
                                            *TRAIN, "--steps", "3"]))
                two.append(first_step(env, ["--host", h1, "--host", h2, "--nodes", "2", "--gpus-per-node", "0",
                                            "--image", image, "--run-id", f"b2-{i}", *TRAIN, "--steps", "3"]))
            common = ["--nodes", "2", "--gpus-per-node", "0", "--image", image]
            stops = [death_to_stop(env, bed, common, f"bk-{i}") for i in range(args.repeat)]
        finally:
            bed.close()
    m1, m2, ms = statistics.median(one), statistics.median(two), statistics.median(stops)
    print(f"{'figure':<44} {'measured':>10} {'reference':>10} {'ratio':>6}  goal")
    print(f"{'start-to-first-step, 2 hosts vs 1 host':<44} {m2:>9.1f}s {m1:>9.1f}s {m2 / m1:>6.2f}  <= 1.5x "
          f"{'PASS' if m2 <= 1.5 * m1 else 'MISS'}")
    print(f"{'one node killed -> the other stopped':<44} {ms:>9.1f}s {10:>9.0f}s {ms / 10:>6.2f}  <= 10 s "
          f"{'PASS' if ms <= 10 else 'MISS'}")
    print(f"(medians of {args.repeat}; runs: 1 host {[round(x, 1) for x in one]}, 2 hosts {[round(x, 1) for x in two]}, "
          f"stops {[round(x, 1) for x in stops]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
