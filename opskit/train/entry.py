"""``python -m opskit.train MODEL [options]``: parse, build, check, train, write the results.

``main(argv) -> int`` parses and prints errors (exit 2 for bad input, 1 for failures, 143 after
SIGTERM); ``train(args) -> int`` does the work and raises ``TrainError`` subclasses, so the
``opskit train`` CLI can map them onto its own boundary. Nothing happens at import.

Order of work, so that bad input fails before anything is written: resolve the model and its
task, build the model, load the data, check the input size against the network, load and
check the checkpoint (``--resume``), and only then open ``--out``.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opskit.train.args import TrainArgs, parse_args
from opskit.train.errors import (
    EXIT_FAILED,
    InputTooSmallError,
    TrainError,
    TrainUsageError,
    UnknownModelError,
)
from opskit.train.resume import changed as changed_on_resume
from opskit.train.resume import effective


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad usage (2)
        return int(exc.code or 0)
    try:
        if args.list_models:
            print(models_listing())
            return 0
        return train(args)
    except TrainError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code


def models_listing() -> str:
    """One line per model of the zoo: name, task, description."""
    from opskit.models.registry import get_model_info, list_models

    rows = []
    for name in list_models():
        info = get_model_info(name)
        rows.append(f"{name:16} {info.task:15} {info.description}")
    return "\n".join(rows)


def _quiet_torch_import() -> None:
    # torch warns at import when numpy is absent; training does not use numpy.
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")


def resolve(args: TrainArgs) -> tuple[Any, dict, Any]:
    """(ModelInfo, model_cfg, Task) for ``args.model``; errors name what is wrong."""
    from opskit.models.registry import UnknownModelError as ZooUnknown
    from opskit.models.registry import get_model_info
    from opskit.train.tasks.base import get_task

    if not args.model:
        raise TrainUsageError("no model given", "name one, e.g. `resnet18 --small`; see --list")
    try:
        info = get_model_info(args.model)
    except ZooUnknown as exc:
        raise UnknownModelError(str(exc), "see --list for the models and their tasks") from None
    model_cfg = {**(info.small if args.small else {}), **args.model_args}
    task = get_task(info.task)(info, model_cfg, args)
    return info, model_cfg, task


def build_model(task: Any, info: Any, model_cfg: dict):
    try:
        return task.build_model()
    except (TypeError, ValueError) as exc:
        # TypeError: an unknown --model-arg name; ValueError: a value the builder refuses.
        raise TrainUsageError(
            f"model {info.name!r} cannot be built with {model_cfg}: {exc}",
            "check the --model-arg names against the model's builder",
        ) from None


def check_input(model: Any, shape: tuple, model_name: str) -> None:
    """The input must fit the network; the error names the layer (before any training)."""
    import torch

    from opskit.models.summary import InputShapeError, NoShapeRuleError
    from opskit.models.summary import check_input as zoo_check

    try:
        zoo_check(model, shape)
        return
    except InputShapeError as exc:
        raise InputTooSmallError(
            f"{model_name}: input {'x'.join(map(str, shape))} does not fit: {exc}",
            "use a larger --input, or the model's small variant (--small)",
        ) from None
    except NoShapeRuleError:
        pass  # a layer the analytic walk does not know: try a real forward pass instead
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros((1, *shape)))
    except RuntimeError as exc:
        raise InputTooSmallError(
            f"{model_name}: input {'x'.join(map(str, shape))} does not go through the network: "
            f"{str(exc).splitlines()[0]}",
            "use a larger --input, or the model's small variant (--small)",
        ) from None
    finally:
        model.train(was_training)


def data_input_shape(task: Any, train_ds: Any) -> tuple | None:
    """The shape to check: the data file's own when --data is a file, else the task's."""
    import torch

    shape = task.input_shape()
    if shape is None or task.args.data in ("shapes", "synthetic"):
        return shape
    first = train_ds.get_batch(torch.tensor([0]))
    while isinstance(first, (tuple, list)):
        first = first[0]
    return tuple(first.shape[1:])


def train(args: TrainArgs, on_step: Callable | None = None) -> int:
    """Run one training; returns 0 (completed) or 143 (SIGTERM); raises TrainError."""
    _quiet_torch_import()
    from opskit.train import distributed

    dist = distributed.setup(args.device)
    try:
        trainer, resumed = build_trainer(args, dist, on_step)
        code = execute(trainer, resumed)
        # Every rank waits until rank 0 has written its files: a rank that tore the process group
        # down while rank 0 was still writing was seen aborting in gloo (SIGABRT, "terminate called
        # without an active exception"), failing a two-node job that had completed.
        distributed.barrier(dist)
        return code
    finally:
        distributed.cleanup()


def build_trainer(args: TrainArgs, dist: Any, on_step: Callable | None = None):
    """Build everything and check it; the output folder is opened only at the end."""
    import torch

    from opskit.train.ampcheck import check_amp
    from opskit.train.loop import Trainer, place_dataset
    from opskit.train.metrics import RunFiles
    from opskit.train.sysmetrics import SystemSampler

    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    info, model_cfg, task = resolve(args)
    if dist.is_main:  # torchrun stops the other ranks when this one fails
        check_out_is_free(args)
    model = build_model(task, info, model_cfg)
    train_ds, val_ds = task.datasets(args.seed)
    shape = data_input_shape(task, train_ds)
    if shape is not None:
        check_input(model, shape, info.name)
    state, state_path = load_resume(args, task, model_cfg, model, dist.world_size)
    steps_per_epoch = len(train_ds) // (args.batch_size * dist.world_size)
    if steps_per_epoch == 0:
        raise TrainUsageError(
            f"{len(train_ds)} training samples make no batch of {args.batch_size} "
            f"on each of {dist.world_size} process(es)",
            "lower --batch-size or give more data",
        )
    total = args.steps or (args.epochs or 1) * steps_per_epoch
    ctx = make_context(args, dist)
    model = model.to(ctx.device)
    if ctx.channels_last:
        model = model.to(memory_format=torch.channels_last)
    check_amp(task, model, train_ds, val_ds, ctx)  # before any file is written
    ctx.optimizers = task.optimizers(model)
    ctx.scalers = [
        torch.amp.GradScaler(ctx.device.type, enabled=args.amp and ctx.device.type == "cuda")
        for _ in ctx.optimizers
    ]
    trainer = Trainer(
        args=args,
        task=task,
        model=wrap(model, task, args, dist),
        ctx=ctx,
        schedulers=task.schedulers(ctx.optimizers, total),
        train_ds=place_dataset(train_ds, ctx.device),
        val_ds=place_dataset(val_ds, ctx.device),
        dist=dist,
        files=RunFiles(args.out) if dist.is_main else None,
        total_steps=total,
        steps_per_epoch=steps_per_epoch,
        model_cfg=model_cfg,
        on_step=on_step,
        system=SystemSampler(ctx.device) if dist.is_main else None,
    )
    resumed = None
    if state is not None:
        trainer.restore(state)
        resumed = {"checkpoint": str(state_path), "step": trainer.step,
                   "changed": changed_on_resume(state, args.to_dict())}  # fmt: skip
    return trainer, resumed


RUN_FILES = ("metrics.jsonl", "summary.json", "run_card.json", "checkpoints/last.pt")


def check_out_is_free(args: TrainArgs) -> None:
    """Without --resume, never write over the results of an earlier run in --out."""
    if args.resume:
        return
    found = [name for name in RUN_FILES if (Path(args.out) / name).exists()]
    if found:
        raise TrainUsageError(
            f"--out {args.out} already holds a run ({', '.join(found)}); nothing was changed",
            "continue it with --resume, or give another --out",
        )


def load_resume(
    args: TrainArgs, task: Any, model_cfg: dict, model: Any, world_size: int
) -> tuple[dict | None, Any]:
    """(state, path) of the checkpoint to resume from (None, None without --resume), checked against
    this run's options (opskit.train.resume) and its weights loaded into ``model``."""
    from opskit.train import checkpoint as ckpt
    from opskit.train.resume import check_same_run

    if not args.resume:
        return None, None
    path = Path(args.out) / "checkpoints" / "last.pt" if args.resume == "auto" else args.resume
    state = ckpt.load_checkpoint(path)
    ckpt.check_matches(state, path, task.info.name)
    check_same_run(state, path, args.to_dict(), model_cfg, world_size, task)
    ckpt.load_model_state(model, state["model"], path)
    return state, path


