"""Mean average precision at IoU 0.5 (PASCAL VOC's metric, all-point interpolation).

Matching follows COCO's rule (the best-overlapping object *not yet matched*); VOC's devkit
instead takes the best-overlapping object and counts a false positive if it was already
matched. The two differ only when objects of one class overlap each other.

For each class: sort every detection of that class (over all images) by score; walk down the
list and call a detection a true positive if it overlaps a not-yet-matched ground-truth box of
the same image by IoU >= 0.5, else a false positive (a second detection of an already-found
object is a false positive - the duplicate that NMS should have removed). That gives a
precision/recall curve; AP is the area under its upper envelope (precision made monotonically
non-increasing from the right). mAP is the mean AP over the classes that have ground truth.
"""

from __future__ import annotations

import torch

from opskit.models.detection.boxes import box_iou


def average_precision(recall: torch.Tensor, precision: torch.Tensor) -> float:
    """Area under the interpolated precision/recall curve (VOC 2010+ all-point AP)."""
    r = torch.cat((torch.tensor([0.0]), recall.double().cpu(), torch.tensor([1.0])))
    p = torch.cat((torch.tensor([0.0]), precision.double().cpu(), torch.tensor([0.0])))
    # Upper envelope: precision at recall r is the best precision at any recall >= r.
    p = torch.flip(torch.cummax(torch.flip(p, [0]), dim=0).values, [0])
    changes = torch.nonzero(r[1:] != r[:-1]).flatten()
    return float(((r[changes + 1] - r[changes]) * p[changes + 1]).sum())


def _class_ap(detections: list[dict], targets: list[dict], cls: int, iou_thr: float):
    """AP of one class, or None when no image has a ground-truth box of that class."""
    gts = [t["boxes"][t["labels"] == cls] for t in targets]
    n_gt = sum(int(g.shape[0]) for g in gts)
    if n_gt == 0:
        return None
    # One IoU matrix per image (detections x objects); the greedy walk is plain Python.
    entries = []  # (score, image, row in that image's IoU matrix)
    ious = []
    for i, d in enumerate(detections):
        keep = d["labels"] == cls
        boxes, scores = d["boxes"][keep], d["scores"][keep]
        ious.append(box_iou(boxes, gts[i]).tolist() if gts[i].shape[0] else [])
        entries += [(s, i, r) for r, s in enumerate(scores.tolist())]
    entries.sort(key=lambda e: -e[0])  # stable: ties keep image order
    taken = [[False] * g.shape[0] for g in gts]
    tp = torch.zeros(len(entries))
    for rank, (_, image, row) in enumerate(entries):
        if not taken[image]:  # no object of this class in that image: a false positive
            continue
        # Each object can be found only once: a later detection of it is a false positive.
        candidates = [(v, j) for j, v in enumerate(ious[image][row]) if not taken[image][j]]
        if candidates:
            best, j = max(candidates)
            if best >= iou_thr:
                tp[rank] = 1.0
                taken[image][j] = True
    tp_cum = torch.cumsum(tp, 0)
    recall = tp_cum / n_gt
    precision = tp_cum / torch.arange(1, len(entries) + 1)
    return average_precision(recall, precision)


def mean_average_precision(
    detections: list[dict], targets: list[dict], num_classes: int, iou_threshold: float = 0.5
) -> dict:
    """mAP@``iou_threshold`` over images.

    ``detections[i]``: ``{"boxes" (D, 4), "scores" (D,), "labels" (D,)}`` for image ``i``;
    ``targets[i]``: ``{"boxes" (G, 4), "labels" (G,)}``. Labels are ``0..num_classes-1``.
    Returns ``{"map": float, "ap": {class: AP}}``; a class without ground truth is left out.
    """
    if len(detections) != len(targets):
        raise ValueError(f"{len(detections)} detection lists for {len(targets)} images")
    cpu = [{k: v.detach().cpu() for k, v in d.items()} for d in detections]
    tgt = [{k: v.detach().cpu() for k, v in t.items()} for t in targets]
    ap = {}
    for cls in range(num_classes):
        value = _class_ap(cpu, tgt, cls, iou_threshold)
        if value is not None:
            ap[cls] = value
    mean = sum(ap.values()) / len(ap) if ap else 0.0
    return {"map": mean, "ap": ap}
