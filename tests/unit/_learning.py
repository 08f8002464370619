"""The one way the learning tests train: the real entry point, small variant, one thread."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from opskit.train.entry import main


def train_small(
    out: Path, name: str, steps: int, *, batch: int, samples: tuple[int, int],
    extra: Sequence[str] = (),
) -> dict:
    """Train ``name --small`` for ``steps`` with seed 0 on ``samples`` (train, val) generated
    items; assert it completed and return its summary.json."""
    argv = [
        name, "--small", "--steps", str(steps), "--batch-size", str(batch), "--seed", "0",
        "--train-samples", str(samples[0]), "--val-samples", str(samples[1]),
        "--threads", "1", "--progress", "none", "--out", str(out), *extra,
    ]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    return summary
