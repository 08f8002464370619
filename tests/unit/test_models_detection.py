"""Both detectors: registry entries, output shapes, losses, detections, and the shapes data."""

import pytest
import torch

from opskit.models.registry import get_model, get_model_info, list_models
from opskit.train.data.boxes import make_shapes


@pytest.fixture(scope="module")
def data():
    return make_shapes(4, seed=0)


@pytest.mark.parametrize("name", ["yolo", "faster_rcnn"])
def test_detector_registered_with_small_variant(name):
    info = get_model_info(name)
    assert info.task == "detection" and info.family == "detection"
    assert name in list_models("detection")
    assert info.small["num_classes"] == 3 and info.small_input_shape == (3, 48, 48)


@pytest.mark.parametrize("name", ["yolo", "faster_rcnn"])
def test_losses_are_finite_and_backpropagate(name, data):
    torch.manual_seed(0)
    images, boxes, labels = data
    model = get_model(name, **get_model_info(name).small)
    losses = model(images.float() / 255, boxes, labels)
    assert losses and all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    sum(losses.values()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads), "every parameter gets a gradient"


@pytest.mark.parametrize("name", ["yolo", "faster_rcnn"])
def test_detect_returns_boxes_scores_labels_per_image(name, data):
    torch.manual_seed(0)
    model = get_model(name, **get_model_info(name).small).eval()
    out = model.detect(data[0].float() / 255)
    assert len(out) == 4
    for d in out:
        n = d["scores"].shape[0]
        assert d["boxes"].shape == (n, 4) and d["labels"].shape == (n,)
        assert ((d["labels"] >= 0) & (d["labels"] < 3)).all()
        assert (d["boxes"] >= 0).all() and (d["boxes"] <= 48).all()


def test_yolo_raw_output_shape_and_reference_grid():
    small = get_model("yolo", **get_model_info("yolo").small)
    assert small(torch.zeros(2, 3, 48, 48)).shape == (2, 2 * (5 + 3), 6, 6)
    ref = get_model("yolo", **get_model_info("yolo").reference)
    # YOLOv2 at 416: a 13 x 13 grid, 5 anchors x (5 + 20 VOC classes) = 125 channels.
    assert ref(torch.zeros(1, 3, 416, 416)).shape == (1, 125, 13, 13)


def test_yolo_assigns_each_box_to_its_cell_and_best_anchor():
    model = get_model("yolo", **get_model_info("yolo").small)  # stride 8, anchors 12 and 20 px
    boxes = torch.tensor([[[10.0, 10.0, 20.0, 20.0], [20.0, 28.0, 40.0, 48.0]]])
    labels = torch.tensor([[2, 0]])
    (img, row, col, anchor), target, cls, _ = model.assign(boxes, labels, (6, 6))
    # Centres (15, 15) -> cell (1, 1); (30, 38) -> cell (row 4, col 3).
    assert row.tolist() == [1, 4] and col.tolist() == [1, 3]
    assert anchor.tolist() == [0, 1] and cls.tolist() == [2, 0]
    assert target[0, :2].tolist() == pytest.approx([15 / 8 - 1, 15 / 8 - 1])
    assert target[1, 2].item() == pytest.approx(0.0)  # 20 px box on the 20 px anchor


def test_faster_rcnn_proposals_and_pooled_features():
    torch.manual_seed(0)
    model = get_model("faster_rcnn", **get_model_info("faster_rcnn").small).eval()
    features, logits, deltas = model(torch.zeros(2, 3, 48, 48))
    assert features.shape[-2:] == (12, 12)  # stride 4
    assert logits.shape == (2, 12 * 12 * 3) and deltas.shape == (2, 12 * 12 * 3, 4)
    anchors = model.anchors(features)
    proposals = model.propose(anchors, logits, deltas, (48, 48))
    assert all(len(p) <= 32 and (p >= 0).all() and (p <= 48).all() for p in proposals)
    pooled = model._pool(features, proposals)
    assert pooled.shape == (sum(len(p) for p in proposals), features.shape[1], 4, 4)


def test_shapes_data_deterministic_and_boxes_tight():
    a = make_shapes(16, seed=3)
    b = make_shapes(16, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(make_shapes(16, seed=4)[0], a[0])
    images, boxes, labels = a
    assert images.dtype == torch.uint8 and images.shape == (16, 3, 48, 48)
    assert ((labels >= 0).sum(1) >= 1).all(), "every image has an object"
    for i in range(16):
        for box, label in zip(boxes[i], labels[i], strict=True):
            if label < 0:
                continue
            x1, y1, x2, y2 = box.tolist()
            assert 0 <= x1 < x2 <= 48 and 0 <= y1 < y2 <= 48
            inside = images[i, :, int(y1) : int(y2) + 1, int(x1) : int(x2) + 1]
            assert inside.max() >= 128, "the object is drawn inside its box"


@pytest.mark.parametrize(
    ("model_cfg", "input_shape", "match"),
    [
        ({"num_classes": 3}, (3, 4, 4), "at least 24x24"),
        ({"num_classes": 2}, None, "3 classes, the model 2"),
    ],
)
def test_detection_task_refuses_bad_input_with_a_hint(model_cfg, input_shape, match):
    from opskit.train.args import TrainArgs
    from opskit.train.errors import DataError
    from opskit.train.tasks.base import get_task

    info = get_model_info("yolo")
    args = TrainArgs(model="yolo", small=True, input=input_shape, train_samples=8, val_samples=8)
    task = get_task("detection")(info, {**info.small, **model_cfg}, args)
    with pytest.raises(DataError, match=match) as err:
        task.datasets(0)
    assert err.value.hint
