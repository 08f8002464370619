"""Command-line arguments of ``python -m opskit.train`` (argparse, stdlib only)."""

from __future__ import annotations

import argparse
import ast
from dataclasses import asdict, dataclass, field


@dataclass
class TrainArgs:
    """Everything a run needs; ``parse_args`` fills it, tests may build it directly."""

    model: str = ""
    epochs: int | None = None
    steps: int | None = None
    batch_size: int = 64
    lr: float | None = None
    optimizer: str | None = None
    seed: int = 0
    device: str = "auto"
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    data: str = "shapes"
    out: str = "runs/train"
    resume: str | None = None
    small: bool = False
    model_args: dict = field(default_factory=dict)
    input: tuple | None = None
    train_samples: int = 4096
    val_samples: int = 512
    log_every: int = 20
    max_grad_norm: float | None = None
    progress: str = "auto"
    threads: int | None = None
    list_models: bool = False

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input"] = list(self.input) if self.input else None
        return d


def _shape(text: str) -> tuple:
    try:
        dims = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 3x32x32") from None
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"{text!r}: every dimension must be positive")
    return dims


def _model_arg(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE (e.g. width=0.25)")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value  # a plain string such as norm=batch


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
    return value


def build_parser(prog: str = "python -m opskit.train") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train a model of the opskit zoo. Writes metrics.jsonl, summary.json, "
        "run_card.json and checkpoints/last.pt to --out. SIGTERM checkpoints and exits 143.",
    )
    p.add_argument("model", nargs="?", default="", help="model name (see --list)")
    p.add_argument("--list", dest="list_models", action="store_true", help="list models")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=_positive, help="passes over the data (default 1)")
    length.add_argument("--steps", type=_positive, help="optimizer steps in total")
    p.add_argument("--batch-size", type=_positive, default=64, help="per process (default 64)")
    p.add_argument("--lr", type=float, help="learning rate (default: the task's)")
    p.add_argument("--optimizer", choices=["adamw", "sgd"], help="default: the task's")
    p.add_argument("--seed", type=int, default=0, help="same seed, same CPU run (default 0)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--amp", action="store_true", help="mixed precision (fp16 CUDA, bf16 CPU); checked first "
                   "with one step on a copy of the model: refused if autocast cannot run it here")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument(
        "--data",
        default="shapes",
        help="'shapes' (generated, learnable; default), 'synthetic' (random, for speed) "
        "a .npz file with arrays x and y (see opskit.train.data.files) or a folder of "
        "class folders of images (needs Pillow; see opskit.train.data.folders)",
    )
    p.add_argument("--out", default="runs/train", help="output folder (default runs/train)")
    p.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        help="continue from OUT/checkpoints/last.pt (or the checkpoint given). The options "
        "that define the run (--seed, --batch-size, --lr, --optimizer, --small, --model-arg, "
        "--data, --train-samples, --val-samples, --input, --amp, --max-grad-norm, the number "
        "of processes) must equal the checkpoint's, else it is refused with the differences; "
        "--steps/--epochs (the schedule is re-fitted to the new length), --device, --threads, "
        "--channels-last, --compile, --log-every and --progress may change (the run card "
        "records them under 'resumed')",
    )
    p.add_argument("--small", action="store_true", help="the model's small variant")
    p.add_argument(
        "--model-arg",
        dest="model_args",
        type=_model_arg,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="builder argument, repeatable (e.g. --model-arg num_classes=10)",
    )
    p.add_argument("--input", type=_shape, help="input shape CxHxW (default: the model's)")
    p.add_argument("--train-samples", type=_positive, default=4096, help="generated data")
    p.add_argument("--val-samples", type=_positive, default=512, help="generated data")
    p.add_argument("--log-every", type=_positive, default=20, help="steps per metrics line")
    p.add_argument("--max-grad-norm", type=float, help="clip gradients to this norm")
    p.add_argument("--progress", choices=["auto", "bar", "plain", "none"], default="auto")
    p.add_argument(
        "--threads", type=_positive, help="CPU threads for torch (default: torch's choice)"
    )
    return p


def parse_args(argv: list[str], prog: str = "python -m opskit.train") -> TrainArgs:
    """Parse ``argv``; argparse exits 2 on bad usage (and 0 for --help)."""
    ns = build_parser(prog).parse_args(argv)
    values = vars(ns)
    values["model_args"] = dict(values["model_args"])
    return TrainArgs(**values)
