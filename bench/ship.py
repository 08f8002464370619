"""Figures for ``opskit ship``, side by side in one run against a Docker-in-Docker host over SSH.

    .venv/bin/python bench/ship.py [--repeat 5]

Builds two images of a small project (offline profile) that differ by one line of code.

Prints, with the issue's targets:
1. cold ship: bytes on the wire vs the raw ``docker save`` archive (target <= 0.55x);
2. second deploy after a one-line code change: bytes and wall time vs a full
   ``docker save | ssh host docker load`` of the same image (targets <= 0.1%, <= 10%);
3. re-ship with nothing changed vs an SSH no-op (connect + ``true``) (target <= 1.5x).
Timings on a shared 2-core machine are noisy: compare within one run only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from opskit.hosts.group import connect
from opskit.images import ship as shipmod


def full_save_load(client, ref: str, transport) -> tuple[int, float]:
    """The baseline: ``docker save REF | ssh HOST docker load`` (raw bytes, seconds)."""
    start = time.monotonic()
    proc = transport.popen(["docker", "load"])
    sent = 0
    for chunk in client.api.get_image(ref, chunk_size=1 << 20):
        proc.stdin.write(chunk)
        sent += len(chunk)
    proc.stdin.close()
    out = proc.stdout.read()
    code = proc.wait(600)
    if code != 0:
        raise SystemExit(f"baseline docker load failed ({code}): {out[-500:]!r}")
    return sent, time.monotonic() - start


def remove_on_host(transport, ref: str) -> None:
    transport.run(["docker", "image", "rm", "-f", ref], timeout=300)
    transport.run(["docker", "image", "prune", "-f"], timeout=300)


def project(tmp: Path, value: int) -> str:
    root = tmp / f"proj{value}"
    (root / "src").mkdir(parents=True)
    (root / "test").mkdir()
    (root / "src" / "settings.py").write_text(f"VALUE = {value}\n")
    (root / "test" / "test_settings.py").write_text("def test_value():\n    assert True\n")
    return str(root)


def build(client, tmp: Path, value: int) -> str:
    from opskit.images.build import BuildRequest, build_image

    req = BuildRequest(project=project(tmp, value), profile="offline", tag=f"opskit-bench-ship:v{value}")
    return build_image(req, client=client).tag


def timed_ship(client, ref: str, spec) -> tuple[shipmod.ShipResult, float]:
    start = time.monotonic()
    result = shipmod.ship(client, ref, [spec])
    wall = time.monotonic() - start
    if not result.ok:
        raise SystemExit(f"ship failed: {result.failed}")
    return result.outcomes[0].value, wall


def ssh_noop(spec) -> float:
    start = time.monotonic()
    t = connect(spec)
    try:
        t.run(["true"], check=True)
    finally:
        t.close()
    return time.monotonic() - start


def row(name: str, ours: str, base: str, ratio: float, target: str, ok: bool) -> str:
    return f"{name:<34} {ours:>14} {base:>14} {ratio:>9.3g}  {target:<8} {'PASS' if ok else 'MISS'}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="no-op comparisons (median)")
    args = ap.parse_args(argv)
    from opskit.hosts.engine import local_docker_client
    from opskit.testing.dind import start_gpu_hosts

    client = local_docker_client()
    with tempfile.TemporaryDirectory(prefix="opskit-bench-ship-") as tmpdir:
        tmp = Path(tmpdir)
        v1, v2 = build(client, tmp, 1), build(client, tmp, 2)
        bed = start_gpu_hosts(client, 1, workdir=str(tmp / "bed"), base_image="opskit-base:bookworm",
                              name_prefix="opskit-bench")
        try:
            spec = bed.specs()[0]
            lines = measure(client, spec, v1, v2, args.repeat)
        finally:
            bed.close()
    print(f"{'figure':<34} {'opskit':>14} {'baseline':>14} {'ratio':>9}  target")
    for line in lines:
        print(line)
    return 0


def measure(client, spec, v1: str, v2: str, repeat: int) -> list[str]:
    lines = []
    cold, cold_wall = timed_ship(client, v1, spec)
    lines.append(row("cold ship: wire bytes vs raw archive", f"{cold.wire_bytes:,}", f"{cold.raw_bytes:,}",
                     cold.wire_bytes / cold.raw_bytes, "<= 0.55", cold.wire_bytes <= 0.55 * cold.raw_bytes))
    lines.append(f"{'  (cold ship wall time)':<34} {cold_wall:>13.2f}s")
    t = connect(spec)
    try:
        full_bytes, full_wall = full_save_load(client, v2, t)
        remove_on_host(t, v2)
    finally:
        t.close()
    delta, delta_wall = timed_ship(client, v2, spec)
    lines.append(row("1-line change: bytes vs full", f"{delta.wire_bytes:,}", f"{full_bytes:,}",
                     delta.wire_bytes / full_bytes, "<= 0.001", delta.wire_bytes <= 0.001 * full_bytes))
    lines.append(row("1-line change: wall time vs full", f"{delta_wall:.2f}s", f"{full_wall:.2f}s",
                     delta_wall / full_wall, "<= 0.10", delta_wall <= 0.10 * full_wall))
    noops, reships = [], []
    for _ in range(repeat):
        noops.append(ssh_noop(spec))
        reships.append(timed_ship(client, v2, spec)[1])
    noop, reship = statistics.median(noops), statistics.median(reships)
    lines.append(row("re-ship unchanged vs SSH no-op", f"{reship * 1000:.0f}ms", f"{noop * 1000:.0f}ms",
                     reship / noop, "<= 1.5", reship <= 1.5 * noop))
    return lines


if __name__ == "__main__":
    sys.exit(main())
