"""A one-stage detector in the YOLO (v2/v3) style: one network pass, one dense prediction.

The image is divided into an ``S x S`` grid (one cell per feature-map position, stride
``2 ** stages``). Each cell predicts, for each of its ``A`` anchor shapes,
``(tx, ty, tw, th, objectness, class scores...)``:

* centre ``bx = (sigmoid(tx) + column) * stride`` - the sigmoid keeps the centre in its cell;
* size ``bw = anchor_w * exp(tw)`` - a stretch of the anchor, in log space;
* ``P(object)`` = ``sigmoid(objectness)`` and ``P(class | object)`` = softmax of the scores;
  a detection's score is their product.

Training: each ground-truth box is the responsibility of exactly one prediction - the cell
that contains its centre, and of that cell the anchor whose shape overlaps it best. That
prediction learns the box, the class and objectness 1; every other prediction learns
objectness 0, except those whose decoded box already overlaps an object by IoU > 0.5 (they
are ignored, as in YOLOv3, rather than punished for a good box). At inference, low scores are
dropped and non-maximum suppression removes duplicates per class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from opskit.models.catalogue import VOC_ANCHORS  # YOLOv2's VOC anchors, in pixels
from opskit.models.detection.backbone import ConvBackbone, conv_bn_act, unpad_targets
from opskit.models.detection.boxes import batched_nms, box_iou, clip_boxes, cxcywh_to_box
from opskit.models.registry import register_model


@dataclass(frozen=True)
class YOLOConfig:
    """Sizes of the one-stage detector (the builder's keyword arguments)."""

    num_classes: int = 20
    width: int = 32  # channels of the first backbone stage, doubling per stage
    stages: int = 5  # grid stride 2**stages (32: a 13x13 grid at 416x416)
    anchors: tuple = VOC_ANCHORS  # (width, height) in pixels
    in_channels: int = 3
    score_threshold: float = 0.05
    nms_threshold: float = 0.45


class YOLO(nn.Module):
    """Backbone + one 1x1 convolution giving ``A * (5 + C)`` numbers per grid cell."""

    def __init__(self, config: YOLOConfig | None = None):
        super().__init__()
        cfg = config or YOLOConfig()
        self.config = cfg
        self.num_classes = cfg.num_classes
        anchors = torch.tensor(cfg.anchors, dtype=torch.float32)
        self.register_buffer("anchors", anchors, persistent=False)
        self.backbone = ConvBackbone(cfg.in_channels, cfg.width, cfg.stages)
        c = self.backbone.out_channels
        self.neck = conv_bn_act(c, c)
        self.head = nn.Conv2d(c, len(cfg.anchors) * (5 + cfg.num_classes), 1)
        self.stride = self.backbone.stride
        self.score_threshold = cfg.score_threshold
        self.nms_threshold = cfg.nms_threshold

    def forward(
        self,
        images: torch.Tensor,
        boxes: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ):
        """Raw predictions ``(N, A * (5 + C), S, S)``; with targets, the loss dict instead.

        (Losses through ``forward`` so that a DDP wrapper sees the training pass.)
        """
        if boxes is not None:
            return self.loss(images, boxes, labels)
        return self.head(self.neck(self.backbone(images)))

    def shape_flow(self, x, t):  # for opskit.models.summary
        return t(self.head, t(self.neck, t(self.backbone, x)))

    def _split(self, raw: torch.Tensor) -> torch.Tensor:
        n, _, s_h, s_w = raw.shape
        a = self.anchors.shape[0]
        return raw.view(n, a, 5 + self.num_classes, s_h, s_w).permute(0, 3, 4, 1, 2).float()

    def decode(self, pred: torch.Tensor) -> torch.Tensor:
        """Boxes ``(N, S, S, A, 4)`` in pixels from predictions ``(N, S, S, A, 5 + C)``."""
        _, s_h, s_w, _, _ = pred.shape
        rows = torch.arange(s_h, device=pred.device, dtype=pred.dtype)[:, None, None]
        cols = torch.arange(s_w, device=pred.device, dtype=pred.dtype)[None, :, None]
        cx = (torch.sigmoid(pred[..., 0]) + cols) * self.stride
        cy = (torch.sigmoid(pred[..., 1]) + rows) * self.stride
        w = self.anchors[:, 0] * torch.exp(pred[..., 2].clamp(max=8))
        h = self.anchors[:, 1] * torch.exp(pred[..., 3].clamp(max=8))
        return cxcywh_to_box(torch.stack((cx, cy, w, h), dim=-1))

    def assign(self, boxes: torch.Tensor, labels: torch.Tensor, grid: tuple[int, int]):
        """Responsible (image, row, column, anchor) of every valid ground-truth box.

        Returns the index tensors, and the targets ``(frac_x, frac_y, tw, th)`` and labels.
        """
        img, slot = torch.nonzero(labels >= 0, as_tuple=True)
        gt = boxes[img, slot]
        cx, cy = (gt[:, 0] + gt[:, 2]) / 2, (gt[:, 1] + gt[:, 3]) / 2
        w, h = (gt[:, 2] - gt[:, 0]).clamp(min=1e-3), (gt[:, 3] - gt[:, 1]).clamp(min=1e-3)
        col = (cx / self.stride).floor().long().clamp(0, grid[1] - 1)
        row = (cy / self.stride).floor().long().clamp(0, grid[0] - 1)
        # Best anchor by shape alone: IoU of boxes with the same centre.
        inter = torch.minimum(w[:, None], self.anchors[:, 0]) * torch.minimum(
            h[:, None], self.anchors[:, 1]
        )
        shape_iou = inter / (w[:, None] * h[:, None] + self.anchors.prod(1) - inter)
        anchor = shape_iou.argmax(1)
        target = torch.stack(
            (
                cx / self.stride - col,
                cy / self.stride - row,
                torch.log(w / self.anchors[anchor, 0]),
                torch.log(h / self.anchors[anchor, 1]),
            ),
            dim=1,
        )
        return (img, row, col, anchor), target, labels[img, slot], w * h

    def loss(self, images: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor) -> dict:
        """Training losses for padded targets ``boxes (N, M, 4)``, ``labels (N, M)`` (-1 = none)."""
        pred = self._split(self(images))
        n, s_h, s_w, _, _ = pred.shape
        idx, target, cls, area = self.assign(boxes, labels, (s_h, s_w))
        obj_target = torch.zeros(pred.shape[:4], device=pred.device)
        obj_target[idx] = 1.0
        # Ignore the objectness of good boxes that are not responsible for an object.
        with torch.no_grad():
            decoded = self.decode(pred).reshape(n, -1, 4)
            best = torch.stack(
                [
                    box_iou(d, t["boxes"]).max(1).values
                    if t["boxes"].numel()
                    else d.new_zeros(d.shape[0])
                    for d, t in zip(decoded, unpad_targets(boxes, labels), strict=True)
                ]
            ).reshape(obj_target.shape)
        weight = torch.where((best > 0.5) & (obj_target == 0), 0.0, 1.0)
        weight = torch.where(obj_target == 1, weight, 0.5 * weight)  # lambda_noobj
        obj = F.binary_cross_entropy_with_logits(
            pred[..., 4], obj_target, weight=weight, reduction="sum"
        )
        p = pred[idx]
        scale = 2.0 - area / (images.shape[-1] * images.shape[-2])  # small boxes count more
        box = (
            scale[:, None] * (torch.cat((torch.sigmoid(p[:, :2]), p[:, 2:4]), 1) - target) ** 2
        ).sum()
        cls_loss = F.cross_entropy(p[:, 5:], cls, reduction="sum")
        return {"box": 5.0 * box / n, "objectness": obj / n, "classification": cls_loss / n}

    @torch.no_grad()
    def detect(self, images: torch.Tensor, max_detections: int = 100) -> list[dict]:
        """Per image ``{"boxes", "scores", "labels"}`` after score threshold and per-class NMS."""
        pred = self._split(self(images))
        n = pred.shape[0]
        boxes = self.decode(pred).reshape(n, -1, 4)
        scores = torch.sigmoid(pred[..., 4:5]) * torch.softmax(pred[..., 5:], dim=-1)
        scores = scores.reshape(n, -1, self.num_classes)
        h, w = images.shape[-2:]
        results = []
        for b, s in zip(boxes, scores, strict=True):
            anchor_idx, label = torch.nonzero(s > self.score_threshold, as_tuple=True)
            kept_boxes = clip_boxes(b[anchor_idx], h, w)
            kept_scores = s[anchor_idx, label]
            keep = batched_nms(kept_boxes, kept_scores, label, self.nms_threshold, max_detections)
            results.append(
                {"boxes": kept_boxes[keep], "scores": kept_scores[keep], "labels": label[keep]}
            )
        return results


@register_model("yolo")
def yolo(**cfg) -> YOLO:
    """One-stage YOLO-style detector: grid cells x anchors predict box, objectness, class."""
    return YOLO(YOLOConfig(**cfg))
