"""A compact two-stage detector in the spirit of Faster R-CNN (Ren et al., 2015).

Stage 1, the **region proposal network (RPN)**: a 3x3 convolution slides over the shared
feature map; at every position two 1x1 convolutions score ``A`` anchors as object/not-object
and regress each anchor onto a box (``BoxCoder``). The best few hundred boxes after
non-maximum suppression are the *proposals*.

Stage 2, the **detection head** (Fast R-CNN): every proposal is cut out of the same feature
map with RoIAlign to a fixed ``pool x pool`` grid, two fully connected layers follow, then a
classifier over ``C + 1`` classes (0 = background) and a class-specific box refinement.

Training samples anchors for the RPN (IoU >= 0.7 positive, < 0.3 negative, plus each object's
best anchor) and proposals for the head (IoU >= 0.5 foreground, else background, with the
ground-truth boxes added as proposals), and adds the four losses: objectness BCE, RPN box
smooth-L1, head cross-entropy and head box smooth-L1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from opskit.models.detection.anchors import grid_anchors
from opskit.models.detection.backbone import ConvBackbone, unpad_targets
from opskit.models.detection.boxes import (
    BoxCoder,
    batched_nms,
    box_iou,
    clip_boxes,
    match_boxes,
    nms,
    remove_small,
    sample_balanced,
)
from opskit.models.detection.roi import roi_align
from opskit.models.registry import register_model


class RPN(nn.Module):
    """Region proposal network head: objectness logit and 4 box deltas per anchor."""

    def __init__(self, channels: int, num_anchors: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.objectness = nn.Conv2d(channels, num_anchors, 1)
        self.deltas = nn.Conv2d(channels, num_anchors * 4, 1)
        for layer in (self.conv, self.objectness, self.deltas):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, H*W*A)`` logits and ``(N, H*W*A, 4)`` deltas, in ``grid_anchors`` order."""
        t = F.relu(self.conv(features))
        n = features.shape[0]
        logits = self.objectness(t).permute(0, 2, 3, 1).reshape(n, -1)
        deltas = self.deltas(t).permute(0, 2, 3, 1).reshape(n, -1, 4)
        return logits, deltas

    def shape_flow(self, x, t):  # for opskit.models.summary
        x = t(self.conv, x)
        t(self.deltas, x)
        return t(self.objectness, x)


class BoxHead(nn.Module):
    """Two fully connected layers on pooled features, then class scores and box deltas."""

    def __init__(self, in_features: int, hidden: int, num_classes: int):
        super().__init__()
        self.fc6 = nn.Linear(in_features, hidden)
        self.fc7 = nn.Linear(hidden, hidden)
        self.cls_score = nn.Linear(hidden, num_classes + 1)
        self.bbox_pred = nn.Linear(hidden, 4 * (num_classes + 1))
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.fc7(F.relu(self.fc6(pooled.flatten(1)))))
        return self.cls_score(x), self.bbox_pred(x)

    def shape_flow(self, x, t):  # for opskit.models.summary
        x = t(self.fc7, t(self.fc6, t.flatten(x)))
        t(self.bbox_pred, x)
        return t(self.cls_score, x)


@dataclass(frozen=True)
class FasterRCNNConfig:
    """Sizes of the two-stage detector (the builder's keyword arguments)."""

    num_classes: int = 20
    width: int = 64  # channels of the first backbone stage, doubling per stage
    stages: int = 4  # backbone stride 2**stages
    anchor_sizes: tuple = (128, 256, 512)
    aspect_ratios: tuple = (0.5, 1.0, 2.0)
    pool_size: int = 7  # RoIAlign output is pool_size x pool_size
    hidden: int = 1024  # width of the head's two fully connected layers
    in_channels: int = 3
    proposals: tuple = (2000, 300)  # kept before / after the RPN's NMS
    detections_per_image: int = 100


