"""What the Slurm test cluster (opskit.testing.slurm) costs: image build, start, removal, and
how fast Slurm notices a lost node (prints, never asserts).

Reference for the start: two DinD GPU hosts of opskit.testing.dind (what the compute nodes are
without Slurm), started in the same run. Reference for a lost node: slurm.conf's SlurmdTimeout.
``--cold`` first removes this recipe's two Slurm image tags (only those: opskit-slurm:login-*,
opskit-slurm:node-* of the current recipe), so the build is measured from the GPU-host and
SSH-host images up.

Usage: python bench/slurmbed.py [-n RUNS] [--cold]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time


def timed(fn, *args, **kwargs):
    start = time.monotonic()
    value = fn(*args, **kwargs)
    return value, time.monotonic() - start


def _remove_images(client, tags) -> bool:
    """Remove the tags; False (measured as found) when one is in use by a container."""
    from docker.errors import APIError

    for tag in tags:
        try:
            client.images.remove(tag)
        except APIError as exc:
            print(f"{tag} not removed ({exc.explanation}): the build is measured as found")
            return False
    return True


def main() -> int:
    from opskit.hosts.engine import local_docker_client
    from opskit.testing.dind import start_gpu_hosts
    from opskit.testing.slurm import SLURMD_TIMEOUT, slurm_images, start_slurm_cluster

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--runs", type=int, default=3)
    parser.add_argument("--cold", action="store_true", help="rebuild the Slurm images first")
    args = parser.parse_args()
    client = local_docker_client()
    cold = args.cold and _remove_images(client, slurm_images(client))
    tags, build = timed(slurm_images, client)
    print(f"images {', '.join(tags)}: {build:.1f} s ({'cold' if cold else 'as found'})")
    starts, refs, closes = [], [], []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="opskit-bench-slurm-") as tmp:
            bed, secs = timed(start_gpu_hosts, client, 2, workdir=f"{tmp}/ref",
                              name_prefix="opskit-bench-ref")
            refs.append(secs)
            bed.close()
            cluster, secs = timed(start_slurm_cluster, client, workdir=f"{tmp}/slurm",
                                  name_prefix="opskit-bench-slurm")
            starts.append(secs)
            _, secs = timed(cluster.close)
            closes.append(secs)
    start, ref = statistics.median(starts), statistics.median(refs)
    print(f"start to both nodes idle: {start:.1f} s median of {args.runs} "
          f"(reference: 2 DinD GPU hosts {ref:.1f} s; {start / ref:.2f}x); removal "
          f"{statistics.median(closes):.1f} s")
    with tempfile.TemporaryDirectory(prefix="opskit-bench-slurm-") as tmp:
        cluster = start_slurm_cluster(client, workdir=f"{tmp}/slurm", name_prefix="opskit-bench-slurm")
        try:
            node = cluster.nodes[1]
            begin = time.monotonic()
            cluster.stop_slurmd(node)
            cluster.wait_node_state(node, "idle*")
            gone = time.monotonic() - begin
            cluster.wait_node_state(node, "down")
            down = time.monotonic() - begin
            _, back = timed(cluster.start_slurmd, node)
        finally:
            cluster.close()
    print(f"slurmd stopped: not responding after {gone:.1f} s, DOWN after {down:.1f} s "
          f"(reference: SlurmdTimeout {SLURMD_TIMEOUT} s); idle again {back:.1f} s after restart")
    return 0


if __name__ == "__main__":
    sys.exit(main())
