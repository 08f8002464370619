"""``--amp``: prove, before anything is written, that autocast can run this model here.

Whether autocast works depends on the model *and* the device: on a CPU, ``--amp`` means
bfloat16 autocast, and oneDNN has no bf16 LSTM kernel on x86 CPUs without native bf16
(AVX512-BF16/AMX), while GRU and plain RNN work; on GPUs other layers may lack fp16 kernels;
a model that writes a low-precision result into a float32 buffer fails only under autocast.
No table of layers can know all of that, so the check runs what training will run: one
training step and one evaluation, under autocast, of a *copy* of the model on two samples of
the real data (the random state is put back afterwards, so the run is the same as without the
check). If that fails and the same probe without autocast works, the failure is autocast's:
``--amp`` is refused (exit 2) with the reason and the module where it happened. A failure that
happens without autocast too is not ``--amp``'s and is left to the run to report.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch

from opskit.train import checkpoint as ckpt
from opskit.train.errors import TrainUsageError

PROBE_SAMPLES = 2


class AmpUnsupportedError(TrainUsageError):
    """``--amp`` on a model/device pair where autocast cannot run."""


def check_amp(task: Any, model: torch.nn.Module, train_ds: Any, val_ds: Any, ctx: Any) -> None:
    """Raise ``AmpUnsupportedError`` when autocast cannot train/evaluate ``model`` on
    ``ctx.device`` (``model`` is already on that device); nothing happens without --amp."""
    if not ctx.amp:
        return
    saved_rng = ckpt.rng_state()
    try:
        failure = probe(task, model, train_ds, val_ds, ctx, amp=True)
        if failure is None or probe(task, model, train_ds, val_ds, ctx, amp=False) is not None:
            return
    finally:
        ckpt.set_rng_state(saved_rng)
    exc, where = failure
    dtype = str(ctx.amp_dtype).replace("torch.", "")
    text = str(exc).strip()
    reason = text.splitlines()[0].rstrip(".") if text else type(exc).__name__
    raise AmpUnsupportedError(
        f"--amp: {dtype} autocast cannot run model {task.info.name!r} on {ctx.device}"
        + (f" (in {where})" if where else "")
        + f": {reason}. The same step without autocast works; nothing was written",
        "run without --amp"
        + (" (or on a CPU with native bf16, or on a GPU)" if ctx.device.type == "cpu" else ""),
    )


def _samples(ds: Any, ctx: Any) -> Any:
    from opskit.train.loop import to_device

    idx = torch.arange(min(PROBE_SAMPLES, len(ds)))
    return to_device(ds.get_batch(idx), ctx.device, ctx.channels_last)


def probe(task: Any, model: torch.nn.Module, train_ds: Any, val_ds: Any, ctx: Any,
          amp: bool) -> tuple[BaseException, str | None] | None:
    """One training step + one evaluation of a copy of ``model``; (error, module) or None."""
    trial = copy.deepcopy(model)
    optimizers = task.optimizers(trial)
    pctx = dataclasses.replace(
        ctx, optimizers=optimizers, amp=amp, amp_dtype=ctx.amp_dtype if amp else None,
        scalers=[torch.amp.GradScaler(ctx.device.type, enabled=amp and ctx.device.type == "cuda")
                 for _ in optimizers],
    )  # fmt: skip
    stack: list[str] = []
    hooks = _track_modules(trial, stack)
    try:
        trial.train()
        task.train_step(trial, _samples(train_ds, ctx), pctx)
        stack.clear()
        trial.eval()
        with torch.no_grad():
            task.evaluate(trial, [_samples(val_ds, ctx)], pctx)
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as exc:
        return exc, (stack[-1] if stack else None)
    finally:
        for h in hooks:
            h.remove()
        del trial, optimizers, pctx
        if ctx.device.type == "cuda":
            torch.cuda.empty_cache()
    return None


def _track_modules(model: torch.nn.Module, stack: list) -> list:
    """Hooks that keep ``stack`` = the modules whose forward is running, innermost last."""
    hooks = []
    for name, module in model.named_modules():
        label = f"{name or 'the model'} ({type(module).__name__})"

        def enter(_m, _inp, label=label):
            stack.append(label)

        def leave(_m, _inp, _out):
            if stack:
                stack.pop()

        hooks.append(module.register_forward_pre_hook(enter))
        hooks.append(module.register_forward_hook(leave))
    return hooks
