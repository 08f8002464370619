"""The Task API: what a kind of model needs from the training loop, and nothing more.

The loop (``opskit.train.loop``) owns devices, AMP, DDP, data order, checkpoints, signals and
metrics files. A *task* owns what differs between model families: how to build the model and
its data, the loss of one step, and how to evaluate. A model is trained by the task registered
under its ``ModelInfo.task`` name (``"classification"``, ``"segmentation"``, ``"detection"``,
``"language_model"``, ``"gan"``, ``"vae"``).

Contract
--------
* ``Task(info, model_cfg, args)``: ``info`` is the model's ``ModelInfo``; ``model_cfg`` the
  keyword arguments its builder gets (``info.small`` for ``--small``, updated by
  ``--model-arg k=v``); ``args`` the parsed ``TrainArgs`` (``args.seed``, ``args.batch_size``,
  ``args.data``, ``args.lr``, ``args.input`` ...). Do no heavy work here.
* ``build_model() -> nn.Module``.
* ``input_shape() -> tuple | None``: one sample's shape (C, H, W), checked against the network
  before training (``None``: no check, e.g. sequences).
* ``datasets(seed) -> (train, val)``: two ``BatchDataset`` objects (``__len__`` and
  ``get_batch(indices: LongTensor) -> batch``), deterministic in ``seed``. A batch is a tensor
  or a tuple/list/dict of tensors (nested is fine); the loop moves it to the device.
  ``opskit.train.data.tensors.TensorData`` covers the usual case (tensors of equal length).
  Make data cheap: pre-generate tensors from the seed, do not decode per step.
* ``optimizers(model) -> list[Optimizer]`` (default: one AdamW or SGD on all parameters; a GAN
  returns two). ``schedulers(optimizers, total_steps) -> list`` (default: warm-up + cosine,
  stepped once per training step).
* ``train_step(model, batch, ctx) -> dict``: forward, loss, and ``ctx.backward_step(loss)``
  (which does zero_grad, AMP scaling, optional gradient clipping and optimizer.step). Return
  detached 0-dim tensors (or floats) by name, at least ``"loss"``; the loop converts them to
  numbers only when it writes metrics, so do not call ``.item()`` here. Under DDP or
  ``--compile`` the model is wrapped: use ``unwrap_model(model)`` to reach its attributes
  (e.g. ``unwrap_model(model).generator``), but call the wrapper for forward passes.
* ``evaluate(model, batches, ctx) -> dict[str, float]``: the model is in ``eval()`` mode under
  ``torch.no_grad()``; ``batches`` yields the validation batches already on the device. The
  result must contain ``self.metric``.
* ``items_in(batch) -> int``: samples in a batch, for images/s (default: first tensor's len).

Minimal example::

    from opskit.train.tasks.base import Task, register_task

    @register_task("regression")
    class Regression(Task):
        metric = "loss"
        higher_is_better = False

        def datasets(self, seed):
            g = torch.Generator().manual_seed(seed)
            x = torch.randn(512, 8, generator=g)
            y = x.sum(1, keepdim=True)
            return TensorData(x[:448], y[:448]), TensorData(x[448:], y[448:])

        def train_step(self, model, batch, ctx):
            x, y = batch
            with ctx.autocast():
                loss = torch.nn.functional.mse_loss(model(x), y)
            ctx.backward_step(loss)
            return {"loss": loss.detach()}

        def evaluate(self, model, batches, ctx):
            losses = [torch.nn.functional.mse_loss(model(x), y) for x, y in batches]
            return {"loss": torch.stack(losses).mean().item()}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from opskit.train.errors import UnknownTaskError

# Modules that register tasks, imported on first registry use (no work at import).
TASK_MODULES = (
    "opskit.train.tasks.classification",
    "opskit.train.tasks.segmentation",
    "opskit.train.tasks.detection",
    "opskit.train.tasks.sequence",
    "opskit.train.tasks.generative",
)


class BatchDataset(Protocol):
    """What ``Task.datasets`` returns: a length and a way to gather a batch by indices."""

    def __len__(self) -> int: ...

    def get_batch(self, indices: torch.Tensor) -> Any: ...


@dataclass
class StepContext:
    """What a task's ``train_step``/``evaluate`` may use; built and updated by the loop."""

    device: torch.device
    optimizers: list = field(default_factory=list)
    scalers: list = field(default_factory=list)  # one torch.amp.GradScaler per optimizer
    amp: bool = False
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False
    max_grad_norm: float | None = None
    rank: int = 0
    world_size: int = 1
    step: int = 0  # global optimizer step, counted from 0
    epoch: int = 0

    def autocast(self) -> torch.autocast:
        """The autocast region for forward passes (a no-op unless ``--amp``)."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp)

    def backward_step(
        self,
        loss: torch.Tensor,
        optimizer_index: int = 0,
        *,
        retain_graph: bool = False,
    ) -> None:
        """zero_grad, backward (AMP-scaled), optional clipping, optimizer step."""
        optimizer = self.optimizers[optimizer_index]
        scaler = self.scalers[optimizer_index] if self.scalers else None
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None and scaler.is_enabled():
            scaler.scale(loss).backward(retain_graph=retain_graph)
            if self.max_grad_norm:
                scaler.unscale_(optimizer)
                _clip(optimizer, self.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            return
        loss.backward(retain_graph=retain_graph)
        if self.max_grad_norm:
            _clip(optimizer, self.max_grad_norm)
        optimizer.step()


def unwrap_model(model: nn.Module) -> nn.Module:
    """The user's module inside DDP and ``torch.compile`` wrappers (for attribute access)."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def image_input_shape(task: Task, fallback: tuple = ()) -> tuple:
    """One image's shape: ``--input``, else the model's registered shape (its small
    variant's under ``--small``), else ``fallback``."""
    if getattr(task.args, "input", None):
        return tuple(task.args.input)
    if getattr(task.args, "small", False) and task.info.small_input_shape:
        return tuple(task.info.small_input_shape)
    return tuple(task.info.input_shape or fallback)


