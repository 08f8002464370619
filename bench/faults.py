"""Fault-injection suite (issue 11): every fault type injected at random points against a real
sshd + Docker-in-Docker host of its own (loopback and containers it creates only), opskit
re-run until fully verified, counts printed per fault. Goal: 0 in every column but injections.

    python bench/faults.py                 # full size: 20 injections per fault (>= 300 in all)
    python bench/faults.py --per-fault 2   # the size CI runs (tests/integration/test_faults.py)

Needs a Docker engine and the offline base image (made on first use). Runs as root (the
"disk full" faults mount tmpfs inside the test host and in a private mount namespace here).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opskit.testing.faults import FAULTS, run_suite  # noqa: E402
from opskit.testing.faultworld import COUNTS, Counts, start_world  # noqa: E402

SHORT = {"injections": "inj", "results_lost": "lost", "unverified_at_final_path": "unverif",
         "writes_outside_destination": "outside", "host_keys_accepted_wrongly": "keys",
         "injected_commands_executed": "cmds", "duplicate_jobs": "dup", "leaked_containers": "leak",
         "runs_needing_more_than_one_rerun": ">1rerun"}


def table(results: dict[str, Counts]) -> str:
    head = f"{'fault':30}" + "".join(f"{SHORT[k]:>9}" for k in COUNTS)
    rows = [head]
    total = Counts()
    for fault, c in results.items():
        rows.append(f"{fault:30}" + "".join(f"{getattr(c, k):>9}" for k in COUNTS))
        for k in COUNTS:
            setattr(total, k, getattr(total, k) + getattr(c, k))
    rows.append(f"{'TOTAL':30}" + "".join(f"{getattr(total, k):>9}" for k in COUNTS))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-fault", type=int, default=20)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--fault", action="append", choices=FAULTS, help="only these faults (repeatable)")
    args = ap.parse_args(argv)
    import docker

    from opskit.images.base import BaseRequest, bootstrap, default_tag

    client = docker.from_env(timeout=600)
    base = default_tag()
    bootstrap(client, BaseRequest(tag=base))
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="opskit-faults-") as tmp:
        world = start_world(client, base, Path(tmp), args.seed)
        try:
            def progress(fault: str, c: Counts) -> None:
                print(f"  {fault}: {c.injections} injections, {c.bad()} bad ({time.monotonic() - start:.0f}s)",
                      file=sys.stderr, flush=True)
            results = run_suite(world, args.per_fault, tuple(args.fault or FAULTS), progress)
        finally:
            world.proxy.close()
            world.bed.close()
    print(table(results))
    total = sum(c.injections for c in results.values())
    bad = sum(c.bad() for c in results.values())
    print(f"injections: {total} (reference: >= 300 at full size); non-zero counts: {bad} (reference: 0); "
          f"{time.monotonic() - start:.0f}s")
    for fault, c in results.items():
        for note in c.notes[:5]:
            print(f"note {fault}: {note}")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
