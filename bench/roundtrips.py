"""Round trips to the host per ``opskit run-remote``, before and after the one host-facts
gatherer, side by side in one run.

    .venv/bin/python bench/roundtrips.py [--before REV] [--local]

The same small run (lenet, 2 steps, image already on the host) is made twice against one
Docker-in-Docker GPU host over SSH (``--local``: this machine's engine, no SSH): once with the
code of git revision ``--before`` (checked out in a temporary worktree) and once with this
tree. Each run counts, in the ``opskit`` process itself, what crossed to the host:

- commands: SSH exec channels (``Transport.run``/``popen``; on localhost, processes);
- file operations: SFTP calls (stat, listdir, makedirs, open, rename, remove, sha256);
- engine requests: HTTP requests to the Docker engine (over ``docker system dial-stdio``).

The figure is the total per run (fewer is better: each one is a network round trip on a real
host); the rows say where the difference comes from.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The last commit before the facts gatherer: preflight, status and the run card each asked
# the host on their own.
BEFORE = "c40d62842580"
QUICK = ["lenet", "--small", "--steps", "2", "--batch-size", "8", "--log-every", "1",
         "--train-samples", "32", "--val-samples", "16", "--threads", "1"]

COUNTER = r"""
import collections, json, sys
counts = collections.Counter()

def wrap(cls, name, key):
    orig = getattr(cls, name, None)
    if orig is None:
        return
    def counted(self, *a, **k):
        counts[key] += 1
        return orig(self, *a, **k)
    setattr(cls, name, counted)

from opskit.hosts.local import LocalTransport
from opskit.hosts.ssh import SSHTransport
for cls in (LocalTransport, SSHTransport):
    for m in ("run", "popen"):
        wrap(cls, m, "commands")
    for m in ("stat", "listdir", "makedirs", "open", "rename", "remove", "sha256"):
        wrap(cls, m, "file operations")
import docker.api.client
wrap(docker.api.client.APIClient, "send", "engine requests")
from opskit.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("@@counts " + json.dumps({"code": code, "counts": counts}), file=sys.stderr)
"""


def counted_run(tree: Path, env: dict[str, str], argv: list[str]) -> dict[str, int]:
    res = subprocess.run([sys.executable, "-c", COUNTER, *argv], cwd=tree, capture_output=True,
                         text=True, timeout=900, env={**env, "PYTHONPATH": str(tree)})
    line = next((ln for ln in res.stderr.splitlines() if ln.startswith("@@counts ")), None)
    if line is None or json.loads(line[9:])["code"] not in (0, None):
        raise SystemExit(f"run-remote failed in {tree}:\n{res.stderr[-3000:]}")
    return json.loads(line[9:])["counts"]


def worktree(rev: str, where: Path) -> Path:
    path = where / "before"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev],
                   check=True, capture_output=True, timeout=120)
    return path


def measure(host: str, env: dict[str, str], image: str, before_tree: Path, runs: Path) -> dict:
    out = {}
    for label, tree in (("before", before_tree), ("after", ROOT)):
        run_id = f"rt-bench-{label}-{secrets.token_hex(2)}"
        argv = ["run-remote", "--host", host, "--image", image, "--run-id", run_id,
                "--runs-dir", str(runs), "--remove-remote", *QUICK]
        out[label] = counted_run(tree, env, argv)
    return out


def report(counts: dict, where: str, before: str) -> list[str]:
    keys = ["commands", "file operations", "engine requests"]
    lines = [f"round trips per run-remote ({where}); before = {before}, after = this tree",
             f"{'':<18}{'before':>8}{'after':>8}"]
    for k in keys:
        lines.append(f"{k:<18}{counts['before'].get(k, 0):>8}{counts['after'].get(k, 0):>8}")
    tb, ta = (sum(counts[x].get(k, 0) for k in keys) for x in ("before", "after"))
    lines.append(f"{'total':<18}{tb:>8}{ta:>8}   ratio after/before {ta / tb:.2f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", default=BEFORE, help=f"git revision to compare with ({BEFORE})")
    p.add_argument("--local", action="store_true", help="run on this machine's engine (no SSH)")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from opskit.hosts.engine import local_docker_client
    from opskit.images import ship as shipmod
    from opskit.images.build import BuildRequest, build_image

    client = local_docker_client()
    image = build_image(BuildRequest(profile="offline", tag="opskit-train:bench-roundtrips"),
                        client=client).tag
    with tempfile.TemporaryDirectory(prefix="opskit-rt-") as tmp:
        tmp_path = Path(tmp)
        before_tree = worktree(args.before, tmp_path)
        try:
            if args.local:
                counts = measure("localhost", dict(os.environ), image, before_tree, tmp_path / "runs")
                where = "localhost, this machine's engine"
            else:
                from opskit.testing.dind import start_gpu_hosts

                bed = start_gpu_hosts(client, 1, workdir=str(tmp_path / "bed"),
                                      name_prefix="opskit-bench-rt")
                try:
                    spec = bed.specs()[0]
                    shipped = shipmod.ship(client, image, [spec])
                    if not shipped.ok:
                        raise SystemExit(f"shipping the image failed: {shipped.failed}")
                    env = {**os.environ, **bed.env()}
                    counts = measure(spec.name, env, image, before_tree, tmp_path / "runs")
                finally:
                    bed.close()
                where = "one DinD GPU host over SSH"
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(before_tree)], capture_output=True, timeout=120)
    print("\n".join(report(counts, where, args.before)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
