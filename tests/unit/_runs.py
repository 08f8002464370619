"""Run folders as ``opskit train --out`` leaves them, written from given numbers (for the
tests of what reads them: eval gates, reports)."""

from __future__ import annotations

import json
from pathlib import Path


def write_run(root: Path, run_id: str, *, model: str = "lenet", task: str = "classification",
              accuracies=(0.3, 0.5, 0.7), steps_per_eval: int = 10, torn: str | None = None,
              summary: bool = True, system: bool = False) -> Path:
    """A run with train lines every 5 steps and an eval after each ``steps_per_eval``."""
    out = root / run_id
    out.mkdir(parents=True)
    lines = []
    for i, acc in enumerate(accuracies):
        for s in range(5, steps_per_eval + 1, 5):
            step = i * steps_per_eval + s
            rec = {"kind": "train", "step": step, "epoch": i, "loss": 2.0 / step,
                   "accuracy": acc - 0.05, "items_per_s": 100.0 + step, "data_time_s": 0.001 * step,
                   "step_time_s": 0.01 * step, "lr": 0.1 / step, "time": 1000.0 + step}
            if system:
                rec.update({"sys_proc_cpu_percent": 50.0 + step, "sys_proc_rss_bytes": 2 ** 30 * step,
                            "sys_host_cpu_percent": 60.0, "sys_host_mem_percent": 40.0,
                            "peak_gpu_mem_bytes": 2 ** 30 * 2})
            lines.append(json.dumps(rec))
        lines.append(json.dumps({"kind": "eval", "step": (i + 1) * steps_per_eval, "epoch": i,
                                 "accuracy": acc, "loss": 1.0 - acc}))
    text = "\n".join(lines) + "\n" if lines else ""
    if torn is not None:
        text += torn
    (out / "metrics.jsonl").write_text(text)
    (out / "run_card.json").write_text(json.dumps({"model": model, "seed": 0, "device": "cpu"}))
    if summary and accuracies:
        final = {"accuracy": accuracies[-1], "loss": 1.0 - accuracies[-1]}
        (out / "summary.json").write_text(json.dumps({
            "status": "completed", "model": model, "task": task, "metric": "accuracy",
            "final": final, "step": len(accuracies) * steps_per_eval}))
    return out


CARD = """\
project:
  name: parts
  problem: sort parts
  goal: sort them right
  metric: "accuracy >= 0.6"
  task: classification
  baseline: {heuristic: majority class, value: 0.25}
  gates: {min_absolute_change: 0.1, min_relative_change: 0.5}
"""
