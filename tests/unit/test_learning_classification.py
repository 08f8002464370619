"""Learning, proven: each classifier and the small FCN learn the generated shapes on a CPU.

Small variants, 4 shape classes (chance: 25% accuracy), one CPU thread, a fixed number of
steps. The thresholds are far above chance and above what the same untrained network scores
(asserted too), so a network that does not learn (a broken layer, a frozen head, a wrong loss)
cannot pass. Segmentation: mean IoU over background + 3 shape classes; predicting background
everywhere scores about 0.2, the threshold is 0.4.
"""

from __future__ import annotations

import json

import pytest
import torch

from opskit.train.args import TrainArgs
from opskit.train.entry import resolve, train
from opskit.train.tasks.base import StepContext

CASES = [
    # model, steps, lr, batch, threshold
    ("lenet", 150, 2e-3, 32, 0.75),
    ("alexnet", 250, 1e-3, 32, 0.75),
    ("vgg11", 300, 1e-3, 32, 0.75),
    ("googlenet", 100, 2e-3, 32, 0.75),
    ("resnet18", 100, 2e-3, 32, 0.75),
    ("fcn", 300, 3e-3, 16, 0.40),
]


def args_for(model, steps, lr, batch, out) -> TrainArgs:
    return TrainArgs(
        model=model, small=True, steps=steps, lr=lr, batch_size=batch, seed=0,
        model_args={"num_classes": 4}, train_samples=2048, val_samples=256,
        out=str(out), device="cpu", threads=1, progress="none", log_every=50,
    )  # fmt: skip


def untrained_score(args: TrainArgs) -> float:
    """The task's metric for the freshly built network on the same validation data."""
    torch.manual_seed(args.seed)
    info, cfg, task = resolve(args)
    model = task.build_model().eval()
    _, val = task.datasets(args.seed)
    batches = (
        val.get_batch(torch.arange(i, min(len(val), i + 64))) for i in range(0, len(val), 64)
    )
    with torch.no_grad():
        return task.evaluate(model, batches, StepContext(device=torch.device("cpu")))[task.metric]


@pytest.mark.slow
@pytest.mark.parametrize("model, steps, lr, batch, threshold", CASES, ids=[c[0] for c in CASES])
def test_learns_the_generated_shapes(tmp_path, model, steps, lr, batch, threshold):
    args = args_for(model, steps, lr, batch, tmp_path)
    before = untrained_score(args)
    assert train(args) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    after = summary["final"][summary["metric"]]
    print(f"{model}: {summary['metric']} {before:.3f} untrained -> {after:.3f} after {steps} steps")
    assert before < threshold - 0.2, f"untrained {model} already scores {before:.3f}"
    assert after >= threshold, f"{model} reached {summary['metric']}={after:.3f} < {threshold}"
