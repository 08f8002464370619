"""Fan-out cost: one host vs N sshd hosts (real containers on 127.0.0.1). Prints, never asserts.

Real hosts have their own CPUs and sit a network away; here 16 containers share this machine's
cores. So every connection goes through a small delaying TCP proxy on loopback (this kernel has
no netem), run in its own process: each direction of each connection is held RTT/2, in order.
Figures, each next to its goal (issue 10 section 4):

- ``status`` of 16 hosts vs one at 50 ms RTT: goal <= 1.3x;
- client CPU per host (this process, all threads): goal <= 5 ms (7.7 ms before);
- ``status`` of one host whose ``df`` hangs (a stand-in df first in the login PATH of one
  container): returns within the df section's limit + 1 s, every other section filled, and no
  df left running on the host.

Usage: python bench/fanout.py [--hosts 16] [--repeat 5] [--rtt-ms 50]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HUNG_DF = "#!/bin/sh\n# bench: a df blocked on a dead network mount\nexec sleep 300\n"


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


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(specs: list, fn: Callable[[Any], Any], repeat: int,
            others: Callable[[], float | None] | None = None
            ) -> tuple[float, float, float | None]:
    """Median wall seconds, client CPU seconds and the other processes' CPU seconds (the sshd
    containers and the proxy, when ``others`` reads them) of one fan-out."""
    from opskit.hosts.group import run_on_hosts

    walls, cpus, servers = [], [], []
    for _ in range(repeat):
        srv0 = others() if others else None
        cpu0, t0 = time.process_time(), time.perf_counter()
        result = run_on_hosts(specs, fn)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - cpu0)
        srv1 = others() if others else None
        if srv0 is not None and srv1 is not None:
            servers.append(srv1 - srv0)
        if not result.ok:
            raise SystemExit(f"fan-out failed: {result.failed}")
    server = statistics.median(servers) if servers else None
    return statistics.median(walls), statistics.median(cpus), server


def alternate(specs: list, fn: Callable[[Any], Any], repeat: int,
              others: Callable[[], float | None]) -> tuple[tuple, tuple]:
    """One host and all hosts measured in turns (medians of each), so that the load other
    users put on this shared machine falls on both figures alike."""
    ones, manys = [], []
    for _ in range(repeat):
        ones.append(measure(specs[:1], fn, 1, others))
        manys.append(measure(specs, fn, 1, others))

    def med(rows: list[tuple]) -> tuple:
        return tuple(None if any(r[i] is None for r in rows) else
                     statistics.median(r[i] for r in rows) for i in range(3))

    return med(ones), med(manys)


def connect_cpu(specs: list, repeat: int) -> float:
    """Client CPU per host for connecting (key exchange + auth) and closing, nothing else."""
    return measure(specs, lambda t: t.client(), repeat)[1] / len(specs)


# -- the delaying proxy (runs in its own process: its CPU is not the client's) --------------------
async def _pump(reader: Any, writer: Any, delay: float) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    async def read() -> None:
        while True:
            data = await reader.read(65536)
            await queue.put((loop.time() + delay, data))
            if not data:
                return

    async def write() -> None:
        while True:
            due, data = await queue.get()
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(read(), write())
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _serve(pairs: list[tuple[int, int]], delay: float) -> None:
    async def handler(target: int, reader: Any, writer: Any) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", target)
        await asyncio.gather(_pump(reader, up_w, delay), _pump(up_r, writer, delay))

    servers = [await asyncio.start_server(lambda r, w, t=target: handler(t, r, w), "127.0.0.1", port)
               for port, target in pairs]
    print("ready", flush=True)
    await asyncio.gather(*(srv.serve_forever() for srv in servers))


def start_proxy(targets: list[int], rtt: float) -> tuple[subprocess.Popen, list[int]]:
    """A proxy process: one free loopback port per target port, RTT/2 each way."""
    import socket

    ports = []
    for _ in targets:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports.append(sock.getsockname()[1])
    spec = ",".join(f"{p}:{t}" for p, t in zip(ports, targets, strict=True))
    proc = subprocess.Popen([sys.executable, __file__, "--serve-proxy", spec, "--rtt-ms",
                             str(rtt * 1000)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc, ports


def proxied(bed: Any, ports: list[int], workdir: str) -> list:
    """The bed's specs pointed at the proxy ports, with known_hosts lines for those ports."""
    known = Path(workdir) / "known_hosts_proxied"
    lines = [f"[127.0.0.1]:{port} {key}" for h, port in zip(bed.hosts, ports, strict=True)
             for key in h.host_keys]
    known.write_text("\n".join(lines) + "\n")
    return [dataclasses.replace(s, port=p, known_hosts=(str(known),))
            for s, p in zip(bed.specs(), ports, strict=True)]


