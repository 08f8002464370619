"""Image classification: cross-entropy on logits, accuracy as the metric.

Data: ``--data shapes`` (generated shapes, see ``opskit.train.data.shapes``), ``synthetic``
(random tensors) or a ``.npz`` file (see ``opskit.train.data.files``). Models whose training
forward returns several outputs (GoogLeNet's auxiliary classifiers) are trained on
``main + 0.3 * sum(aux)``, as in the paper; in ``eval()`` they return one tensor.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import torch
import torch.nn.functional as F

from opskit.train.data.files import load_npz_dataset, max_label
from opskit.train.data.folders import load_image_folder
from opskit.train.data.shapes import shapes_classification
from opskit.train.data.synthetic import synthetic_images
from opskit.train.errors import DataError
from opskit.train.tasks.base import StepContext, Task, image_input_shape, register_task

AUX_WEIGHT = 0.3
# Generated images are pre-rendered; large inputs (224x224) get fewer samples to fit this.
GENERATED_BYTES = 768 << 20


def builder_default(info, key: str, fallback):
    """A builder's default for ``key`` (e.g. num_classes), or ``fallback``."""
    try:
        param = inspect.signature(info.builder).parameters.get(key)
    except (TypeError, ValueError):
        return fallback
    if param is None or param.default is inspect.Parameter.empty:
        return fallback
    return param.default


class ImageTask(Task):
    """What image tasks share: the input shape, the class count and the data choice."""

    dense = False  # per-pixel targets (segmentation)
    default_classes = 10

    def num_classes(self) -> int:
        return int(
            self.model_cfg.get(
                "num_classes", builder_default(self.info, "num_classes", self.default_classes)
            )
        )

    def input_shape(self) -> tuple:
        return image_input_shape(self, (3, 32, 32))

    def data_source(self) -> str:
        return getattr(self.args, "data", None) or "shapes"

    def datasets(self, seed: int):
        source = self.data_source()
        n_train = getattr(self.args, "train_samples", 4096)
        n_val = getattr(self.args, "val_samples", 512)
        shape = self.input_shape()
        if source == "synthetic":
            k = self.num_classes()
            return (
                synthetic_images(shape, k, n_train, seed, dense=self.dense),
                synthetic_images(shape, k, n_val, seed + 1, dense=self.dense),
            )
        if source == "shapes":
            per_sample = (4 * shape[0] + (8 if self.dense else 0)) * shape[1] * shape[2]
            cap = max(2, GENERATED_BYTES // per_sample)
            n_val = min(n_val, max(1, cap // 8))
            n_train = min(n_train, max(1, cap - n_val))
            return self.generate(n_train, shape, seed), self.generate(n_val, shape, seed + 10_007)
        if Path(source).is_dir():
            if self.dense:
                raise DataError(f"{source}: image folders hold classes, not segmentation masks")
            train, val = load_image_folder(source, shape)
        else:
            train, val = load_npz_dataset(source, dense=self.dense)
        top = max_label(train, val)
        if top >= self.num_classes():
            raise DataError(
                f"{source}: class index {top} in the data, but the model has {self.num_classes()} classes",
                f"pass --model-arg num_classes={top + 1}",
            )
        return train, val

    def generate(self, n: int, shape: tuple, seed: int):
        raise NotImplementedError


def split_outputs(out) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(main, auxiliaries) from a model output: a tensor, a tuple or a dict with 'out'."""
    if isinstance(out, torch.Tensor):
        return out, []
    if isinstance(out, dict):
        return out["out"], [v for k, v in out.items() if k != "out" and v is not None]
    main, *aux = out
    return main, [a for a in aux if a is not None]


def cross_entropy_step(model, batch, ctx: StepContext, aux_weight: float):
    """One optimizer step on cross-entropy (per image or per pixel), auxiliary heads weighted
    by ``aux_weight``; returns the detached loss and the (pixel) accuracy of the main head."""
    x, y = batch
    with ctx.autocast():
        main, aux = split_outputs(model(x))
        loss = F.cross_entropy(main, y)
        for a in aux:
            loss = loss + aux_weight * F.cross_entropy(a, y)
    ctx.backward_step(loss)
    accuracy = (main.detach().argmax(1) == y).float().mean()
    return loss.detach(), accuracy


@register_task("classification")
class Classification(ImageTask):
    metric = "accuracy"
    higher_is_better = True

    def generate(self, n: int, shape: tuple, seed: int):
        return shapes_classification(n, shape, self.num_classes(), seed)

    def train_step(self, model, batch, ctx: StepContext) -> dict:
        loss, accuracy = cross_entropy_step(model, batch, ctx, AUX_WEIGHT)
        return {"loss": loss, "accuracy": accuracy}

    def evaluate(self, model, batches, ctx: StepContext) -> dict:
        correct = total = 0
        loss_sum = torch.zeros((), device=ctx.device)
        for x, y in batches:
            with ctx.autocast():
                main, _ = split_outputs(model(x))
            loss_sum += F.cross_entropy(main.float(), y, reduction="sum")
            correct += (main.argmax(1) == y).sum()
            total += y.shape[0]
        total = max(total, 1)
        return {"accuracy": float(correct) / total, "loss": float(loss_sum) / total}
