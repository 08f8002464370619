"""The training loop: one ``Trainer`` per run, built by ``build_trainer(args)``.

Per step it gathers a batch (a precomputed permutation of the data per epoch, the same one
``DistributedSampler`` gives, so resuming at step k sees exactly the batches an uninterrupted
run sees), moves it to the device, calls ``task.train_step``, steps the schedulers and adds the
figures to a ``Meter`` without waiting for the device. Every ``--log-every`` steps it writes
one metrics line; after each epoch and at the end it evaluates. SIGTERM sets a flag; at the
end of the current step the loop writes a checkpoint and returns 143.
"""

from __future__ import annotations

import gc
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DistributedSampler

from opskit.train import checkpoint as ckpt
from opskit.train.distributed import DistInfo, any_rank, barrier
from opskit.train.errors import EXIT_INTERRUPTED, TrainUsageError
from opskit.train.metrics import Meter, Progress, RunFiles, format_figures
from opskit.train.tasks.base import StepContext, Task, unwrap_model

DEVICE_DATA_LIMIT = 2 << 30  # datasets smaller than this live on the GPU


def to_device(batch: Any, device: torch.device, channels_last: bool) -> Any:
    """Move every tensor of a (nested) batch; 4-D float tensors become NHWC if asked."""
    if isinstance(batch, torch.Tensor):
        t = batch.to(device, non_blocking=True)
        if channels_last and t.dim() == 4 and t.is_floating_point():
            t = t.contiguous(memory_format=torch.channels_last)
        return t
    if isinstance(batch, dict):
        return {k: to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(v, device, channels_last) for v in batch)
    return batch


def place_dataset(ds: Any, device: torch.device) -> Any:
    """Small tensor datasets (those with ``to`` and ``nbytes``, as ``TensorData`` and
    ``SyntheticData``) move to the GPU once, so a step's data time is an index."""
    if device.type != "cuda" or not (hasattr(ds, "to") and hasattr(ds, "nbytes")):
        return ds
    return ds.to(device) if ds.nbytes() <= DEVICE_DATA_LIMIT else ds


def ranks_throughput(items_per_s: float, dist: DistInfo) -> list:
    """Items/s of every rank, in rank order, for one logging window.

    Ranks may differ (tokens per batch, a slower host), so the run's throughput is the sum
    of what each rank measured, not rank 0's figure times the world size. One small
    all-reduce per metrics line; every rank logs at the same steps."""
    if not dist.distributed:
        return [items_per_s]
    import torch.distributed as tdist

    t = torch.zeros(dist.world_size, dtype=torch.float64, device=dist.device)
    t[dist.rank] = items_per_s
    tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
    return t.tolist()


