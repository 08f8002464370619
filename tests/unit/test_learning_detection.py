"""Both detectors learn the generated shapes through the real training entry point.

Each run trains the small variant on CPU for a fixed number of steps with a fixed seed and
must reach mAP@0.5 >= 0.8 on held-out images. The same detector untrained scores about 0.01
(checked below), so a detector that does not learn - or a broken box decoder, matcher or NMS,
which each leave the boxes off their objects - cannot pass.
"""

import pytest
import torch
from _learning import train_small

from opskit.models.registry import get_model_info
from opskit.train.args import TrainArgs
from opskit.train.tasks.base import StepContext, get_task

MAP_THRESHOLD = 0.8
RUNS = {"yolo": 250, "faster_rcnn": 150}  # steps (mAP about 0.99 and 0.93 by then)


def train(tmp_path, name: str, steps: int) -> dict:
    return train_small(tmp_path / name, name, steps, batch=16, samples=(1024, 128))


def untrained_map(name: str) -> float:
    info = get_model_info(name)
    args = TrainArgs(model=name, small=True, train_samples=16, val_samples=128)
    task = get_task(info.task)(info, dict(info.small), args)
    torch.manual_seed(0)
    model = task.build_model().eval()
    _, val = task.datasets(0)
    batches = [val.get_batch(torch.arange(i, i + 32)) for i in range(0, 128, 32)]
    with torch.no_grad():
        return task.evaluate(model, batches, StepContext(device=torch.device("cpu")))["map"]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RUNS))
def test_detector_reaches_map(tmp_path, name):
    before = untrained_map(name)
    assert before < 0.1, (
        f"{name} untrained already scores {before:.3f}: the threshold means nothing"
    )
    summary = train(tmp_path, name, RUNS[name])
    assert summary["status"] == "completed" and summary["metric"] == "map"
    final = summary["final"]["map"]
    assert final >= MAP_THRESHOLD, (
        f"{name}: mAP@0.5 {final:.3f} < {MAP_THRESHOLD} (untrained {before:.3f})"
    )