class FasterRCNN(nn.Module):
    """Backbone -> RPN -> proposals -> RoIAlign -> box head."""

    def __init__(self, config: FasterRCNNConfig | None = None):
        super().__init__()
        cfg = config or FasterRCNNConfig()
        self.config = cfg
        self.num_classes = cfg.num_classes
        self.anchor_sizes, self.aspect_ratios = tuple(cfg.anchor_sizes), tuple(cfg.aspect_ratios)
        self.backbone = ConvBackbone(cfg.in_channels, cfg.width, cfg.stages)
        c = self.backbone.out_channels
        self.stride = self.backbone.stride
        self.rpn = RPN(c, len(self.anchor_sizes) * len(self.aspect_ratios))
        self.pool_size = cfg.pool_size
        self.head = BoxHead(c * cfg.pool_size**2, cfg.hidden, cfg.num_classes)
        self.rpn_coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
        self.head_coder = BoxCoder((10.0, 10.0, 5.0, 5.0))
        self.pre_nms, self.post_nms = cfg.proposals
        self.detections_per_image = cfg.detections_per_image

    def forward(
        self,
        images: torch.Tensor,
        boxes: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ):
        """Raw outputs: the feature map and the RPN's logits and deltas (no proposals).

        With targets, the loss dict instead (so that a DDP wrapper sees the training pass).
        """
        if boxes is not None:
            return self.loss(images, boxes, labels)
        features = self.backbone(images)
        logits, deltas = self.rpn(features)
        return features, logits, deltas

    def shape_flow(self, x, t):
        """For opskit.models.summary: backbone, RPN, and the head on one pooled region."""
        features = t(self.backbone, x)
        t(self.rpn, features)
        pooled = t.op("roi_align", (features[0], self.pool_size, self.pool_size), features)
        return t(self.head, pooled)

    def anchors(self, features: torch.Tensor) -> torch.Tensor:
        return grid_anchors(
            features.shape[-2:], self.stride, self.anchor_sizes, self.aspect_ratios, features.device
        )

    @torch.no_grad()
    def propose(self, anchors, logits, deltas, image_hw) -> list[torch.Tensor]:
        """Per image: top ``pre_nms`` anchors by objectness, decoded, clipped, NMS 0.7."""
        out = []
        for lg, dl in zip(logits.float(), deltas.float(), strict=True):
            top = torch.topk(lg, min(self.pre_nms, lg.numel())).indices
            boxes = clip_boxes(self.rpn_coder.decode(anchors[top], dl[top]), *image_hw)
            keep = remove_small(boxes, 1.0)
            boxes, scores = boxes[keep], lg[top][keep]
            keep = nms(boxes, scores, 0.7, self.post_nms)
            out.append(boxes[keep])
        return out

    def _pool(self, features: torch.Tensor, proposals: list[torch.Tensor]) -> torch.Tensor:
        rois = torch.cat(
            [torch.cat((torch.full_like(p[:, :1], i), p), 1) for i, p in enumerate(proposals)]
        )
        return roi_align(features, rois, (self.pool_size, self.pool_size), 1.0 / self.stride, 2)

    def rpn_loss(self, anchors, logits, deltas, targets) -> dict:
        labels, regression = [], []
        for t in targets:
            matched = match_boxes(box_iou(t["boxes"], anchors), 0.7, 0.3, allow_low_quality=True)
            pos, neg = sample_balanced(matched, 256, 0.5)
            lab = torch.full_like(matched, -1, dtype=torch.float32)
            lab[pos], lab[neg] = 1.0, 0.0
            reg = torch.zeros_like(anchors)
            if pos.numel():
                reg[pos] = self.rpn_coder.encode(anchors[pos], t["boxes"][matched[pos]])
            labels.append(lab)
            regression.append(reg)
        labels, regression = torch.stack(labels), torch.stack(regression)
        sampled = labels >= 0
        n_sampled = sampled.sum().clamp(min=1)
        obj = F.binary_cross_entropy_with_logits(
            logits.float()[sampled], labels[sampled], reduction="sum"
        )
        positive = labels == 1
        box = F.smooth_l1_loss(
            deltas.float()[positive], regression[positive], beta=1 / 9, reduction="sum"
        )
        return {"rpn_objectness": obj / n_sampled, "rpn_box": box / n_sampled}

    def head_targets(self, proposals, targets):
        """Sample proposals (ground truth added) and give each a class and box target."""
        kept, classes, regression = [], [], []
        for p, t in zip(proposals, targets, strict=True):
            p = torch.cat((p, t["boxes"]))
            matched = match_boxes(box_iou(t["boxes"], p), 0.5, 0.5)
            pos, neg = sample_balanced(matched, 128, 0.25)
            idx = torch.cat((pos, neg))
            cls = torch.zeros(idx.numel(), dtype=torch.long, device=p.device)
            reg = torch.zeros((idx.numel(), 4), device=p.device)
            if pos.numel():
                gt = matched[pos]
                cls[: pos.numel()] = t["labels"][gt] + 1
                reg[: pos.numel()] = self.head_coder.encode(p[pos], t["boxes"][gt])
            kept.append(p[idx])
            classes.append(cls)
            regression.append(reg)
        return kept, torch.cat(classes), torch.cat(regression)

    def loss(self, images: torch.Tensor, boxes: torch.Tensor, labels: torch.Tensor) -> dict:
        """The four training losses for padded targets (``labels == -1``: no object)."""
        features, logits, deltas = self(images)
        anchors = self.anchors(features)
        targets = unpad_targets(boxes, labels)
        losses = self.rpn_loss(anchors, logits, deltas, targets)
        proposals = self.propose(anchors, logits.detach(), deltas.detach(), images.shape[-2:])
        proposals, cls, reg = self.head_targets(proposals, targets)
        scores, box_deltas = self.head(self._pool(features, proposals))
        losses["head_classification"] = F.cross_entropy(scores.float(), cls)
        fg = torch.nonzero(cls > 0).flatten()
        box_deltas = box_deltas.float().reshape(-1, self.num_classes + 1, 4)[fg, cls[fg]]
        losses["head_box"] = F.smooth_l1_loss(box_deltas, reg[fg], beta=1.0, reduction="sum") / max(
            cls.numel(), 1
        )
        return losses

    @torch.no_grad()
    def detect(
        self, images: torch.Tensor, score_threshold: float = 0.05, nms_threshold: float = 0.5
    ) -> list[dict]:
        """Per image ``{"boxes", "scores", "labels"}`` (labels ``0..C-1``)."""
        features, logits, deltas = self(images)
        proposals = self.propose(self.anchors(features), logits, deltas, images.shape[-2:])
        scores, box_deltas = self.head(self._pool(features, proposals))
        probs = torch.softmax(scores.float(), -1)
        boxes = self.head_coder.decode(torch.cat(proposals), box_deltas.float())
        boxes = clip_boxes(boxes.reshape(-1, self.num_classes + 1, 4), *images.shape[-2:])
        results, start = [], 0
        for p in proposals:
            b, s = boxes[start : start + len(p), 1:], probs[start : start + len(p), 1:]
            start += len(p)
            idx, label = torch.nonzero(s > score_threshold, as_tuple=True)
            b, s = b[idx, label], s[idx, label]
            keep = remove_small(b, 1e-2)
            b, s, label = b[keep], s[keep], label[keep]
            keep = batched_nms(b, s, label, nms_threshold, self.detections_per_image)
            results.append({"boxes": b[keep], "scores": s[keep], "labels": label[keep]})
        return results


@register_model("faster_rcnn")
def faster_rcnn(**cfg) -> FasterRCNN:
    """Two-stage detector: region proposal network, RoIAlign, classification head."""
    return FasterRCNN(FasterRCNNConfig(**cfg))


__all__ = ["FasterRCNN", "RPN", "BoxHead", "faster_rcnn"]
