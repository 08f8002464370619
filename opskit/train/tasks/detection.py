"""Object detection: the detector's own losses, mAP@0.5 as the metric.

Data: ``--data shapes`` (default): coloured squares, disks and triangles with their boxes
(``opskit.train.data.boxes``), at the task's input size. A batch is
``(images uint8 (N, 3, H, W), boxes (N, 4, 4), labels (N, 4))`` with ``labels == -1`` for
empty slots; the models take the padded targets directly.
"""

from __future__ import annotations

import torch

from opskit.models.detection.backbone import unpad_targets
from opskit.models.detection.metrics import mean_average_precision
from opskit.train.data.boxes import CLASSES, shapes_datasets
from opskit.train.errors import DataError
from opskit.train.tasks.base import StepContext, Task, image_input_shape, register_task


def as_float(images: torch.Tensor, ctx: StepContext) -> torch.Tensor:
    x = images.float() / 255.0
    return x.contiguous(memory_format=torch.channels_last) if ctx.channels_last else x


@register_task("detection")
class Detection(Task):
    metric = "map"
    higher_is_better = True
    default_lr = 3e-3

    def input_shape(self) -> tuple:
        return image_input_shape(self)

    def num_classes(self) -> int:
        return int(self.model_cfg.get("num_classes", 20))

    def datasets(self, seed: int):
        source = getattr(self.args, "data", None) or "shapes"
        if source != "shapes":
            raise DataError(
                f"detection models train on generated shapes only, not {source!r}",
                "use --data shapes (the default)",
            )
        if self.num_classes() < len(CLASSES):
            raise DataError(
                f"the shapes data has {len(CLASSES)} classes, the model {self.num_classes()}",
                f"pass --model-arg num_classes={len(CLASSES)} (or more)",
            )
        c, h, w = self.input_shape()
        if c != 3 or h != w or h < 24:
            raise DataError(
                f"the shapes data are square RGB images of at least 24x24, not {c}x{h}x{w}",
                "use --input 3xSxS with S >= 24 (the small variants take 3x48x48)",
            )
        return shapes_datasets(
            seed,
            getattr(self.args, "train_samples", 4096),
            getattr(self.args, "val_samples", 512),
            h,
        )

    def train_step(self, model, batch, ctx: StepContext) -> dict:
        images, boxes, labels = batch
        with ctx.autocast():
            losses = model(as_float(images, ctx), boxes, labels)
        loss = sum(losses.values())
        ctx.backward_step(loss)
        return {"loss": loss.detach(), **{k: v.detach() for k, v in losses.items()}}

    def evaluate(self, model, batches, ctx: StepContext) -> dict:
        detections, targets = [], []
        for images, boxes, labels in batches:
            with ctx.autocast():
                detections += model.detect(as_float(images, ctx))
            targets += unpad_targets(boxes, labels)
        result = mean_average_precision(detections, targets, self.num_classes(), 0.5)
        out = {"map": result["map"]}
        out.update(
            {f"ap_{CLASSES[k] if k < len(CLASSES) else k}": v for k, v in result["ap"].items()}
        )
        out["detections_per_image"] = sum(len(d["scores"]) for d in detections) / max(
            len(detections), 1
        )
        return out
