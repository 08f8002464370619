"""Box utilities on hand-computed cases, each chosen so that a plausible wrong version fails."""

import math

import pytest
import torch
import torch.nn.functional as F

from opskit.models.detection.anchors import base_anchors, grid_anchors
from opskit.models.detection.boxes import (
    BoxCoder,
    batched_nms,
    box_area,
    box_iou,
    clip_boxes,
    match_boxes,
    nms,
    sample_balanced,
)
from opskit.models.detection.metrics import average_precision, mean_average_precision
from opskit.models.detection.roi import roi_align, roi_pool


def t(rows):
    return torch.tensor(rows, dtype=torch.float32)


def test_clip_boxes_to_a_wide_image():
    # 30 high, 50 wide: x clamps to [0, 50], y to [0, 30] (swapping the two would fail).
    boxes = t([[-5, -5, 60, 40], [10, 20, 45, 25], [40, 35, 70, 90]])
    assert clip_boxes(boxes, 30, 50).tolist() == [
        [0, 0, 50, 30],
        [10, 20, 45, 25],
        [40, 30, 50, 30],
    ]


def test_iou_hand_computed():
    a = t([[0, 0, 10, 10]])
    b = t([[5, 5, 15, 15], [0, 0, 10, 10], [10, 10, 20, 20], [2, 0, 4, 10], [20, 20, 30, 30]])
    iou = box_iou(a, b)[0]
    # 25 / (100 + 100 - 25); identical; touching corner; contained 20/100; disjoint.
    # (The old "+1 pixel" convention would give 36/207 and 1/241 for the first and third.)
    assert iou.tolist() == pytest.approx([25 / 175, 1.0, 0.0, 0.2, 0.0])
    assert box_area(t([[0, 0, 10, 10], [3, 3, 1, 1]])).tolist() == [100.0, 0.0]


def test_nms_suppressed_box_does_not_suppress():
    # A (0.9) overlaps B (0.8) by 0.6; B overlaps C (0.7) by 0.6; A and C overlap 0.2.
    # Greedy NMS at 0.5 keeps A and C: B is gone before it could remove C.
    # A version that suppresses by every higher-scored box (kept or not) drops C.
    boxes = t([[0, 0, 10, 10], [2.5, 0, 12.5, 10], [5, 0, 15, 10]])
    iou = box_iou(boxes, boxes)
    assert iou[0, 1] == pytest.approx(0.6) and iou[1, 2] == pytest.approx(0.6)
    assert iou[0, 2] == pytest.approx(50 / 150)
    keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    assert keep.tolist() == [0, 2]
    # Order of the result is by score, not by input position.
    keep = nms(boxes, torch.tensor([0.7, 0.8, 0.9]), 0.5)
    assert keep.tolist() == [2, 0]
    # The threshold is "more than": IoU exactly 0.6 at threshold 0.6 is kept.
    assert nms(boxes[:2], torch.tensor([0.9, 0.8]), 0.6).tolist() == [0, 1]
    assert nms(torch.zeros(0, 4), torch.zeros(0), 0.5).numel() == 0


