"""``opskit train MODEL [options]``: train a model of the zoo on this machine.

The options are those of ``python -m opskit.train`` (the training image's entry point): this
command hands its arguments to the same parser and loop, and maps ``opskit.train``'s errors
onto the CLI's exit codes (2 bad input, 1 failure, 143 after SIGTERM). torch is imported only
when the command runs.
"""

from __future__ import annotations

import click

from opskit.errors import OpskitError, UsageError


def _stamp_project() -> None:
    """Runs record the project card (hash) they were made under: see opskit.project.card."""
    import json
    import os

    from opskit.project.card import project_stamp
    from opskit.train.metrics import PROJECT_ENV

    stamp = project_stamp()
    if stamp is None:
        os.environ.pop(PROJECT_ENV, None)
    else:
        os.environ[PROJECT_ENV] = json.dumps(stamp)


class TrainFailed(OpskitError):
    """Training failed for a reason that is not bad input (exit 1)."""


@click.command(
    "train",
    context_settings={
        "ignore_unknown_options": True,
        "allow_extra_args": True,
        "help_option_names": [],
    },
    add_help_option=False,
)
@click.pass_context
def train(ctx: click.Context) -> None:
    """Train a model of the zoo here (the image's entry point too).

    Run `opskit train --help` for the options (the same as `python -m opskit.train`).
    """
    from opskit.cli import render
    from opskit.train.args import parse_args
    from opskit.train.entry import models_listing
    from opskit.train.entry import train as run_training
    from opskit.train.errors import TrainError, TrainUsageError

    try:
        args = parse_args(list(ctx.args), prog="opskit train")
    except SystemExit as exc:  # argparse printed --help (0) or the usage error (2)
        raise click.exceptions.Exit(int(exc.code or 0)) from None
    try:
        if args.list_models:
            render.print_line(models_listing())
            return
        _stamp_project()
        code = run_training(args)
    except TrainUsageError as exc:
        raise UsageError(exc.message, exc.hint) from exc
    except TrainError as exc:
        raise TrainFailed(exc.message, exc.hint) from exc
    if code:
        raise click.exceptions.Exit(code)
