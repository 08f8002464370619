"""Benchmark of the opskit training loop (prints figures; asserts nothing).

    .venv/bin/python bench/train.py [--model resnet18] [--batch-size 64] [--steps 60]

1. CPU: images/s of ``opskit.train`` (the real entry: metrics, scheduler, checkpoints) against a
   bare PyTorch loop (zero_grad, forward, cross-entropy, backward, step) on the same model,
   batch and pre-generated data, runs interleaved, best of ``--repeats``. Target >= 0.98x.
2. Data time as a share of step time with the generated datasets (shapes to classify and to
   segment), as opskit's metrics.jsonl reports it. Target <= 5%.
3. System metrics (psutil, opskit.train.sysmetrics): the cost of one sample, and its share of
   the training time at the default --log-every 20 with the step time measured in 1.
   Target: part of the >= 0.98x of 1 (well under 1%).
4. GPU (only where CUDA is available): ResNet-50 with --amp --channels-last on synthetic data,
   opskit against the same bare loop (autocast fp16 + GradScaler, channels_last).

Timing: both loops are timed over the same steps (after ``--warmup`` steps, up to the last
step, whose evaluation is left out). Benchmarks on shared machines are noisy: compare the two
columns of one run, not runs on different machines.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="Failed to initialize NumPy")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from opskit.train.args import TrainArgs  # noqa: E402
from opskit.train.entry import resolve, train  # noqa: E402
from opskit.train.loop import to_device  # noqa: E402
from opskit.train.tasks.classification import split_outputs  # noqa: E402


def clocks() -> tuple[float, float]:
    """(wall, CPU time of this process): on a busy machine the CPU figure is the steadier."""
    return time.perf_counter(), time.process_time()


def rates(items: int, start: tuple, end: tuple) -> tuple[float, float]:
    return items / (end[0] - start[0]), items / max(end[1] - start[1], 1e-9)


def opskit_run(args: TrainArgs, warmup: int) -> tuple[tuple[float, float], list[dict]]:
    """(images/s wall, images per CPU-s) of the real entry over steps warmup..steps-1."""
    marks: dict[int, tuple] = {}
    last = args.steps - 1
    Path(args.out).mkdir(parents=True, exist_ok=True)
    args = dataclasses.replace(args, out=tempfile.mkdtemp(dir=args.out))  # one folder a run

    def hook(trainer):
        if trainer.step in (warmup, last):
            if trainer.ctx.device.type == "cuda":
                torch.cuda.synchronize()  # only at the two marks, not per step
            marks[trainer.step] = clocks()

    assert train(args, on_step=hook) == 0
    lines = [json.loads(x) for x in (Path(args.out) / "metrics.jsonl").read_text().splitlines()]
    return rates((last - warmup) * args.batch_size, marks[warmup], marks[last]), lines


def bare_run(args: TrainArgs, warmup: int) -> tuple[float, float]:
    """The same work in the plainest PyTorch loop."""
    torch.manual_seed(args.seed)
    info, cfg, task = resolve(args)
    device = torch.device("cuda" if args.device == "cuda" else "cpu")
    memory = torch.channels_last if args.channels_last else torch.contiguous_format
    model = task.build_model().to(device, memory_format=memory).train()
    data, _ = task.datasets(args.seed)
    if device.type == "cuda":
        data = data.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=5e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp and device.type == "cuda")
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    order = torch.randperm(len(data))
    per_epoch = len(data) // args.batch_size
    started = clocks()
    for step in range(args.steps - 1):
        if step == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = clocks()
        k = step % per_epoch
        x, y = to_device(data.get_batch(order[k * args.batch_size : (k + 1) * args.batch_size]),
                         device, args.channels_last)  # fmt: skip
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=args.amp):
            loss = F.cross_entropy(split_outputs(model(x))[0], y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    float(loss.detach())  # wait for the device
    return rates((args.steps - 1 - warmup) * args.batch_size, started, clocks())


def compare(args: TrainArgs, warmup: int, repeats: int) -> tuple[tuple, tuple]:
    """Best of ``repeats`` interleaved runs: ((wall, cpu) opskit, (wall, cpu) bare)."""
    ops, bare = (0.0, 0.0), (0.0, 0.0)
    for _ in range(repeats):  # interleaved, so load changes hit both columns alike
        b = bare_run(args, warmup)
        o = opskit_run(args, warmup)[0]
        bare = (max(bare[0], b[0]), max(bare[1], b[1]))
        ops = (max(ops[0], o[0]), max(ops[1], o[1]))
    return ops, bare


def print_comparison(ops: tuple, bare: tuple, cpu_column: bool) -> None:
    print(f"{'':16}{'opskit train':>14} {'bare loop':>12} {'ratio':>7}   (target >= 0.98)")
    print(f"{'images/s':16}{ops[0]:>14.0f} {bare[0]:>12.0f} {ops[0] / bare[0]:>7.3f}")
    if cpu_column:
        print(f"{'images/CPU-s':16}{ops[1]:>14.0f} {bare[1]:>12.0f} {ops[1] / bare[1]:>7.3f}")


def data_share(model: str, out: str, opts: argparse.Namespace) -> tuple[float, float]:
    """Data time / step time over the steps after the first window, from metrics.jsonl."""
    args = base_args(model, out, opts, steps=opts.steps, log_every=max(1, opts.steps // 4))
    _, lines = opskit_run(args, opts.warmup)
    windows = [x for x in lines if x["kind"] == "train"][1:] or lines[:1]
    data = sum(x["data_time_s"] for x in windows) / len(windows)
    step = sum(x["step_time_s"] for x in windows) / len(windows)
    return data, step


def base_args(model: str, out: str, opts: argparse.Namespace, **over) -> TrainArgs:
    values = dict(
        model=model, small=True, steps=opts.steps, batch_size=opts.batch_size, seed=0,
        train_samples=max(opts.batch_size * opts.steps, 1024), val_samples=64, out=out,
        device="cpu", threads=opts.threads, progress="none", log_every=opts.steps,
    )  # fmt: skip
    values.update(over)
    return TrainArgs(**values)


def system_metrics_cost(step_s: float, n: int = 2000, log_every: int = 20) -> None:
    from opskit.train.sysmetrics import SystemSampler

    print("\n== system metrics in each metrics line (psutil, and /proc where psutil is absent) ==")
    for name, use_psutil in (("psutil", True), ("/proc", False)):
        sampler = SystemSampler(torch.device("cpu"), use_psutil=use_psutil)
        if not sampler.available:
            print(f"{name:>7}: not available here")
            continue
        t0 = time.perf_counter()
        for _ in range(n):
            sampler.sample()
        each = (time.perf_counter() - t0) / n
        share = each / (log_every * step_s)
        print(f"{name:>7}: one sample {each * 1e6:.0f} us; step {step_s * 1e3:.1f} ms; at --log-every "
              f"{log_every}: {100 * share:.3f}% of training time (ratio {1 / (1 + share):.4f}, target >= 0.98)")


def gpu_section(opts: argparse.Namespace, out: str) -> None:
    print("\n== GPU: resnet50, --amp --channels-last, synthetic data ==")
    if not torch.cuda.is_available():
        print("skipped: no CUDA")
        return
    args = TrainArgs(
        model="resnet50", steps=opts.gpu_steps, batch_size=opts.gpu_batch_size, data="synthetic",
        device="cuda", amp=True, channels_last=True, train_samples=100_000, val_samples=256,
        out=out, progress="none", log_every=opts.gpu_steps,
    )  # fmt: skip
    ops, bare = compare(args, warmup=10, repeats=opts.repeats)
    print(f"device: {torch.cuda.get_device_name(0)}, batch {args.batch_size}")
    print_comparison(ops, bare, cpu_column=False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet18", help="classifier for the CPU comparison")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--gpu-steps", type=int, default=60)
    p.add_argument("--gpu-batch-size", type=int, default=128)
    opts = p.parse_args(argv)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    with tempfile.TemporaryDirectory(prefix="opskit-bench-") as tmp:
        print(f"\n== CPU: {opts.model} (small), batch {opts.batch_size}, generated shapes ==")
        args = base_args(opts.model, f"{tmp}/cpu", opts)
        ops, bare = compare(args, opts.warmup, opts.repeats)
        print_comparison(ops, bare, cpu_column=True)

        system_metrics_cost(opts.batch_size / ops[0])

        print("\n== data time / step time, generated datasets (target <= 5%) ==")
        for model in ("lenet", opts.model, "fcn"):
            data, step = data_share(model, f"{tmp}/data-{model}", opts)
            print(f"{model:>10}: data {data * 1e3:7.3f} ms, step {step * 1e3:8.2f} ms, "
                  f"{100 * data / step:5.2f}%")  # fmt: skip
        gpu_section(opts, f"{tmp}/gpu")
    return 0


if __name__ == "__main__":
    sys.exit(main())
