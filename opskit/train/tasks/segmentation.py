"""Semantic segmentation: per-pixel cross-entropy, mean IoU as the metric.

Mean IoU: per class, intersection over union of predicted and true pixels over the whole
validation set (one confusion matrix); the mean over classes that occur in either. FCN's
auxiliary head (a dict output ``{"out", "aux"}``) is trained with weight 0.5, as torchvision's
reference does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from opskit.train.data.shapes import shapes_segmentation
from opskit.train.tasks.base import StepContext, register_task
from opskit.train.tasks.classification import ImageTask, cross_entropy_step, split_outputs

AUX_WEIGHT = 0.5


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    """(k, k) counts, rows = true class, columns = predicted; labels outside 0..k-1 ignored."""
    keep = (target >= 0) & (target < k)
    idx = target[keep] * k + pred[keep]
    return torch.bincount(idx, minlength=k * k).reshape(k, k)


def mean_iou(conf: torch.Tensor) -> float:
    conf = conf.double()
    inter = conf.diag()
    union = conf.sum(0) + conf.sum(1) - inter
    present = union > 0
    if not bool(present.any()):
        return 0.0
    return float((inter[present] / union[present]).mean())


@register_task("segmentation")
class Segmentation(ImageTask):
    metric = "miou"
    higher_is_better = True
    dense = True
    default_classes = 21

    def generate(self, n: int, shape: tuple, seed: int):
        return shapes_segmentation(n, shape, self.num_classes(), seed)

    def train_step(self, model, batch, ctx: StepContext) -> dict:
        loss, pixel_acc = cross_entropy_step(model, batch, ctx, AUX_WEIGHT)
        return {"loss": loss, "pixel_accuracy": pixel_acc}

    def evaluate(self, model, batches, ctx: StepContext) -> dict:
        k = self.num_classes()
        conf = torch.zeros((k, k), dtype=torch.long, device=ctx.device)
        loss_sum = torch.zeros((), device=ctx.device)
        pixels = 0
        for x, y in batches:
            with ctx.autocast():
                main, _ = split_outputs(model(x))
            loss_sum += F.cross_entropy(main.float(), y, reduction="sum")
            conf += confusion_matrix(main.argmax(1), y, k)
            pixels += y.numel()
        conf = conf.cpu()
        return {
            "miou": mean_iou(conf),
            "pixel_accuracy": float(conf.diag().sum()) / max(1, int(conf.sum())),
            "loss": float(loss_sum) / max(1, pixels),
        }
