"""Checkpoints: model + optimizers + schedulers + scalers + args + position + RNG states.

Written to a temporary name in the same folder, flushed, then ``os.replace``d onto
``checkpoints/last.pt``, so a crash never leaves a half-written checkpoint at the final path.
Loaded with ``weights_only=True`` (no pickled code runs) and checked before anything is
written: a corrupt file, another model's checkpoint or mismatched shapes raise
``CheckpointError`` naming the file.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import torch

from opskit.train.errors import CheckpointError

FORMAT = "opskit.train/1"


def rng_state() -> dict:
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_as_python_state(state["python"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_python_state(s):
    # weights_only loading may turn the inner tuple into a list.
    return (s[0], tuple(s[1]), s[2])


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` (plus the format tag) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            torch.save({"format": FORMAT, **state}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by ``save_checkpoint``; ``CheckpointError`` if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no checkpoint to resume from",
            "run without --resume first, or pass --resume PATH to a checkpoint",
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise CheckpointError(
            f"{path}: corrupt or unreadable checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})",
            "remove it and start again without --resume; nothing was overwritten",
        ) from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an opskit.train checkpoint (format {FORMAT!r})")
    return state


def check_matches(state: dict, path: str | os.PathLike, model_name: str) -> None:
    """The checkpoint must be for the same model (its options: opskit.train.resume)."""
    args = state.get("args") or {}
    if args.get("model") != model_name:
        raise CheckpointError(
            f"{path}: checkpoint is for model {args.get('model')!r}, not {model_name!r}",
            "resume with the same model, or choose another --out",
        )


def load_model_state(model: torch.nn.Module, weights: dict, path: str | os.PathLike) -> None:
    """``load_state_dict(strict=True)`` with an error that names the file and the keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    shapes = [
        f"{k}: {tuple(weights[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in weights and tuple(weights[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:3]}")
        if shapes:
            parts.append(f"shape mismatch {shapes[:3]}")
        raise CheckpointError(
            f"{path}: checkpoint does not match the model ({'; '.join(parts)})",
            "resume with the same model options, or choose another --out",
        )
    model.load_state_dict(weights, strict=True)
