"""Benchmark of `opskit report` over many runs (prints figures; asserts nothing).

    .venv/bin/python bench/reports.py [--runs 1000] [--evals 20] [--train-lines 200]

Makes ``--runs`` run folders as ``opskit train`` writes them (metrics.jsonl with train lines
and evaluations, summary.json, run_card.json), then:

1. precomputes the per-run summaries (``runread.cached_digest``: what a run's first report or
   ``runs list`` does once, cached in RUN/.opskit/), timed on its own;
2. renders the comparison of all runs from those summaries: one HTML file with the runs
   overlaid and the ranked table, with and without the PNG fallbacks. Target <= 3 s.

Best of ``--repeats``: wall time, and CPU time of the process (the steadier figure on a busy
machine).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opskit.project.runread import cached_digest  # noqa: E402
from opskit.reports.build import ReportRequest, build_report  # noqa: E402
from opskit.reports.html import plotly_js  # noqa: E402

TARGET_S = 3.0


def make_runs(root: Path, n: int, evals: int, train_lines: int) -> list[str]:
    rng = random.Random(0)
    names = []
    for i in range(n):
        run = root / f"run-{i:04d}"
        run.mkdir(parents=True)
        rate, ceiling = rng.uniform(0.5, 3.0), rng.uniform(0.6, 0.97)
        lines = []
        for k in range(1, train_lines + 1):
            step = 10 * k
            lines.append({"kind": "train", "step": step, "loss": 2.3 * math.exp(-rate * k / train_lines) + 0.05,
                          "items_per_s": rng.gauss(4000, 200), "data_time_s": 0.0002, "step_time_s": 0.02,
                          "lr": 0.001, "sys_proc_cpu_percent": 180.0, "sys_proc_rss_bytes": 4e8})
            if k % max(1, train_lines // evals) == 0:
                acc = ceiling * (1 - math.exp(-rate * k / train_lines * 3))
                lines.append({"kind": "eval", "step": step, "accuracy": acc, "loss": 1 - acc})
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        final = {"accuracy": lines[-1]["accuracy"], "loss": lines[-1]["loss"]}
        (run / "summary.json").write_text(json.dumps({"status": "completed", "model": "resnet18", "task":
                                                      "classification", "metric": "accuracy", "final": final}))
        (run / "run_card.json").write_text(json.dumps({"model": "resnet18", "seed": i}))
        names.append(str(run))
    return names


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def timed2(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): on a busy machine the CPU figure is the steadier."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--evals", type=int, default=20)
    p.add_argument("--train-lines", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    opts = p.parse_args(argv)
    plotly_js()  # loaded once per process, as a CLI run does before it matters
    with tempfile.TemporaryDirectory(prefix="opskit-bench-reports-") as tmp:
        root = Path(tmp)
        t = timed(lambda: make_runs(root / "runs", opts.runs, opts.evals, opts.train_lines))
        refs = sorted(str(p) for p in (root / "runs").iterdir())
        print(f"{opts.runs} runs, {opts.train_lines} train lines and {opts.evals} evals each "
              f"(made in {t:.1f} s)")
        first = timed(lambda: [cached_digest(r) for r in refs])
        print(f"precompute per-run summaries (once, cached): {first:8.2f} s")
        rows = []
        for png in (True, False):
            runs = [timed2(lambda png=png: build_report(ReportRequest(
                refs, str(root / "report.html"), baseline=refs[0], png=png))) for _ in range(opts.repeats)]
            size = (root / "report.html").stat().st_size
            rows.append((f"compare {opts.runs} runs" + (", with PNGs" if png else ", no PNGs"),
                         min(r[0] for r in runs), min(r[1] for r in runs), size))
        print(f"{'':36}{'wall s':>8} {'CPU s':>8} {'target':>8} {'file MB':>8}")
        for label, wall, cpu, size in rows:
            print(f"{label:36}{wall:8.2f} {cpu:8.2f} {'<= ' + str(TARGET_S):>8} {size / 1e6:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
