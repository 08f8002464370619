"""What a run writes: metrics.jsonl, summary.json, run_card.json, and progress on stdout.

* ``metrics.jsonl``: one JSON object per line, ``"kind": "train"`` every ``--log-every``
  steps (step, epoch, loss and the task's other training figures averaged over the window,
  items_per_s (the sum of every rank's own throughput, listed in items_per_s_ranks),
  world_size, data_time_s, step_time_s, data_fraction, lr, peak_gpu_mem_bytes on GPUs, and
  the sys_* system metrics of opskit.train.sysmetrics when psutil is installed) and
  ``"kind": "eval"`` after each epoch and at the end (the task's metrics on the validation set).
  Written by the global rank 0 only (not by each node's local rank 0).
* ``summary.json``: status ("completed" | "interrupted" | "failed"), steps, final metrics.
* ``run_card.json``: model, args, seed, torch/CUDA versions, device, host, world size.

Files are replaced atomically (temp name, then ``os.replace``); metrics.jsonl is appended and
flushed per line. Progress goes to a stream: an in-place bar on a terminal, plain lines
otherwise (what ``docker logs`` shows).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import time
from pathlib import Path
from typing import IO

import torch

PROJECT_ENV = "OPSKIT_PROJECT_STAMP"  # set by 'opskit train' / run-remote: {name, hash, metric}


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class Meter:
    """Sums of per-step figures kept as tensors, so no step waits for the device."""

    def __init__(self) -> None:
        self.sums: dict = {}
        self.steps = 0
        self.items = 0
        self.data_time = 0.0
        self.started = time.perf_counter()

    def add(self, values: dict, items: int, data_time: float) -> None:
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                value = value.detach().float()
            prev = self.sums.get(key)
            self.sums[key] = value if prev is None else prev + value
        self.steps += 1
        self.items += items
        self.data_time += data_time

    def means(self) -> dict[str, float]:
        return {k: float(v) / max(1, self.steps) for k, v in self.sums.items()}

    def state(self) -> dict:
        """Plain numbers for a checkpoint (so a resumed run averages the same window)."""
        return {"sums": {k: float(v) for k, v in self.sums.items()}, "steps": self.steps}

    def restore(self, state: dict) -> None:
        self.sums = {k: float(v) for k, v in state["sums"].items()}
        self.steps = int(state["steps"])


class RunFiles:
    """The output folder (rank 0 only)."""

    def __init__(self, out: str | os.PathLike):
        self.out = Path(out)
        self.checkpoint_dir = self.out / "checkpoints"
        self.last = self.checkpoint_dir / "last.pt"

    def open(self, resume: bool) -> None:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        mode = "a" if resume else "w"
        self._metrics = open(self.out / "metrics.jsonl", mode, encoding="utf-8")  # noqa: SIM115 - closed by close()

    def log(self, record: dict) -> None:
        self._metrics.write(json.dumps(record, sort_keys=True) + "\n")
        self._metrics.flush()

    def summary(self, data: dict) -> None:
        write_json(self.out / "summary.json", data)

    def run_card(self, data: dict) -> None:
        write_json(self.out / "run_card.json", data)

    def read_run_card(self) -> dict | None:
        """The run card already in the folder (a run being resumed), or None."""
        try:
            data = json.loads((self.out / "run_card.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def close(self) -> None:
        metrics = getattr(self, "_metrics", None)
        if metrics is not None:
            metrics.close()


def run_card(args: dict, model_name: str, device: torch.device, world_size: int) -> dict:
    card = {
        "model": model_name,
        "args": args,
        "seed": args.get("seed"),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
        ),
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "world_size": world_size,
        "threads": torch.get_num_threads(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    stamp = os.environ.get(PROJECT_ENV)  # the project card this run was made under
    if stamp:
        try:
            card["project"] = json.loads(stamp)
        except ValueError:
            card["project"] = {"hash": stamp}
    return card


class Progress:
    """An in-place bar on a terminal, plain lines otherwise, nothing with ``none``."""

    def __init__(self, total: int, mode: str = "auto", stream: IO[str] | None = None):
        self.stream = stream or sys.stdout
        if mode == "auto":
            mode = "bar" if self.stream.isatty() else "plain"
        self.mode = mode
        self.total = max(1, total)
        self._bar_open = False

    def line(self, text: str) -> None:
        if self.mode == "none":
            return
        if self._bar_open:
            self.stream.write("\n")
            self._bar_open = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def update(self, step: int, text: str) -> None:
        if self.mode == "none":
            return
        if self.mode == "plain":
            self.line(f"step {step}/{self.total} {text}")
            return
        width = 30
        done = int(width * step / self.total)
        bar = "#" * done + "-" * (width - done)
        self.stream.write(f"\r[{bar}] {step}/{self.total} {text}\x1b[K")
        self.stream.flush()
        self._bar_open = True

    def close(self) -> None:
        if self._bar_open:
            self.stream.write("\n")
            self.stream.flush()
            self._bar_open = False


def format_figures(values: dict, keys: tuple = ()) -> str:
    parts = []
    for key in dict.fromkeys(keys or tuple(values)):
        if key in values and isinstance(values[key], (int, float)):
            v = values[key]
            parts.append(f"{key}={v:.4g}" if isinstance(v, float) else f"{key}={v}")
    return " ".join(parts)
