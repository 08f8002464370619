"""Helpers shared by the integration tests: opskit df / ps / status (local, over SSH and on
Docker-in-Docker GPU hosts) and the CLI runs of the remote-training tests. Import as
``from _helpers import ...`` (pytest puts this folder on ``sys.path``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SLACK = 256 * 1024 * 1024


def parse_df_b1(text: str) -> dict[str, tuple[int, int, int]]:
    """``df -B1 -P`` output -> {mount: (size, used, free)} in bytes."""
    rows = {}
    for line in text.splitlines()[1:]:
        parts = line.split(None, 5)
        rows[parts[5]] = (int(parts[1]), int(parts[2]), int(parts[3]))
    return rows


def assert_df_bytes(ours: dict, before: dict, after: dict) -> int:
    """Every filesystem: size exactly df -B1's; used and free exactly the df run just before
    or after, or (a disk other processes write to all the time) inside their range +- SLACK.
    Returns how many filesystems matched exactly."""
    exact = 0
    for mount, (size, used, free) in ours.items():
        b, a = before[mount], after[mount]
        assert size == b[0] == a[0], (mount, size, b, a)
        if (size, used, free) in (b, a):
            exact += 1
            continue
        for i, value in ((1, used), (2, free)):
            assert min(b[i], a[i]) - SLACK <= value <= max(b[i], a[i]) + SLACK, (mount, ours, b, a)
    return exact


def point_opskit_at(bed: Any, monkeypatch: pytest.MonkeyPatch, tmp_path) -> Any:
    """Point opskit at a test bed (its env vars) from an empty working folder (no ./opskit.yaml
    or ./hosts.yaml from elsewhere); returns the bed."""
    for key, value in bed.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    return bed


def bed_env(bed: Any, tmp_path: Path) -> dict[str, str]:
    """The environment of an ``opskit`` run against a test bed (its ssh config, known_hosts and
    inventory), with the runs folder in ``tmp_path`` and a wide table."""
    return {**os.environ, **bed.env(), "OPSKIT_RUNS_DIR": str(tmp_path / "runs"), "COLUMNS": "200"}


def run_opskit(env: dict, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    """``python -m opskit ARGS`` in ``env``, output captured, never raising on its exit code."""
    return subprocess.run([sys.executable, "-m", "opskit", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
