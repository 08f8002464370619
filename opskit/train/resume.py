"""What ``--resume`` may and may not change.

A checkpoint continues *one* run. Options that define what the run is (its data, its batches,
its optimizer and schedule, its model, its processes) must equal the checkpoint's: a resume
that changed them would silently mix two runs (the restored optimizer and scheduler keep the
old learning rate, a new seed makes new data), and the run card would describe neither.
Such a resume is refused with every difference listed.

Options that only change how the rest of the run is executed may change on resume; the run
card records the values in effect and, under ``resumed.changed``, what they were before:

* ``--steps``/``--epochs``: the run's length; the learning-rate schedule (warm-up + cosine)
  is re-fitted to the new length from the resume step on;
* ``--device``, ``--threads``, ``--channels-last``, ``--compile``: where and how fast;
* ``--log-every``, ``--progress``, ``--out``, ``--resume``: reporting and paths.
"""

from __future__ import annotations

from typing import Any

from opskit.train.errors import CheckpointError

# args keys that must equal the checkpoint's (beside the model options and the world size)
RUN_DEFINING = ("seed", "batch_size", "lr", "optimizer", "small", "data", "train_samples",
                "val_samples", "input", "amp", "max_grad_norm")  # fmt: skip
MAY_CHANGE = ("steps", "epochs", "device", "threads", "channels_last", "compile", "log_every",
              "progress", "out", "resume")  # fmt: skip
MAY_CHANGE_TEXT = ("--steps/--epochs (the schedule is re-fitted to the new length), --device, "
                   "--threads, --channels-last, --compile, --log-every, --progress")  # fmt: skip


def effective(args: dict, task: Any) -> dict:
    """``args`` with the task's defaults filled in (lr None -> the task's default lr)."""
    out = dict(args)
    if out.get("lr") is None:
        out["lr"] = float(task.default_lr)
    if out.get("optimizer") is None:
        out["optimizer"] = task.default_optimizer
    return out


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def differences(state: dict, args: dict, model_cfg: dict, world_size: int, task: Any) -> list:
    """Human-readable differences between the checkpoint's run and this one ([] if none)."""
    saved = effective(state.get("args") or {}, task)
    now = effective(args, task)
    found = []
    for key in RUN_DEFINING:
        if key in saved and saved[key] != now.get(key):
            found.append(f"{_flag(key)} {saved[key]!r} (now {now.get(key)!r})")
    saved_cfg = state.get("model_cfg") or {}
    if saved_cfg != model_cfg:
        found.append(f"model options {saved_cfg} (now {model_cfg}; --small/--model-arg)")
    saved_world = state.get("world_size")
    if saved_world is not None and int(saved_world) != world_size:
        found.append(f"world size {saved_world} process(es) (now {world_size})")
    return found


def check_same_run(state: dict, path: Any, args: dict, model_cfg: dict, world_size: int,
                   task: Any) -> None:
    """Refuse a resume whose run-defining options differ from the checkpoint's."""
    found = differences(state, args, model_cfg, world_size, task)
    if found:
        raise CheckpointError(
            f"{path}: --resume with options that differ from the checkpoint's run: "
            + "; ".join(found) + ". Nothing was changed",
            "resume with the checkpoint's options, or start a new run in another --out; "
            f"only these may change on resume: {MAY_CHANGE_TEXT}",
        )


def changed(state: dict, args: dict) -> dict:
    """The may-change options that differ from the checkpoint's: {key: [before, now]}."""
    saved = state.get("args") or {}
    return {
        key: [saved[key], args.get(key)]
        for key in MAY_CHANGE
        if key in saved and saved[key] != args.get(key) and key not in ("out", "resume")
    }