# -- figures --------------------------------------------------------------------------------------
def report(n: int, rtt: float, one: tuple, many: tuple, conn: float) -> None:
    (wall1, cpu1, srv1), (walln, cpun, srvn) = one, many
    per_host = cpun / n
    print(f"  1 host : wall {wall1 * 1000:7.1f} ms   client CPU {cpu1 * 1000:6.2f} ms")
    print(f"  {n} hosts: wall {walln * 1000:7.1f} ms   client CPU {cpun * 1000:6.2f} ms "
          f"= {per_host * 1000:.2f} ms/host (of which connect+auth {conn * 1000:.2f} ms)")
    if srvn is not None and srv1 is not None:
        cores = os.cpu_count() or 1
        extra = ((cpun + srvn) - (cpu1 + srv1)) / cores
        print(f"  sshd containers + proxy used {srvn * 1000:.1f} ms CPU ({srvn * 1000 / n:.1f} "
              f"ms/host); the CPU of the {n - 1} other hosts, spread over the {cores} cores "
              f"this machine shares with them, adds >= {extra * 1000:.0f} ms: floor here "
              f"~{(wall1 + extra) / wall1:.2f}x (hosts with their own CPUs: 1x)")
    ratio = walln / wall1
    print(f"figure: status of {n} hosts / 1 host at {rtt * 1000:.0f} ms RTT = {ratio:.2f}x "
          f"(goal <= 1.3x: {'met' if ratio <= 1.3 else 'NOT met'})")
    print(f"figure: client CPU per host = {per_host * 1000:.2f} ms (goal <= 5 ms, 7.7 ms before: "
          f"{'met' if per_host <= 0.005 else 'NOT met'})")


def hung_df_figure(bed: Any, spec: Any) -> None:
    """status of one host whose df hangs: wall vs the df limit + 1 s, sections filled."""
    from opskit.checks.sections import DF_TIMEOUT
    from opskit.checks.status import snapshot
    from opskit.hosts.group import connect

    host = bed.hosts[0]
    code, out = host.exec(["sh", "-c", f"printf '{HUNG_DF}' > /usr/local/bin/df && "
                           "chmod 755 /usr/local/bin/df"])
    if code != 0:
        raise SystemExit(f"cannot place the stand-in df: {out}")
    try:
        t = connect(spec)
        t0 = time.perf_counter()
        snap = snapshot(t)
        wall = time.perf_counter() - t0
        t.close()
        _, left = host.exec(["sh", "-c", "pgrep -fx 'sleep 300' || true"])
    finally:
        host.exec(["rm", "-f", "/usr/local/bin/df"])
    d = snap.to_dict()
    filled = [k for k in ("hostname", "os", "kernel", "load", "memory", "top_processes", "docker")
              if d[k] is not None]
    limit = DF_TIMEOUT + 1
    print(f"figure: status with a hung df = {wall:.2f} s (goal <= df limit {DF_TIMEOUT} s + 1 s "
          f"= {limit} s: {'met' if wall <= limit else 'NOT met'}); disks: "
          f"{d['section_errors'].get('disks', {}).get('message')}; filled: {', '.join(filled)}; "
          f"df left running on the host: {'yes ' + left.split()[0] if left.strip() else 'none'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rtt-ms", type=float, default=50.0)
    parser.add_argument("--serve-proxy", help=argparse.SUPPRESS)
    args = parser.parse_args()
    rtt = args.rtt_ms / 1000
    if args.serve_proxy:
        pairs = [tuple(int(x) for x in p.split(":")) for p in args.serve_proxy.split(",")]
        asyncio.run(_serve(pairs, rtt / 2))  # type: ignore[arg-type]
        return 0

    from opskit.checks.status import snapshot
    from opskit.hosts.engine import local_docker_client
    from opskit.images.base import default_tag
    from opskit.testing.sshd import start_ssh_hosts

    client = local_docker_client()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir, start_ssh_hosts(
        client, args.hosts, workdir=workdir, name_prefix="opskit-bench", base_image=default_tag()
    ) as bed:
        proxy, ports = start_proxy([h.port for h in bed.hosts], rtt)
        try:
            print(f"{args.hosts} sshd containers up in {time.perf_counter() - t0:.1f}s behind a "
                  f"{args.rtt_ms:.0f} ms RTT proxy; workload: status snapshot; median of "
                  f"{args.repeat} runs, 1 host and {args.hosts} hosts in turns")
            specs = proxied(bed, ports, workdir)
            def others() -> float | None:
                servers = servers_cpu(bed)
                return None if servers is None else servers + process_cpu(proxy.pid)

            measure(specs, snapshot, 1)  # warm: imports, page cache, sshd's first forks
            one, many = alternate(specs, snapshot, args.repeat, others)
            conn = connect_cpu(specs, args.repeat)
            report(args.hosts, rtt, one, many, conn)
            hung_df_figure(bed, specs[0])
        finally:
            proxy.kill()
            proxy.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