def make_context(args: TrainArgs, dist: Any):
    import torch

    from opskit.train.tasks.base import StepContext

    amp_dtype = None
    if args.amp:
        amp_dtype = torch.float16 if dist.device.type == "cuda" else torch.bfloat16
    return StepContext(
        device=dist.device,
        amp=args.amp,
        amp_dtype=amp_dtype,
        channels_last=args.channels_last,
        max_grad_norm=args.max_grad_norm,
        rank=dist.rank,
        world_size=dist.world_size,
    )


def wrap(model: Any, task: Any, args: TrainArgs, dist: Any):
    import torch

    from opskit.train.distributed import wrap_ddp

    model = wrap_ddp(model, dist, task.ddp_find_unused_parameters)
    if args.compile:
        model = torch.compile(model)
    return model


def execute(trainer: Any, resumed: dict | None) -> int:
    """Open the output folder, install the SIGTERM handler, run, write the summary."""
    from opskit.train.metrics import Progress

    files, started = trainer.files, time.time()
    progress = Progress(trainer.total_steps, trainer.args.progress if files else "none")
    if files is not None:
        files.open(resume=resumed is not None)
        files.run_card(card_of(trainer, resumed, files.read_run_card()))
        progress.line(
            f"{trainer.task.info.name}: {trainer.total_steps} steps on {trainer.ctx.device}"
            + (f", resumed at step {trainer.step}" if resumed else "")
            + f", out={files.out}"
        )
    previous = signal.signal(signal.SIGTERM, trainer.request_stop)
    status, code, error = "failed", EXIT_FAILED, None
    try:
        code = trainer.run(progress)
        status = "completed" if code == 0 else "interrupted"
        metric = trainer.task.metric
        value = trainer.last_eval.get(metric)
        progress.line(
            f"{status} at step {trainer.step}/{trainer.total_steps}"
            + (f": {metric}={value:.4g}" if isinstance(value, float) else "")
        )
        return code
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
        progress.close()
        if files is not None:
            files.summary(summary(trainer, status, code, error, time.time() - started))
            files.close()


