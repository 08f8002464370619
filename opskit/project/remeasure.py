"""Monitoring: measure a trained run's metric again on fresh labelled data (``eval --data``).

The run's last checkpoint (``checkpoints/last.pt``: weights, model config and training
arguments) is rebuilt through the same task code that evaluated it during training, and
evaluated on every sample of ``FILE`` (an ``.npz`` with ``x``/``y`` as ``opskit train --data``
takes, e.g. what a deployment saw and a person labelled). Imports torch: run on demand only.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from types import SimpleNamespace

from opskit.errors import UsageError
from opskit.project.runread import RunData, results_dir

CHECKPOINT = Path("checkpoints") / "last.pt"


def _args_from(state: dict, data: str):
    from opskit.train.args import TrainArgs

    known = {f.name for f in dataclasses.fields(TrainArgs)}
    saved = {k: v for k, v in (state.get("args") or {}).items() if k in known}
    if isinstance(saved.get("input"), list):
        saved["input"] = tuple(saved["input"])
    return TrainArgs(**{**saved, "data": data, "resume": None, "device": "cpu", "progress": "none"})


def remeasure(run: RunData, data_file: str, metric: str) -> dict:
    """The task's metrics of ``run``'s checkpoint on all samples of ``data_file``."""
    ckpt_path = results_dir(run.path) / CHECKPOINT
    if not ckpt_path.is_file():
        raise UsageError(f"run {run.run_id} has no checkpoint {ckpt_path}",
                         "re-measuring needs the trained weights: collect the run first")
    if not Path(data_file).is_file():
        raise UsageError(f"no data file {data_file}", "give an .npz file with x and y arrays")
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")
    import torch

    from opskit.train import checkpoint as ckpt
    from opskit.train.data.tensors import TensorData
    from opskit.train.entry import build_model, make_context, resolve
    from opskit.train.errors import TrainError

    try:
        state = ckpt.load_checkpoint(ckpt_path)
        args = _args_from(state, data_file)
        info, model_cfg, task = resolve(args)
        model = build_model(task, info, model_cfg)
        ckpt.load_model_state(model, state["model"], ckpt_path)
        train, val = task.datasets(args.seed)
    except TrainError as exc:
        raise UsageError(f"{data_file}: {exc.message}", exc.hint) from None
    data = TensorData(*(torch.cat(pair) for pair in zip(train.tensors, val.tensors, strict=True)))
    ctx = make_context(args, SimpleNamespace(device=torch.device("cpu"), rank=0, world_size=1))

    def batches():
        for start in range(0, len(data), args.batch_size):
            yield data.get_batch(torch.arange(start, min(len(data), start + args.batch_size)))

    model.eval()
    with torch.no_grad():
        result = task.evaluate(model, batches(), ctx)
    if metric not in result:
        raise UsageError(f"the {task.name} task measures {', '.join(sorted(result))}, not {metric!r}",
                         "fix the card's metric name in opskit.yaml")
    return {"samples": len(data), "file": str(data_file), **result}
