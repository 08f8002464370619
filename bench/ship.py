"""Figures for ``opskit ship``, side by side in one run for each image store of the receiving host
(Docker-in-Docker hosts over SSH: Docker 20.10 legacy store, Docker 26 containerd store), and for
each sending engine (this machine's, legacy store; a Docker 26 containerd-store engine in a
container, made the local engine).

    .venv/bin/python bench/ship.py [--repeat 5] [--stores legacy,containerd] [--senders legacy,containerd]

Builds two images of a small project (offline profile) that differ by one line of code (copied
to the containerd-store sender), and ships them. Prints, per sender and receiving store, with
the issue's targets:
1. cold ship: bytes on the wire vs the raw ``docker save`` archive (target <= 0.55x);
2. second deploy after a one-line code change: bytes and wall time vs a full
   ``docker save | ssh host docker load`` of the same image (targets <= 0.1%, <= 10%);
3. re-ship with nothing changed vs an SSH no-op (connect + ``true``) (target <= 1.5x), beside
   the same re-ship asking the host's docker CLI (the path before the engine API over SSH, and
   the fallback where the sshd forbids stream-local forwarding);
4. how many ships fell back to the full archive, and why (goal: 0).
Timings on a shared 2-core machine are noisy: compare within one run only.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
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


@dataclass
class Figures:
    store: str
    rows: dict[str, tuple[str, str, float, str, bool]] = field(default_factory=dict)
    ships: int = 0
    fallbacks: list[str] = field(default_factory=list)
    asked_via: list[str] = field(default_factory=list)  # how each timed re-ship asked the host


def timed_ship(client, ref: str, spec, figs: Figures) -> tuple[shipmod.ShipResult, float]:
    start = time.monotonic()
    result = shipmod.ship(client, ref, [spec])
    wall = time.monotonic() - start
    if not result.ok:
        raise SystemExit(f"ship failed: {result.failed}")
    r = result.outcomes[0].value
    figs.ships += 1
    if r.fallback:
        figs.fallbacks.append(r.fallback)
    return r, wall


def ssh_noop(spec) -> float:
    start = time.monotonic()
    t = connect(spec)
    try:
        t.run(["true"], check=True)
    finally:
        t.close()
    return time.monotonic() - start


def measure(client, spec, v1: str, v2: str, repeat: int, figs: Figures) -> None:
    cold, _ = timed_ship(client, v1, spec, figs)
    figs.rows["cold ship: wire bytes vs raw archive"] = (
        f"{cold.wire_bytes:,}", f"{cold.raw_bytes:,}", cold.wire_bytes / cold.raw_bytes, "<= 0.55",
        cold.wire_bytes <= 0.55 * cold.raw_bytes)
    t = connect(spec)
    try:
        full_bytes, full_wall = full_save_load(client, v2, t)
        remove_on_host(t, v2)
    finally:
        t.close()
    delta, delta_wall = timed_ship(client, v2, spec, figs)
    if delta.mode != "delta":
        figs.fallbacks.append(f"the one-line change shipped as {delta.mode!r}, not as a delta")
    figs.rows["1-line change: bytes vs full"] = (
        f"{delta.wire_bytes:,}", f"{full_bytes:,}", delta.wire_bytes / full_bytes, "<= 0.001",
        delta.wire_bytes <= 0.001 * full_bytes)
    figs.rows["1-line change: wall time vs full"] = (
        f"{delta_wall:.2f}s", f"{full_wall:.2f}s", delta_wall / full_wall, "<= 0.10", delta_wall <= 0.10 * full_wall)
    noops, reships, by_cli = [], [], []
    for _ in range(repeat):
        noops.append(ssh_noop(spec))
        r, wall = timed_ship(client, v2, spec, figs)
        reships.append(wall)
        figs.asked_via.append(r.checked_via)
        with cli_only():
            by_cli.append(timed_ship(client, v2, spec, figs)[1])
    noop, reship, cli = statistics.median(noops), statistics.median(reships), statistics.median(by_cli)
    figs.rows["re-ship unchanged vs SSH no-op"] = (
        f"{reship * 1000:.0f}ms", f"{noop * 1000:.0f}ms", reship / noop, "<= 1.5", reship <= 1.5 * noop)
    figs.rows["  same, host asked by the docker CLI"] = (
        f"{cli * 1000:.0f}ms", f"{noop * 1000:.0f}ms", cli / noop, "(the path before)", cli <= 1.5 * noop)


@contextlib.contextmanager
def cli_only():
    """Re-ships that ask the host's docker CLI, as every re-ship did before the engine API over
    SSH (and as one still does where the sshd forbids stream-local forwarding)."""
    from opskit.hosts.streamlocal import StreamLocalRefused
    from opskit.images import shipcheck

    def refuse(transport, image):
        raise StreamLocalRefused("bench: the docker CLI path, for comparison")

    saved = shipcheck.ours_via_api
    shipcheck.ours_via_api = refuse
    try:
        yield
    finally:
        shipcheck.ours_via_api = saved


def bench_store(client, sending, store: str, tmp: Path, v1: str, v2: str, repeat: int) -> Figures:
    """One fresh host on ``store`` (started on this machine's engine ``client``), fed from the
    engine ``sending``."""
    from opskit.testing.dind import start_gpu_hosts

    figs = Figures(store)
    bed = start_gpu_hosts(client, 1, workdir=str(tmp / f"bed-{store}"), name_prefix=f"opskit-bench-{store[:2]}",
                          engine=store)
    try:
        measure(sending, bed.specs()[0], v1, v2, repeat, figs)
    finally:
        bed.close()
    return figs


def report(sender: str, all_figs: list[Figures]) -> list[str]:
    head = f"{'from a ' + sender + ' store engine':<38}" + "".join(
        f" | {'to ' + f.store + ': opskit':>22} {'baseline':>14} {'ratio':>8}  {'':4}" for f in all_figs)
    lines = [head + "  target"]
    for name in all_figs[0].rows:
        line = f"{name:<38}"
        target = ""
        for f in all_figs:
            ours, base, ratio, target, ok = f.rows[name]
            line += f" | {ours:>22} {base:>14} {ratio:>8.3g}  {'PASS' if ok else 'MISS'}"
        lines.append(line + f"  {target}")
    for f in all_figs:
        why = "; ".join(f.fallbacks) if f.fallbacks else "none"
        lines.append(f"{sender} -> {f.store}: {len(f.fallbacks)} of {f.ships} ships fell back to the full archive "
                     f"(goal 0): {why}")
        via = {v: f.asked_via.count(v) for v in dict.fromkeys(f.asked_via)}
        lines.append(f"{sender} -> {f.store}: timed re-ships asked the host by: "
                     + ", ".join(f"{v} {n} of {len(f.asked_via)}" for v, n in via.items()))
    return lines


def senders(client, names: list[str], v1: str, v2: str):
    """(name, docker-py client) of each sending engine; the containerd one gets copies of both
    images (docker save | docker load) and is removed afterwards."""
    for name in names:
        if name == "legacy":
            yield name, client
            continue
        from opskit.testing.localengine import copy_image, start_local_engine

        engine = start_local_engine(client, name)
        try:
            for ref in (v1, v2):
                copy_image(client, engine, ref)
            yield name, engine.client
        finally:
            engine.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="no-op comparisons (median)")
    ap.add_argument("--stores", default="legacy,containerd", help="receiving hosts' image stores, in order")
    ap.add_argument("--senders", default="legacy,containerd", help="sending engines' image stores, in order")
    args = ap.parse_args(argv)
    from opskit.hosts.engine import local_docker_client

    client = local_docker_client()
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="opskit-bench-ship-") as tmpdir:
        tmp = Path(tmpdir)
        v1, v2 = build(client, tmp, 1), build(client, tmp, 2)
        for sender, sending in senders(client, args.senders.split(","), v1, v2):
            local = shipmod.local_image(sending, v1)
            print(f"sending engine: {local.store} image store; images {v1}, {v2}", flush=True)
            (tmp / sender).mkdir()
            figs = [bench_store(client, sending, store, tmp / sender, v1, v2, args.repeat)
                    for store in args.stores.split(",")]
            lines += [*report(sender, figs), ""]
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