def card_of(trainer: Any, resumed: dict | None, previous: dict | None) -> dict:
    """The run card: the options as given, the values they resolved to, and on resume the
    checkpoint, the options changed since, and the cards of the earlier parts of the run."""
    from opskit.train.metrics import run_card

    args = trainer.args.to_dict()
    card = run_card(args, trainer.task.info.name, trainer.ctx.device, trainer.dist.world_size)
    eff = effective(args, trainer.task)
    local = _int_env("LOCAL_WORLD_SIZE", trainer.dist.world_size)  # torchrun: per node
    card["nodes"] = max(1, trainer.dist.world_size // max(1, local))
    card["resolved"] = {
        "lr": eff["lr"],
        "optimizer": eff["optimizer"],
        "model_cfg": trainer.model_cfg,
        "total_steps": trainer.total_steps,
        "steps_per_epoch": trainer.steps_per_epoch,
        "global_batch_size": trainer.args.batch_size * trainer.dist.world_size,
        "amp_dtype": str(trainer.ctx.amp_dtype).replace("torch.", "") if trainer.ctx.amp else None,
    }
    if resumed is not None:
        card["resumed"] = resumed
        if previous:
            earlier = previous.pop("parts", [])
            card["parts"] = [*earlier, previous]
    return card


def _int_env(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def summary(trainer: Any, status: str, code: int, error: str | None, wall: float) -> dict:
    final = {k: v for k, v in trainer.last_eval.items() if k not in ("kind",)}
    return {
        "status": status,
        "exit_code": code,
        "error": error,
        "model": trainer.task.info.name,
        "task": trainer.task.name,
        "metric": trainer.task.metric,
        "higher_is_better": trainer.task.higher_is_better,
        "step": trainer.step,
        "total_steps": trainer.total_steps,
        "epoch": trainer.step // trainer.steps_per_epoch,
        "final": final,
        "metric_value": final.get(trainer.task.metric),
        "train": {k: v for k, v in trainer.last_train.items() if k != "kind"},
        "evals": trainer.history,
        "wall_time_s": wall,
        "world_size": trainer.dist.world_size,
        "pid": os.getpid(),
    }
