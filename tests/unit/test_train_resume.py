"""``--resume`` continues one run: run-defining options that differ from the checkpoint's are
refused with every difference listed (field case images-train/09); the options that may change
are recorded in the run card, which states only values the run used."""

from __future__ import annotations

import hashlib
import json
import os
import signal

from opskit.train.args import TrainArgs
from opskit.train.checkpoint import load_checkpoint, save_checkpoint
from opskit.train.entry import main, train

# images-train/09: lenet, seed 1, batch 32, stopped with SIGTERM after its first metrics line
FIRST = ["lenet", "--small", "--threads", "1", "--train-samples", "128", "--val-samples", "16",
         "--log-every", "2", "--progress", "none", "--device", "cpu", "--steps", "8"]  # fmt: skip


def stop_at(step):
    def hook(trainer):
        if trainer.step == step:
            os.kill(os.getpid(), signal.SIGTERM)

    return hook


def interrupted_run(out) -> None:
    args = TrainArgs(model="lenet", small=True, threads=1, train_samples=128, val_samples=16,
                     log_every=2, progress="none", device="cpu", steps=8, seed=1,
                     batch_size=32, out=str(out))  # fmt: skip
    assert train(args, on_step=stop_at(2)) == 143


def digests(out) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(out.rglob("*")) if p.is_file()}  # fmt: skip


def test_resume_with_other_seed_batch_and_lr_is_refused_with_all_differences(tmp_path, capsys):
    out = tmp_path / "cut"
    interrupted_run(out)
    before = digests(out)
    code = main([*FIRST, "--seed", "2", "--batch-size", "16", "--lr", "0.1", "--out", str(out),
                 "--resume"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "--seed 1 (now 2)" in err and "--batch-size 32 (now 16)" in err
    assert "--lr 0.001 (now 0.1)" in err  # the task's default, as the run used it
    assert "may change on resume: --steps/--epochs" in err
    assert digests(out) == before  # nothing written: run card, metrics, checkpoint
    card = json.loads((out / "run_card.json").read_text())
    assert (card["args"]["seed"], card["args"]["batch_size"]) == (1, 32)


def test_model_options_and_world_size_are_listed_too(tmp_path, capsys):
    out = tmp_path / "cut"
    interrupted_run(out)
    path = out / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    state["world_size"] = 2  # as a 2-process run writes it (see test_train_distributed)
    save_checkpoint(path, {k: v for k, v in state.items() if k != "format"})
    code = main([*FIRST, "--seed", "1", "--batch-size", "32", "--model-arg", "num_classes=5",
                 "--amp", "--out", str(out), "--resume"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "model options" in err and "'num_classes': 5" in err
    assert "world size 2 process(es) (now 1)" in err and "--amp False (now True)" in err


def test_same_options_resume_and_the_card_says_what_changed(tmp_path, capsys):
    out = tmp_path / "cut"
    interrupted_run(out)
    first_card = json.loads((out / "run_card.json").read_text())
    # --lr 0.001 is the task's default, which the first part used: the same run.
    code = main([*FIRST[:-1], "10", "--log-every", "5", "--seed", "1", "--batch-size", "32",
                 "--lr", "0.001", "--out", str(out), "--resume"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    card = json.loads((out / "run_card.json").read_text())
    assert card["args"]["steps"] == 10 and card["resolved"]["total_steps"] == 10
    assert card["resolved"]["lr"] == 0.001 and card["resolved"]["optimizer"] == "adamw"
    assert card["resumed"]["step"] == 2
    assert card["resumed"]["changed"] == {"steps": [8, 10], "log_every": [2, 5]}
    assert card["parts"] == [first_card]  # the first part's card, as it was
    assert json.loads((out / "summary.json").read_text())["step"] == 10
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    # every --log-every 5 after the resume, and at the epoch ends (4 steps per epoch)
    assert [x["step"] for x in lines if x["kind"] == "train"] == [2, 4, 5, 8, 10]
