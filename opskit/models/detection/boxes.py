"""Box arithmetic shared by both detectors: areas, IoU, NMS and the box coder.

Boxes are ``(x1, y1, x2, y2)`` in continuous pixel coordinates: a box that covers pixels 0..9
is ``(0, 0, 10, 10)`` and has area 100 (no "+1" as in the old VOC code). Every function here is
plain torch, works on any device, and has a hand-computed unit test.
"""

from __future__ import annotations

import math

import torch


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas of ``(N, 4)`` boxes; degenerate boxes (x2 < x1) have area 0."""
    wh = (boxes[..., 2:] - boxes[..., :2]).clamp(min=0)
    return wh[..., 0] * wh[..., 1]


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every box in ``a (N, 4)`` with every box in ``b (M, 4)``.

    IoU = |A ∩ B| / (|A| + |B| - |A ∩ B|); the result is ``(N, M)``, 0 where the union is empty.
    """
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def clip_boxes(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Clamp boxes to the image ``[0, width] x [0, height]``."""
    x = boxes[..., 0::2].clamp(0, width)
    y = boxes[..., 1::2].clamp(0, height)
    return torch.stack((x[..., 0], y[..., 0], x[..., 1], y[..., 1]), dim=-1)


def remove_small(boxes: torch.Tensor, min_size: float) -> torch.Tensor:
    """Indices of boxes whose width and height are both at least ``min_size``."""
    wh = boxes[:, 2:] - boxes[:, :2]
    return torch.nonzero((wh >= min_size).all(dim=1)).flatten()


def nms(
    boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, max_output: int | None = None
) -> torch.Tensor:
    """Greedy non-maximum suppression; indices of the kept boxes, highest score first.

    Take the best remaining box, drop every remaining box that overlaps it by more than
    ``iou_threshold``, repeat (at most ``max_output`` times). A box that was dropped never
    suppresses anything itself - that ordering is what the unit test checks (a chain
    A > B > C where only B overlaps both).
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = torch.argsort(scores, descending=True)
    overlaps = (box_iou(boxes[order], boxes[order]) > iou_threshold).cpu()
    alive = torch.ones(len(order), dtype=torch.bool)
    keep: list[int] = []
    limit = len(order) if max_output is None else max_output
    while len(keep) < limit:
        remaining = torch.nonzero(alive)
        if remaining.numel() == 0:
            break
        i = int(remaining[0])
        keep.append(i)
        alive &= ~overlaps[i]
        alive[i] = False
    return order[torch.tensor(keep, dtype=torch.long, device=order.device)]


def batched_nms(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    groups: torch.Tensor,
    iou_threshold: float,
    max_output: int | None = None,
) -> torch.Tensor:
    """NMS within each group (class, or image), never across groups.

    The trick: shift each group's boxes by ``group * (max coordinate + 1)`` so that boxes of
    different groups can never overlap, then run one ordinary NMS.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    offsets = groups.to(boxes.dtype) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold, max_output)


def box_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """``(x1, y1, x2, y2)`` -> ``(cx, cy, w, h)``."""
    wh = boxes[..., 2:] - boxes[..., :2]
    return torch.cat((boxes[..., :2] + 0.5 * wh, wh), dim=-1)


def cxcywh_to_box(cxcywh: torch.Tensor) -> torch.Tensor:
    """``(cx, cy, w, h)`` -> ``(x1, y1, x2, y2)``."""
    half = 0.5 * cxcywh[..., 2:]
    return torch.cat((cxcywh[..., :2] - half, cxcywh[..., :2] + half), dim=-1)


class BoxCoder:
    """Faster R-CNN's box parameterisation, relative to a reference box (anchor or proposal).

    encode: ``dx = wx * (gx - ax) / aw``, ``dy = wy * (gy - ay) / ah``,
    ``dw = ww * log(gw / aw)``, ``dh = wh * log(gh / ah)`` with centres ``(x, y)`` and sizes
    ``(w, h)``. Offsets are scale-invariant (divided by the anchor size) and sizes are in log
    space, so one regressor serves small and large boxes. The weights scale the targets to
    roughly unit variance: (1, 1, 1, 1) for the RPN, (10, 10, 5, 5) for the box head.
    decode is the exact inverse; ``dw``/``dh`` are clamped so ``exp`` cannot overflow.
    """

    def __init__(self, weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)):
        self.weights = tuple(float(w) for w in weights)
        self.clamp = math.log(1000.0 / 16)

    def encode(self, reference: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        wx, wy, ww, wh = self.weights
        ref = box_to_cxcywh(reference)
        tgt = box_to_cxcywh(target)
        dx = wx * (tgt[:, 0] - ref[:, 0]) / ref[:, 2]
        dy = wy * (tgt[:, 1] - ref[:, 1]) / ref[:, 3]
        dw = ww * torch.log(tgt[:, 2] / ref[:, 2])
        dh = wh * torch.log(tgt[:, 3] / ref[:, 3])
        return torch.stack((dx, dy, dw, dh), dim=1)

    def decode(self, reference: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
        """Boxes from ``deltas (N, 4*k)`` relative to ``reference (N, 4)``; ``(N, 4*k)``."""
        wx, wy, ww, wh = self.weights
        ref = box_to_cxcywh(reference.to(deltas.dtype))
        d = deltas.reshape(deltas.shape[0], -1, 4)
        cx = d[..., 0] / wx * ref[:, 2:3] + ref[:, 0:1]
        cy = d[..., 1] / wy * ref[:, 3:4] + ref[:, 1:2]
        w = torch.exp((d[..., 2] / ww).clamp(max=self.clamp)) * ref[:, 2:3]
        h = torch.exp((d[..., 3] / wh).clamp(max=self.clamp)) * ref[:, 3:4]
        boxes = cxcywh_to_box(torch.stack((cx, cy, w, h), dim=-1))
        return boxes.reshape(deltas.shape[0], -1)


def match_boxes(
    iou: torch.Tensor, high: float, low: float, allow_low_quality: bool = False
) -> torch.Tensor:
    """Assign each prediction (column of ``iou (G, N)``) to a ground-truth box (row).

    Returns ``(N,)``: the matched ground-truth index where the best IoU >= ``high``, -1 where
    it is < ``low`` (background), -2 in between (ignored in the loss). With
    ``allow_low_quality`` every ground-truth box also keeps the predictions that overlap it
    best, even below ``high`` - so that no object is left without a positive anchor.
    """
    n = iou.shape[1]
    if iou.shape[0] == 0:
        return torch.full((n,), -1, dtype=torch.long, device=iou.device)
    best_iou, matched = iou.max(dim=0)
    original = matched.clone()
    matched[best_iou < high] = -2
    matched[best_iou < low] = -1
    if allow_low_quality:
        best_per_gt = iou.max(dim=1, keepdim=True).values
        pred_idx = torch.nonzero((iou == best_per_gt) & (best_per_gt > 0))[:, 1]
        matched[pred_idx] = original[pred_idx]
    return matched


def sample_balanced(
    matched: torch.Tensor, batch_size: int, positive_fraction: float, generator=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick at most ``batch_size`` labelled predictions, at most a fraction of them positive.

    ``matched`` as from :func:`match_boxes`. Returns the indices of the chosen positives and
    negatives. Random but repeatable through ``generator`` (or torch's global seed).
    """
    pos = torch.nonzero(matched >= 0).flatten()
    neg = torch.nonzero(matched == -1).flatten()
    n_pos = min(pos.numel(), int(batch_size * positive_fraction))
    n_neg = min(neg.numel(), batch_size - n_pos)
    pos = pos[torch.randperm(pos.numel(), generator=generator, device="cpu")[:n_pos].to(pos.device)]
    neg = neg[torch.randperm(neg.numel(), generator=generator, device="cpu")[:n_neg].to(neg.device)]
    return pos, neg