@dataclass
class Trainer:
    """Everything a run needs, built and checked before any file is written."""

    args: Any
    task: Task
    model: torch.nn.Module  # possibly DDP- and compile-wrapped
    ctx: StepContext
    schedulers: list
    train_ds: Any
    val_ds: Any
    dist: DistInfo
    files: RunFiles | None  # rank 0 only
    total_steps: int
    steps_per_epoch: int
    model_cfg: dict
    step: int = 0
    meter_state: dict | None = None
    history: list = field(default_factory=list)
    last_eval: dict = field(default_factory=dict)
    last_train: dict = field(default_factory=dict)
    on_step: Callable[[Trainer], None] | None = None  # tests and benchmarks hook here
    system: Any = None  # a SystemSampler (rank 0): CPU, memory, GPU into each metrics line
    _stop: bool = False
    _order: tuple[int, torch.Tensor] | None = None

    # -- data order -----------------------------------------------------------------------
    def epoch_order(self, epoch: int) -> torch.Tensor:
        if self._order is None or self._order[0] != epoch:
            sampler = DistributedSampler(
                self.train_ds,
                num_replicas=self.dist.world_size,
                rank=self.dist.rank,
                shuffle=True,
                seed=self.args.seed,
                drop_last=True,
            )
            sampler.set_epoch(epoch)
            self._order = (epoch, torch.tensor(list(iter(sampler)), dtype=torch.long))
        return self._order[1]

    def batch_at(self, step: int) -> Any:
        epoch, k = divmod(step, self.steps_per_epoch)
        bs = self.args.batch_size
        idx = self.epoch_order(epoch)[k * bs : (k + 1) * bs]
        return to_device(self.train_ds.get_batch(idx), self.ctx.device, self.ctx.channels_last)

    def val_batches(self):
        bs, n = self.args.batch_size, len(self.val_ds)
        for start in range(0, n, bs):
            idx = torch.arange(start, min(n, start + bs))
            yield to_device(self.val_ds.get_batch(idx), self.ctx.device, self.ctx.channels_last)

    # -- the run --------------------------------------------------------------------------
    def request_stop(self, signum: int = signal.SIGTERM, frame: Any = None) -> None:
        self._stop = True

    def run(self, progress: Progress) -> int:
        """Train until ``total_steps`` or SIGTERM; returns 0 or 143.

        Everything built so far (model, data, optimizers) lives for the whole run: it is moved
        out of the garbage collector's sight (``gc.freeze``) so that the collections that the
        per-step autograd objects trigger do not walk it again and again (about 2% of a small
        CPU step measured in bench/train.py)."""
        gc.collect()
        gc.freeze()
        try:
            return self._run(progress)
        finally:
            gc.unfreeze()

    def _run(self, progress: Progress) -> int:
        self.model.train()
        meter = Meter()
        if self.meter_state:  # the window a SIGTERM cut short, from the checkpoint
            meter.restore(self.meter_state)
            self.meter_state = None
        while self.step < self.total_steps:
            meter = self._one_step(meter)
            boundary = self.step % self.steps_per_epoch == 0 or self.step == self.total_steps
            if self.step % self.args.log_every == 0 or boundary:
                self._log_train(meter, progress)
                meter = Meter()
            if boundary:
                self._evaluate(progress)
                if self.step < self.total_steps:
                    self.save()
                meter = Meter()  # the window after an evaluation starts now
            if self.on_step is not None:
                self.on_step(self)
            if self._should_stop(boundary):
                self.meter_state = meter.state()
                self.save()
                progress.line(f"SIGTERM: checkpoint written at step {self.step}, stopping")
                return EXIT_INTERRUPTED
        if self.last_eval.get("step") != self.step:
            self._evaluate(progress)
        self.meter_state = None
        self.save()
        return 0

    def _should_stop(self, boundary: bool) -> bool:
        """SIGTERM seen (on any rank). Ranks agree only at logging points, so a multi-process
        run pays for one small all-reduce per ``--log-every`` steps, not one per step."""
        if not self.dist.distributed:
            return self._stop
        if boundary or self.step % self.args.log_every == 0:
            return any_rank(self._stop, self.dist)
        return False

    def _one_step(self, meter: Meter) -> Meter:
        t0 = time.perf_counter()
        batch = self.batch_at(self.step)
        t1 = time.perf_counter()
        self.ctx.epoch = self.step // self.steps_per_epoch
        out = self.task.train_step(self.model, batch, self.ctx)
        for sched in self.schedulers:
            sched.step()
        meter.add(out, self.task.items_in(batch), t1 - t0)
        self.step += 1
        self.ctx.step = self.step
        return meter

    def _log_train(self, meter: Meter, progress: Progress) -> None:
        if meter.steps == 0:
            return
        means = meter.means()  # waits for the device: the window's work is done after this
        wall = max(time.perf_counter() - meter.started, 1e-9)
        per_rank = ranks_throughput(meter.items / wall, self.dist)
        record = {
            "kind": "train",
            "step": self.step,
            "epoch": (self.step - 1) // self.steps_per_epoch,
            **means,
            "items_per_s": sum(per_rank),  # every rank's own items over its own time, summed
            "items_per_s_ranks": per_rank,
            "world_size": self.dist.world_size,
            "step_time_s": wall / meter.steps,
            "data_time_s": meter.data_time / meter.steps,
            "data_fraction": meter.data_time / wall,
            "lr": self.ctx.optimizers[0].param_groups[0]["lr"],
            "time": time.time(),
        }
        if self.ctx.device.type == "cuda":
            record["peak_gpu_mem_bytes"] = torch.cuda.max_memory_allocated(self.ctx.device)
        if self.system is not None:
            record.update(self.system.sample())
        self.last_train = record
        if self.files is not None:
            self.files.log(record)
            progress.update(
                self.step, format_figures(record, ("loss", self.task.metric, "items_per_s"))
            )

    def _evaluate(self, progress: Progress) -> None:
        model = unwrap_model(self.model)
        model.eval()
        with torch.no_grad():
            result = self.task.evaluate(model, self.val_batches(), self.ctx)
        model.train()
        if self.task.metric not in result:
            raise TrainUsageError(
                f"task {self.task.name!r} evaluate() returned {sorted(result)}, "
                f"without its metric {self.task.metric!r}"
            )
        record = {
            "kind": "eval",
            "step": self.step,
            "epoch": (self.step - 1) // self.steps_per_epoch,
            **result,
        }
        self.last_eval = record
        self.history.append(record)
        if self.files is not None:
            self.files.log(record)
            progress.line(f"eval step {self.step}: {format_figures(result)}")

    # -- checkpoints ----------------------------------------------------------------------
    def state(self) -> dict:
        return {
            "args": self.args.to_dict(),
            "model_cfg": self.model_cfg,
            "model": unwrap_model(self.model).state_dict(),
            "optimizers": [o.state_dict() for o in self.ctx.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "scalers": [s.state_dict() for s in self.ctx.scalers],
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "total_steps": self.total_steps,
            "world_size": self.dist.world_size,
            "rng": ckpt.rng_state(),
            "meter": self.meter_state,
            "last_eval": self.last_eval,
        }

    def save(self) -> None:
        if self.files is not None:
            ckpt.save_checkpoint(self.files.last, self.state())
        barrier(self.dist)

    def restore(self, state: dict) -> None:
        """Put optimizer, scheduler, scaler, position and RNG state back (model: see build)."""
        for obj, saved in zip(self.ctx.optimizers, state["optimizers"], strict=True):
            obj.load_state_dict(saved)
        for obj, saved in zip(self.schedulers, state["schedulers"], strict=True):
            obj.load_state_dict(saved)
        for obj, saved in zip(self.ctx.scalers, state["scalers"], strict=True):
            obj.load_state_dict(saved)
        self.step = int(state["step"])
        self.ctx.step = self.step
        self.meter_state = state.get("meter")
        self.last_eval = dict(state.get("last_eval") or {})
        ckpt.set_rng_state(state["rng"])
