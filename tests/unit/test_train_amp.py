"""``--amp`` where autocast cannot run is refused up front, with the reason and the module,
before anything is written (field case images-train/10); where it can, the run is unchanged."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
import torch
from torch import nn

from opskit.train.ampcheck import AmpUnsupportedError, check_amp
from opskit.train.args import TrainArgs
from opskit.train.distributed import setup
from opskit.train.entry import make_context, resolve

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/conftest.py

# images-train/10 with oneDNN held to AVX2: the CPUs of the report (no native bf16), which
# have no bf16 LSTM kernel, on any x86-64 machine.
CASE = ["--small", "--amp", "--device", "cpu", "--threads", "1", "--train-samples", "64",
        "--val-samples", "16", "--batch-size", "8", "--steps", "2", "--progress", "plain"]  # fmt: skip


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="oneDNN x86 ISA")
def test_lstm_amp_on_a_cpu_without_bf16_is_refused_up_front_gru_trains(tmp_path):
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "PYTHONDONTWRITEBYTECODE": "1"}
    results = {}
    for model in ("gru", "lstm"):
        out = tmp_path / model
        proc = subprocess.run([sys.executable, "-m", "opskit.train", model, *CASE, "--out",
                               str(out)], capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
        results[model] = (proc.returncode, proc.stderr, out.exists())
    assert results["gru"][0] == 0, results["gru"][1][-2000:]
    code, err, written = results["lstm"]
    assert code == 2, err[-2000:]
    assert "--amp: bfloat16 autocast cannot run model 'lstm' on cpu (in rnn (LSTM))" in err
    assert "LSTM forward propagation primitive" in err and "hint: run without --amp" in err
    assert "Traceback" not in err and not written


class WritesIntoFloat32(nn.Module):
    """A real pattern that only autocast breaks: results summed into a float32 buffer in
    place (scatter-sum pooling; autocast promotes out-of-place ops, not in-place ones)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        logits = self.net(x)  # bfloat16 under CPU autocast
        out = torch.zeros(logits.shape, dtype=torch.float32, device=logits.device)
        return out.index_add_(0, torch.arange(len(logits), device=logits.device), logits)


def probe_setup(tmp_path, amp=True):
    args = TrainArgs(model="lenet", small=True, amp=amp, device="cpu", train_samples=16,
                     val_samples=8, out=str(tmp_path))  # fmt: skip
    info, cfg, task = resolve(args)
    train_ds, val_ds = task.datasets(0)
    return task, task.build_model(), train_ds, val_ds, make_context(args, setup("cpu"))


def test_a_model_that_fails_only_under_autocast_is_refused_with_the_module(tmp_path):
    task, net, train_ds, val_ds, ctx = probe_setup(tmp_path)
    model = WritesIntoFloat32(net)
    with pytest.raises(AmpUnsupportedError) as caught:
        check_amp(task, model, train_ds, val_ds, ctx)
    msg = caught.value.message
    assert "bfloat16 autocast cannot run model 'lenet' on cpu" in msg
    assert "(in the model (WritesIntoFloat32))" in msg and "index_add_" in msg
    assert caught.value.exit_code == 2
    # The same model without --amp passes the probe: the failure is autocast's only.
    check_amp(task, model, train_ds, val_ds, make_context(TrainArgs(amp=False), setup("cpu")))


def test_a_passing_probe_leaves_the_model_and_random_state_as_they_were(tmp_path):
    task, model, train_ds, val_ds, ctx = probe_setup(tmp_path)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    check_amp(task, model, train_ds, val_ds, ctx)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())
