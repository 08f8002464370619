"""The training loop: output files, repeatable seeds, SIGTERM + --resume equal to one run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from opskit.train.args import TrainArgs, parse_args
from opskit.train.checkpoint import load_checkpoint
from opskit.train.entry import main, train

TIMING_KEYS = {"items_per_s", "items_per_s_ranks", "step_time_s", "data_time_s", "data_fraction", "time"}


def small_args(out: Path, **over) -> TrainArgs:
    base = dict(
        model="lenet", small=True, steps=6, batch_size=16, train_samples=64, val_samples=32,
        out=str(out), progress="none", device="cpu", threads=1, log_every=2, seed=0,
    )  # fmt: skip
    base.update(over)
    return TrainArgs(**base)


def read_metrics(out: Path) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in TIMING_KEYS and not k.startswith("sys_")}
            for x in lines]  # timings and system metrics are measurements, not results


def weights(out: Path) -> dict:
    return load_checkpoint(out / "checkpoints" / "last.pt")["model"]


def test_a_run_writes_metrics_summary_card_and_checkpoint(tmp_path):
    assert train(small_args(tmp_path)) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["step"] == 6
    assert summary["metric"] == "accuracy" and 0.0 <= summary["final"]["accuracy"] <= 1.0
    assert summary["metric_value"] == summary["final"]["accuracy"]
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_lines = [x for x in lines if x["kind"] == "train"]
    assert [x["step"] for x in train_lines] == [2, 4, 6]
    for key in ("loss", "accuracy", "items_per_s", "data_time_s", "step_time_s", "lr"):
        assert all(key in x for x in train_lines), key
    assert lines[-1]["kind"] == "eval" and "accuracy" in lines[-1]
    card = json.loads((tmp_path / "run_card.json").read_text())
    assert card["model"] == "lenet" and card["seed"] == 0 and card["device"] == "cpu"
    assert card["torch"] == torch.__version__ and card["host"]
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert {"model", "optimizers", "schedulers", "args", "step", "rng"} <= set(state)
    assert state["step"] == 6 and state["args"]["model"] == "lenet"
    assert not [p for p in (tmp_path / "checkpoints").iterdir() if p.name != "last.pt"]


def test_same_seed_same_run_other_seed_other_run(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 1), (b, 1), (c, 2)):
        assert train(small_args(out, seed=seed)) == 0
    assert read_metrics(a) == read_metrics(b)
    wa, wb, wc = weights(a), weights(b), weights(c)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


def test_sigterm_then_resume_equals_an_uninterrupted_run(tmp_path):
    # AlexNet with dropout: resuming must also restore the RNG that dropout draws from,
    # and the data order mid-epoch (8 steps per epoch, stopped at step 5 and at step 11).
    opts = dict(model="alexnet", steps=14, train_samples=128, log_every=3,
                model_args={"dropout": 0.5})  # fmt: skip
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert train(small_args(whole, **opts)) == 0

    def stop_at(step):
        def hook(trainer):
            if trainer.step == step:
                os.kill(os.getpid(), signal.SIGTERM)

        return hook

    assert train(small_args(parts, **opts), on_step=stop_at(5)) == 143
    summary = json.loads((parts / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["step"] == 5
    assert summary["exit_code"] == 143
    assert train(small_args(parts, resume="auto", **opts), on_step=stop_at(11)) == 143
    assert train(small_args(parts, resume="auto", **opts)) == 0
    done = json.loads((parts / "summary.json").read_text())
    ref = json.loads((whole / "summary.json").read_text())
    assert done["status"] == "completed" and done["step"] == 14
    assert done["final"] == ref["final"]
    strip = lambda d: {k: v for k, v in d.items() if k not in TIMING_KEYS and not k.startswith("sys_")}  # noqa: E731
    assert strip(done["train"]) == strip(ref["train"])
    w1, w2 = weights(whole), weights(parts)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    # Every metrics line of the uninterrupted run is in the resumed one, in order.
    assert read_metrics(parts) == read_metrics(whole)


def test_epochs_count_and_eval_each_epoch(tmp_path):
    args = small_args(tmp_path, steps=None, epochs=2, train_samples=48, log_every=100)
    assert train(args) == 0
    evals = [x for x in read_metrics(tmp_path) if x["kind"] == "eval"]
    assert [e["step"] for e in evals] == [3, 6]


def test_data_and_step_time_figures_agree(tmp_path):
    # Figures, not timing asserts (bench/train.py measures them): the window's data time, step
    # time, share and rate are measured and consistent with each other.
    assert train(small_args(tmp_path, steps=8, log_every=8)) == 0
    line = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert line["kind"] == "train" and line["step"] == 4  # 4 steps per epoch
    assert 0 < line["data_time_s"] < line["step_time_s"]
    assert line["data_fraction"] == pytest.approx(line["data_time_s"] / line["step_time_s"])
    assert line["items_per_s"] == pytest.approx(16 / line["step_time_s"])  # batch 16, 1 process


def test_argv_parsing_and_usage_exit_codes(capsys):
    args = parse_args(["lenet", "--small", "--model-arg", "num_classes=3", "--input", "3x28x28",
                       "--resume"])  # fmt: skip
    assert args.model_args == {"num_classes": 3} and args.input == (3, 28, 28)
    assert args.resume == "auto"
    assert main(["lenet", "--epochs", "1", "--steps", "2"]) == 2
    assert main(["lenet", "--model-arg", "oops"]) == 2
    assert main(["lenet", "--input", "3xAx2"]) == 2
    assert main(["--help"]) == 0
    assert "--resume" in capsys.readouterr().out


def test_progress_plain_lines_when_not_a_terminal(tmp_path, capsys):
    assert train(small_args(tmp_path, progress="auto")) == 0
    out = capsys.readouterr().out
    assert "step 2/6" in out and "eval step 6" in out and "\r" not in out
    assert "completed at step 6/6: accuracy=" in out


def test_real_sigterm_to_the_process_exits_143_with_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    argv = [sys.executable, "-m", "opskit.train", "lenet", "--small", "--steps", "100000",
            "--batch-size", "16", "--train-samples", "64", "--val-samples", "16",
            "--threads", "1", "--log-every", "1", "--device", "cpu", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        metrics = out / "metrics.jsonl"
        while not (metrics.exists() and metrics.read_text().count("\n") >= 3):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no metrics line within 120 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    state = load_checkpoint(out / "checkpoints" / "last.pt")
    assert state["step"] == summary["step"] >= 3
    assert "SIGTERM" in stdout


@pytest.mark.parametrize("flag", ["--channels-last", "--amp"])
def test_channels_last_and_amp_run_on_cpu(tmp_path, flag):
    args = parse_args(["lenet", "--small", "--steps", "2", "--batch-size", "8", "--out",
                       str(tmp_path), "--train-samples", "32", "--val-samples", "8",
                       "--threads", "1", "--progress", "none", "--device", "cpu", flag])  # fmt: skip
    seen = {}

    def inspect(trainer):  # what the flag changed in the running loop
        x, _ = trainer.batch_at(0)
        seen["nhwc"] = x.is_contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), trainer.ctx.autocast():
            seen["dtype"] = trainer.model(x).dtype

    assert train(args, on_step=inspect) == 0
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "completed"
    if flag == "--channels-last":
        assert seen == {"nhwc": True, "dtype": torch.float32}
    else:
        assert seen == {"nhwc": False, "dtype": torch.bfloat16}  # bf16 autocast on CPU


def test_progress_bar_on_a_terminal():
    import io

    from opskit.train.metrics import Progress

    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    bar = Progress(total=4, stream=stream)
    bar.update(2, "loss=1.0")
    bar.line("eval step 2: accuracy=0.5")
    bar.update(4, "loss=0.5")
    bar.close()
    text = stream.getvalue()
    assert bar.mode == "bar" and "\r[" in text and "2/4 loss=1.0" in text
    assert "\neval step 2: accuracy=0.5\n" in text and text.endswith("\n")


def test_a_crash_in_training_is_recorded_as_failed(tmp_path):
    def boom(trainer):
        if trainer.step == 3:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated crash"):
        train(small_args(tmp_path), on_step=boom)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["step"] == 3
    assert "simulated crash" in summary["error"]


def test_resume_after_a_crash_from_the_epoch_checkpoint(tmp_path):
    """SIGTERM at 5, resume, crash at 10: the epoch-end checkpoint (step 8) resumes exactly."""
    opts = dict(model="alexnet", steps=14, train_samples=128, log_every=3,
                model_args={"dropout": 0.5})  # fmt: skip
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert train(small_args(whole, **opts)) == 0

    def sigterm_at_5(trainer):
        if trainer.step == 5:
            os.kill(os.getpid(), signal.SIGTERM)

    def crash_at_10(trainer):
        if trainer.step == 10:
            raise RuntimeError("power cut")

    assert train(small_args(parts, **opts), on_step=sigterm_at_5) == 143
    with pytest.raises(RuntimeError):
        train(small_args(parts, resume="auto", **opts), on_step=crash_at_10)
    assert load_checkpoint(parts / "checkpoints" / "last.pt")["step"] == 8
    assert train(small_args(parts, resume="auto", **opts)) == 0
    done = json.loads((parts / "summary.json").read_text())
    ref = json.loads((whole / "summary.json").read_text())
    assert done["final"] == ref["final"]
    assert done["train"]["loss"] == ref["train"]["loss"]
    # The lines the last run wrote (train at 9, 12, 14; eval at 14) equal the uninterrupted ones.
    assert read_metrics(parts)[-4:] == read_metrics(whole)[-4:]
    assert [x["step"] for x in read_metrics(parts)[-4:]] == [9, 12, 14, 14]
    w1, w2 = weights(whole), weights(parts)
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
