"""Task API: registry, StepContext.backward_step, metrics of the classification/segmentation tasks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from opskit.train.errors import UnknownTaskError
from opskit.train.tasks.base import StepContext, Task, get_task, list_tasks, warmup_cosine
from opskit.train.tasks.classification import split_outputs
from opskit.train.tasks.segmentation import confusion_matrix, mean_iou


def test_registry_has_the_image_tasks_and_names_unknown_ones():
    assert {"classification", "segmentation"} <= set(list_tasks())
    assert get_task("classification").metric == "accuracy"
    assert get_task("segmentation").metric == "miou"
    with pytest.raises(UnknownTaskError, match="no training task 'juggling'; known tasks: "):
        get_task("juggling")


def test_backward_step_zeroes_steps_and_clips():
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ctx = StepContext(device=torch.device("cpu"), optimizers=[opt], max_grad_norm=1e-3)
    before = model.weight.detach().clone()
    model.weight.grad = torch.full_like(model.weight, 100.0)  # stale: must be zeroed first
    loss = (model(torch.ones(2, 4)) * 1000).sum()
    ctx.backward_step(loss)
    step = (model.weight.detach() - before).norm()
    assert 0 < float(step) <= 0.1 * 1e-3 * 1.01  # clipped gradient norm times lr


def test_autocast_is_a_noop_without_amp():
    ctx = StepContext(device=torch.device("cpu"))
    with ctx.autocast():
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32


def test_mean_iou_against_hand_counts():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 2, 0]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 2, 0, 0]])
    conf = confusion_matrix(pred, target, 3)
    assert conf.tolist() == [[2, 1, 0], [0, 2, 0], [1, 0, 2]]
    # IoU: class 0: 2/(3+3-2)=0.5, class 1: 2/(2+3-2)=2/3, class 2: 2/(3+2-2)=2/3
    assert mean_iou(conf) == pytest.approx((0.5 + 2 / 3 + 2 / 3) / 3)
    assert mean_iou(confusion_matrix(target, target, 3)) == 1.0
    # A class absent from both prediction and truth does not count.
    assert mean_iou(confusion_matrix(target, target, 5)) == 1.0


def test_split_outputs_handles_aux_heads():
    t = torch.zeros(1)
    assert split_outputs(t) == (t, [])
    main, aux = split_outputs((t, None, t + 1))
    assert main is t and len(aux) == 1
    main, aux = split_outputs({"out": t, "aux": t + 2})
    assert main is t and float(aux[0]) == 2


def test_warmup_cosine_shape():
    f = warmup_cosine(100, 0.1)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(100) == pytest.approx(0.0)
    assert all(f(i) >= f(i + 1) for i in range(10, 100))


def test_default_optimizers_follow_args():
    class Args:
        lr = 0.5
        optimizer = "sgd"

    task = Task(info=None, model_cfg={}, args=Args())
    (opt,) = task.optimizers(nn.Linear(2, 2))
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["lr"] == 0.5
    Args.optimizer = None
    (opt,) = Task(info=None, model_cfg={}, args=Args()).optimizers(nn.Linear(2, 2))
    assert isinstance(opt, torch.optim.AdamW)
