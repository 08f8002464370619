"""Fan-out cost: one host vs N sshd hosts (real containers on 127.0.0.1). Prints, never asserts.

Targets (issue 2): status of 16 hosts takes <= 2x the wall time of one host, and the client
spends <= 5 ms of CPU per host. Times ``opskit.checks.status.snapshot`` (one round trip per
host). Client CPU is this process's CPU time (all threads) per host.
Usage: python bench/fanout.py [--hosts 16] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any


def container_cpu_seconds(container: Any) -> float | None:
    """CPU seconds a container has used (cgroup v1 or v2 files), None if unreadable."""
    cid = container.id
    candidates = [
        (f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage", 1e-9),
        (f"/sys/fs/cgroup/cpu,cpuacct/docker/{cid}/cpuacct.usage", 1e-9),
        (f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat", 1e-6),
    ]
    for path, scale in candidates:
        try:
            with open(path) as fh:
                text = fh.read()
        except OSError:
            continue
        if path.endswith("cpu.stat"):
            text = next(line.split()[1] for line in text.splitlines() if line.startswith("usage_usec"))
        return int(text.strip()) * scale
    return None


def servers_cpu(bed: Any) -> float | None:
    values = [container_cpu_seconds(h.container) for h in bed.hosts]
    return None if any(v is None for v in values) else sum(values)  # type: ignore[arg-type]


def measure(specs: list, fn: Callable[[Any], Any], repeat: int, bed: Any = None
            ) -> tuple[float, float, float | None]:
    """Median wall seconds, client CPU seconds and servers' CPU seconds of one fan-out."""
    from opskit.hosts.group import run_on_hosts

    walls, cpus, servers = [], [], []
    for _ in range(repeat):
        srv0 = servers_cpu(bed) if bed else None
        cpu0, t0 = time.process_time(), time.perf_counter()
        result = run_on_hosts(specs, fn)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - cpu0)
        srv1 = servers_cpu(bed) if bed else None
        if srv0 is not None and srv1 is not None:
            servers.append(srv1 - srv0)
        if not result.ok:
            raise SystemExit(f"fan-out failed: {result.failed}")
    server = statistics.median(servers) if servers else None
    return statistics.median(walls), statistics.median(cpus), server


def connect_cpu(specs: list, repeat: int) -> float:
    """Client CPU per host for connecting (key exchange + auth) and closing, nothing else."""
    return measure(specs, lambda t: t.client(), repeat)[1] / len(specs)


def report(n: int, one: tuple, many: tuple, conn: float) -> None:
    (wall1, cpu1, _), (walln, cpun, srvn) = one, many
    per_host = cpun / n
    print(f"  1 host : wall {wall1 * 1000:7.1f} ms   client CPU {cpu1 * 1000:6.2f} ms")
    print(f"  {n} hosts: wall {walln * 1000:7.1f} ms   client CPU {cpun * 1000:6.2f} ms "
          f"= {per_host * 1000:.2f} ms/host (of which connect+auth {conn * 1000:.2f} ms)")
    if srvn is not None:
        cores = os.cpu_count() or 1
        floor = (cpun + srvn) / cores
        print(f"  the {n} sshd containers used {srvn * 1000:.1f} ms CPU ({srvn * 1000 / n:.1f} "
              f"ms/host); with the client's, {n} hosts need >= {floor * 1000:.0f} ms wall on "
              f"{cores} cores that they share (= {floor / wall1:.2f}x one host)")
    ratio = walln / wall1
    print(f"targets: {n} hosts <= 2x one -> {'met' if ratio <= 2 else 'NOT met'} "
          f"({ratio:.2f}x); <= 5 ms CPU/host -> {'met' if per_host <= 0.005 else 'NOT met'} "
          f"({per_host * 1000:.2f} ms)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from opskit.checks.status import snapshot
    from opskit.hosts.engine import local_docker_client
    from opskit.images.base import default_tag
    from opskit.testing.sshd import start_ssh_hosts

    client = local_docker_client()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir, start_ssh_hosts(
        client, args.hosts, workdir=workdir, name_prefix="opskit-bench", base_image=default_tag()
    ) as bed:
        print(f"{args.hosts} sshd containers up in {time.perf_counter() - t0:.1f}s; "
              f"workload: status snapshot; median of {args.repeat} runs")
        specs = bed.specs()
        measure(specs, snapshot, 1)  # warm: imports, page cache, sshd's first forks
        one = measure(specs[:1], snapshot, args.repeat, bed)
        many = measure(specs, snapshot, args.repeat, bed)
        conn = connect_cpu(specs, args.repeat)
    report(args.hosts, one, many, conn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
