"""Bad input to `python -m opskit.train` / `opskit train`: clear errors, exit 2, nothing written."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from opskit.train.data.files import save_npz
from opskit.train.entry import main

BASE = ["--small", "--steps", "2", "--batch-size", "8", "--train-samples", "32",
        "--val-samples", "8", "--threads", "1", "--device", "cpu", "--progress", "none"]  # fmt: skip


def run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.err


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_unknown_model_lists_the_known_ones(capsys, tmp_path):
    code, err = run(capsys, "resnet99", *BASE, "--out", str(tmp_path / "o"))
    assert code == 2
    assert "unknown model 'resnet99'" in err and "resnet18" in err and "lenet" in err
    assert not (tmp_path / "o").exists()


def test_input_too_small_names_the_layer_before_anything_is_written(capsys, tmp_path):
    out = tmp_path / "o"
    code, err = run(capsys, "alexnet", "--input", "3x16x16", "--steps", "2", "--out", str(out))
    assert code == 2
    assert "3x16x16" in err and "layer features." in err
    assert not out.exists()


def test_device_cuda_without_a_gpu(capsys, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, err = run(capsys, "lenet", *BASE[:-4], "--device", "cuda", "--out", str(tmp_path))
    assert code == 2 and "--device cuda: CUDA is not available" in err
    assert "--device cpu" in err


def _first_run(capsys, out):
    code, err = run(capsys, "lenet", *BASE, "--out", str(out))
    assert code == 0, err
    return out / "checkpoints" / "last.pt"


def test_corrupt_checkpoint_is_refused_and_left_alone(capsys, tmp_path):
    out = tmp_path / "o"
    ckpt = _first_run(capsys, out)
    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # truncated, as after a full disk
    before = {p.name: digest(p) for p in [ckpt, out / "metrics.jsonl", out / "summary.json"]}
    code, err = run(capsys, "lenet", *BASE, "--out", str(out), "--resume")
    assert code == 2
    assert str(ckpt) in err and "corrupt or unreadable checkpoint" in err
    after = {p.name: digest(p) for p in [ckpt, out / "metrics.jsonl", out / "summary.json"]}
    assert before == after


def test_checkpoint_of_another_model_or_config_is_refused(capsys, tmp_path):
    out = tmp_path / "o"
    ckpt = _first_run(capsys, out)
    before = digest(ckpt), digest(out / "metrics.jsonl")
    code, err = run(capsys, "resnet18", *BASE, "--out", str(out), "--resume")
    assert code == 2 and "checkpoint is for model 'lenet', not 'resnet18'" in err
    code, err = run(capsys, "lenet", *BASE, "--model-arg", "num_classes=5", "--out", str(out),
                    "--resume")  # fmt: skip
    assert code == 2 and "model options" in err
    assert (digest(ckpt), digest(out / "metrics.jsonl")) == before


def test_checkpoint_with_other_shapes_is_refused(capsys, tmp_path):
    out = tmp_path / "o"
    ckpt = _first_run(capsys, out)
    state = torch.load(ckpt, weights_only=True)
    state["model"]["classifier.0.weight"] = torch.zeros(3, 3)
    torch.save(state, ckpt)
    code, err = run(capsys, "lenet", *BASE, "--out", str(out), "--resume")
    assert code == 2 and "does not match the model" in err and "classifier.0.weight" in err


def test_resume_without_a_checkpoint(capsys, tmp_path):
    code, err = run(capsys, "lenet", *BASE, "--out", str(tmp_path / "none"), "--resume")
    assert code == 2 and "no checkpoint to resume from" in err


def test_data_file_of_the_wrong_shape_or_type(capsys, tmp_path):
    bad = tmp_path / "bad.npz"
    save_npz(bad, x=torch.rand(16, 32, 32), y=torch.zeros(16).long())
    code, err = run(capsys, "lenet", *BASE, "--data", str(bad), "--out", str(tmp_path / "o"))
    assert code == 2 and str(bad) in err and "expected 4 dimensions (N, C, H, W)" in err
    save_npz(bad, x=torch.rand(16, 3, 32, 32), y=torch.rand(16))
    code, err = run(capsys, "lenet", *BASE, "--data", str(bad), "--out", str(tmp_path / "o"))
    assert code == 2 and "'y' has dtype torch.float32" in err
    save_npz(bad, x=torch.rand(16, 3, 32, 32), y=torch.full((16,), 12))
    code, err = run(capsys, "lenet", *BASE, "--data", str(bad), "--out", str(tmp_path / "o"))
    assert code == 2 and "class index 12" in err and "num_classes=13" in err
    save_npz(bad, x=torch.rand(16, 3, 8, 8), y=torch.zeros(16).long())
    code, err = run(capsys, "lenet", *BASE, "--data", str(bad), "--out", str(tmp_path / "o"))
    assert code == 2 and "3x8x8" in err  # too small for LeNet's 5x5 convolutions
    assert not (tmp_path / "o").exists()


def test_user_npz_data_trains(capsys, tmp_path):
    good = tmp_path / "good.npz"
    save_npz(good, x=torch.rand(40, 3, 32, 32), y=torch.arange(40) % 10)
    out = tmp_path / "o"
    code, err = run(capsys, "lenet", *BASE, "--data", str(good), "--out", str(out))
    assert code == 0, err
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"


def test_bad_model_arg_names_the_model(capsys, tmp_path):
    code, err = run(capsys, "lenet", *BASE, "--model-arg", "nonsense=1", "--out", str(tmp_path))
    assert code == 2 and "model 'lenet' cannot be built" in err


def test_batch_larger_than_the_data(capsys, tmp_path):
    code, err = run(capsys, "lenet", "--small", "--batch-size", "64", "--train-samples", "32",
                    "--out", str(tmp_path))  # fmt: skip
    assert code == 2 and "make no batch of 64" in err


def test_model_arg_value_the_builder_refuses_exits_2(capsys, tmp_path):
    out = tmp_path / "o"
    code, err = run(capsys, "dcgan", *BASE, "--model-arg", "image_size=24", "--out", str(out))
    assert code == 2
    assert "dcgan" in err and "image_size" in err and "Traceback" not in err
    assert not out.exists()


def test_a_second_run_into_the_same_out_is_refused_and_changes_nothing(capsys, tmp_path):
    out = tmp_path / "o"
    assert run(capsys, "lenet", *BASE, "--out", str(out))[0] == 0
    before = {p.name: digest(p) for p in out.rglob("*") if p.is_file()}
    code, err = run(capsys, "lenet", *BASE, "--out", str(out))
    assert code == 2 and "already holds a run" in err and "--resume" in err
    assert {p.name: digest(p) for p in out.rglob("*") if p.is_file()} == before