def _clip(optimizer: torch.optim.Optimizer, max_norm: float) -> None:
    params = [p for group in optimizer.param_groups for p in group["params"]]
    torch.nn.utils.clip_grad_norm_(params, max_norm)


class Task:
    """Base class of every task; subclasses set ``name``/``metric`` and override the steps."""

    name: ClassVar[str] = ""
    metric: ClassVar[str] = "loss"  # primary metric, a key of evaluate()'s result
    higher_is_better: ClassVar[bool] = False
    default_optimizer: ClassVar[str] = "adamw"  # "adamw" or "sgd"
    default_lr: ClassVar[float] = 1e-3
    weight_decay: ClassVar[float] = 5e-4
    warmup_fraction: ClassVar[float] = 0.05
    # DDP option for tasks whose steps leave some parameters unused (e.g. a GAN's two halves).
    ddp_find_unused_parameters: ClassVar[bool] = False

    def __init__(self, info: Any, model_cfg: dict, args: Any):
        self.info = info
        self.model_cfg = dict(model_cfg)
        self.args = args

    # -- model and data ---------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        return self.info.builder(**self.model_cfg)

    def input_shape(self) -> tuple | None:
        """One sample's input shape, checked against the network before training."""
        return None

    def datasets(self, seed: int) -> tuple[BatchDataset, BatchDataset]:
        raise NotImplementedError(f"task {self.name!r} does not define datasets()")

    def items_in(self, batch: Any) -> int:
        first = batch
        while isinstance(first, (tuple, list, dict)):
            first = next(iter(first.values())) if isinstance(first, dict) else first[0]
        return int(first.shape[0])

    # -- optimisation -----------------------------------------------------------------------
    def lr(self) -> float:
        lr = getattr(self.args, "lr", None)
        return float(lr) if lr is not None else self.default_lr

    def optimizers(self, model: nn.Module) -> list[torch.optim.Optimizer]:
        return [self.make_optimizer(model.parameters())]

    def make_optimizer(self, params: Iterable) -> torch.optim.Optimizer:
        """One optimizer of ``--optimizer`` kind (default: the task's) at ``--lr``."""
        kind = getattr(self.args, "optimizer", None) or self.default_optimizer
        if kind == "sgd":
            return torch.optim.SGD(
                params, lr=self.lr(), momentum=0.9, nesterov=True, weight_decay=self.weight_decay
            )
        return torch.optim.AdamW(params, lr=self.lr(), weight_decay=self.weight_decay)

    def schedulers(self, optimizers: list, total_steps: int) -> list:
        """Linear warm-up then cosine decay to 0, stepped once per training step."""
        return [
            torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(total_steps, self.warmup_fraction))
            for opt in optimizers
        ]

    # -- steps --------------------------------------------------------------------------------
    def train_step(self, model: nn.Module, batch: Any, ctx: StepContext) -> dict:
        raise NotImplementedError(f"task {self.name!r} does not define train_step()")

    def evaluate(self, model: nn.Module, batches: Iterable, ctx: StepContext) -> dict:
        raise NotImplementedError(f"task {self.name!r} does not define evaluate()")


def warmup_cosine(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    """LR factor: linear warm-up over ``warmup_fraction`` of the steps, then cosine to 0."""
    total = max(1, int(total_steps))
    warmup = max(1, int(total * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


# -- registry ----------------------------------------------------------------------------------
_TASKS: dict[str, type[Task]] = {}
_loaded = False


def register_task(name: str) -> Callable[[type[Task]], type[Task]]:
    """Class decorator: make ``cls`` the task for models whose ``ModelInfo.task == name``."""

    def deco(cls: type[Task]) -> type[Task]:
        if name in _TASKS and _TASKS[name] is not cls:
            raise ValueError(f"task {name!r} is registered twice")
        cls.name = name
        _TASKS[name] = cls
        return cls

    return deco


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    from opskit.models.registry import import_present

    import_present(TASK_MODULES)
    _loaded = True


def list_tasks() -> list[str]:
    _load_all()
    return sorted(_TASKS)


def get_task(name: str) -> type[Task]:
    _load_all()
    try:
        return _TASKS[name]
    except KeyError:
        raise UnknownTaskError(
            f"no training task {name!r}; known tasks: {', '.join(sorted(_TASKS)) or 'none'}",
            "register one with @register_task in opskit/train/tasks/",
        ) from None
