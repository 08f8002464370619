"""The fault-injection suite at CI size (issue 11): each fault type injected once at a random
point against a real sshd + Docker-in-Docker host of the suite's own; every count but the
injections must be 0. The full size (20 per fault, >= 300 in all) is ``bench/faults.py``.
About 3 minutes on 2 cores (one host start, 18 trials)."""

from __future__ import annotations

import os

from opskit.testing.faults import FAULTS, run_suite
from opskit.testing.faultworld import COUNTS, start_world


def test_every_fault_injected_and_nothing_lost_leaked_or_trusted(docker_client, base_image, tmp_path):
    per_fault = int(os.environ.get("OPSKIT_FAULTS_PER_FAULT", "1"))
    world = start_world(docker_client, base_image, tmp_path, seed=int(os.environ.get("OPSKIT_FAULTS_SEED", "7")))
    try:
        results = run_suite(world, per_fault)
    finally:
        world.proxy.close()
        world.bed.close()
    assert set(results) == set(FAULTS)
    missing = [f for f, c in results.items() if c.injections < per_fault]
    assert not missing, f"faults never injected: {missing}"
    bad = {f: {k: getattr(c, k) for k in COUNTS[1:] if getattr(c, k)} for f, c in results.items() if c.bad()}
    notes = {f: c.notes[:3] for f, c in results.items() if c.bad()}
    assert not bad, f"non-zero counts: {bad}; notes: {notes}"