def test_batched_nms_never_across_groups():
    boxes = t([[0, 0, 10, 10], [0, 0, 10, 10], [1, 0, 11, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [0, 1]
    assert batched_nms(boxes, scores, torch.tensor([0, 0, 0]), 0.5).tolist() == [0]


def test_box_coder_hand_values_and_round_trip():
    anchor = t([[0, 0, 10, 20]])  # centre (5, 10), 10 x 20
    gt = t([[5, 0, 25, 20]])  # centre (15, 10), 20 x 20
    coder = BoxCoder((1, 1, 1, 1))
    d = coder.encode(anchor, gt)[0]
    assert d.tolist() == pytest.approx([1.0, 0.0, math.log(2.0), 0.0])
    weighted = BoxCoder((10, 10, 5, 5)).encode(anchor, gt)[0]
    assert weighted.tolist() == pytest.approx([10.0, 0.0, 5 * math.log(2.0), 0.0])
    g = torch.Generator().manual_seed(0)
    refs = torch.rand(50, 2, generator=g) * 50
    refs = torch.cat((refs, refs + 5 + torch.rand(50, 2, generator=g) * 30), 1)
    targets = torch.rand(50, 2, generator=g) * 50
    targets = torch.cat((targets, targets + 3 + torch.rand(50, 2, generator=g) * 40), 1)
    for coder in (BoxCoder(), BoxCoder((10, 10, 5, 5))):
        back = coder.decode(refs, coder.encode(refs, targets))
        assert torch.allclose(back, targets, atol=1e-4)


def test_match_boxes_thresholds_and_low_quality():
    gt = t([[0, 0, 10, 10]])
    preds = t([[0, 0, 10, 10], [0, 0, 10, 5], [0, 0, 10, 2], [50, 50, 60, 60]])
    iou = box_iou(gt, preds)  # 1.0, 0.5, 0.2, 0
    assert match_boxes(iou, 0.7, 0.3).tolist() == [0, -2, -1, -1]
    # Without a good prediction, the best one is kept as a positive on request.
    iou = box_iou(gt, preds[1:])
    assert match_boxes(iou, 0.7, 0.3).tolist() == [-2, -1, -1]
    assert match_boxes(iou, 0.7, 0.3, allow_low_quality=True).tolist() == [0, -1, -1]
    pos, neg = sample_balanced(torch.tensor([0, 0, 0, -1, -1, -2]), 4, 0.5)
    assert len(pos) == 2 and len(neg) == 2 and set(neg.tolist()) == {3, 4}


def test_anchors_are_centred_on_cells():
    a = base_anchors((16,), (0.5, 1.0, 2.0))
    wh = a[:, 2:] - a[:, :2]
    assert (wh[:, 0] * wh[:, 1]).tolist() == pytest.approx([256.0] * 3)
    assert (wh[:, 1] / wh[:, 0]).tolist() == pytest.approx([0.5, 1.0, 2.0])
    g = grid_anchors((2, 3), 8, (4,), (1.0,))
    assert g.shape == (6, 4)
    # Row-major order: second anchor is the next column; centres at (j + 0.5) * stride.
    assert g[0].tolist() == [2, 2, 6, 6] and g[1].tolist() == [10, 2, 14, 6]
    assert g[3].tolist() == [2, 10, 6, 14]


def _det(boxes, scores, labels):
    return {"boxes": t(boxes), "scores": torch.tensor(scores), "labels": torch.tensor(labels)}


def test_map_duplicate_is_false_positive_and_interpolation():
    targets = [
        {"boxes": t([[0, 0, 10, 10], [20, 20, 30, 30]]), "labels": torch.tensor([0, 0])},
        {"boxes": t([[0, 0, 10, 10]]), "labels": torch.tensor([0])},
    ]
    dets = [
        # TP (0.9), duplicate of the same object (0.8) -> FP, second object (0.6) -> TP
        _det([[0, 0, 10, 10], [0, 0, 10, 9], [20, 20, 30, 30]], [0.9, 0.8, 0.6], [0, 0, 0]),
        # misplaced (IoU 0.4 < 0.5) -> FP at 0.7; the object there is never found
        _det([[0, 0, 10, 4]], [0.7], [0]),
    ]
    # Ranked: TP, FP, FP, TP -> precision 1, 1/2, 1/3, 1/2 at recall 1/3, 1/3, 1/3, 2/3.
    # All-point AP = 1/3 * 1 + 1/3 * 1/2 = 0.5. (Counting the duplicate as a TP gives 0.667 -
    # more than the truth, the failure NMS is there to avoid; the 11-point VOC07 AP 0.5454.)
    result = mean_average_precision(dets, targets, num_classes=2)
    assert result["ap"] == {0: pytest.approx(0.5)}
    assert result["map"] == pytest.approx(0.5)
    # Class labels matter: the same boxes labelled 1 find nothing of class 0.
    wrong = [{**d, "labels": torch.ones_like(d["labels"])} for d in dets]
    assert mean_average_precision(wrong, targets, num_classes=2)["map"] == 0.0
    # Perfect detections give 1.0.
    perfect = [
        _det(tg["boxes"].tolist(), [0.9] * len(tg["labels"]), tg["labels"].tolist())
        for tg in targets
    ]
    assert mean_average_precision(perfect, targets, num_classes=2)["map"] == pytest.approx(1.0)


def test_average_precision_uses_upper_envelope():
    # precision dips then rises: the envelope takes the later, higher value.
    recall = torch.tensor([0.25, 0.25, 0.5, 0.75])
    precision = torch.tensor([1.0, 0.5, 0.67, 0.75])
    assert average_precision(recall, precision) == pytest.approx(0.25 + 0.25 * 0.75 + 0.25 * 0.75)


def test_roi_align_hand_computed_and_against_grid_sample():
    feat = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)  # value = 4 * y + x
    # Box over cells 1..2 in x and y: the sample points of a 1x1 output with one sample sit at
    # the box centre (2, 2) in pixel units -> (1.5, 1.5) in cell units (centre at i + 0.5),
    # halfway between cells 1 and 2: the mean of 5, 6, 9, 10 = 7.5.
    rois = t([[0, 1, 1, 3, 3]])
    assert roi_align(feat, rois, (1, 1), 1.0, sampling_ratio=1).item() == pytest.approx(7.5)
    # A linear map is reproduced exactly by bilinear sampling: 2x2 output of a 4x4 box.
    out = roi_align(feat, t([[0, 0, 0, 4, 4]]), (2, 2), 1.0, sampling_ratio=2)
    # Bin (0, 0) averages points at 0.5 and 1.5 (pixel) -> cells 0 and 1 -> mean 0.5 in x, y.
    assert out[0, 0].flatten().tolist() == pytest.approx([2.5, 4.5, 10.5, 12.5])
    # Random features and boxes agree with torch's own bilinear sampler (align_corners=False).
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(2, 3, 6, 7, generator=g)
    boxes = torch.rand(5, 2, generator=g) * 6  # inside the map (points outside it read 0)
    boxes = torch.cat((boxes, boxes + 2 + torch.rand(5, 2, generator=g) * 5), 1)
    rois = torch.cat((torch.tensor([[0.0], [1.0], [1.0], [0.0], [1.0]]), boxes), 1)
    ours = roi_align(feats, rois, (3, 3), 0.5, sampling_ratio=2)
    ref = _grid_sample_roi_align(feats, rois, (3, 3), 0.5, 2)
    assert torch.allclose(ours, ref, atol=1e-5)


def _grid_sample_roi_align(feats, rois, size, scale, s):
    out = []
    for r in rois:
        b = int(r[0])
        x1, y1, x2, y2 = (r[1:] * scale).tolist()
        n_y, n_x = size[0] * s, size[1] * s
        ys = y1 + (torch.arange(n_y) + 0.5) * (y2 - y1) / n_y
        xs = x1 + (torch.arange(n_x) + 0.5) * (x2 - x1) / n_x
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        h, w = feats.shape[-2:]
        # Keep points inside the map (the reference kernel clamps at the border).
        grid = torch.stack(
            (gx.clamp(0.5, w - 0.5) / w * 2 - 1, gy.clamp(0.5, h - 0.5) / h * 2 - 1), -1
        )
        v = F.grid_sample(feats[b : b + 1], grid[None], align_corners=False)
        out.append(F.avg_pool2d(v, s))
    return torch.cat(out)


def test_roi_pool_max_over_quantised_bins():
    feat = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
    out = roi_pool(feat, t([[0, 0, 0, 3, 3]]), (2, 2), 1.0)
    # Box cells 0..3 (4 x 4, end inclusive), bins of 2 x 2: maxima 5, 7, 13, 15.
    assert out[0, 0].tolist() == [[5.0, 7.0], [13.0, 15.0]]
