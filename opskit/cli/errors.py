"""Turn an exception into a message on stderr and an exit code (the CLI's one boundary)."""

from __future__ import annotations

import sys
import traceback as tb

import click

from opskit.errors import EXIT_FAILED, OpskitError, UsageError

# Modules that only the [train] extra installs: a command that needs one says so.
TRAIN_EXTRA = ("torch", "numpy")


def known_error(exc: BaseException) -> BaseException:
    """``exc``, or the OpskitError it stands for (a missing [train] extra, a docker-py error)."""
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in TRAIN_EXTRA:
        return UsageError(
            f"this command needs {exc.name}, which is not installed here",
            "install the training extra: pip install 'opskit[train]' (models list, ship, "
            "run-remote and jobs work without it)",
        )
    from opskit.hosts.dockererrors import docker_error, is_docker_exception

    if is_docker_exception(exc):  # a docker-py call no operation guarded: still one message
        return docker_error(exc, "the Docker engine")
    return exc


NL = "\n\t"


def report(exc: BaseException, *, traceback: bool = False) -> int:
    if traceback:
        tb.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    exc = known_error(exc)
    from opskit.cli.render import safe_text  # messages may quote a host's output

    if isinstance(exc, OpskitError):
        click.echo(f"error: {safe_text(exc.message, keep=NL)}", err=True)
        if exc.hint:
            click.echo(f"hint: {safe_text(exc.hint, keep=NL)}", err=True)
        return exc.exit_code
    click.echo(f"error: unexpected {type(exc).__name__}: {safe_text(exc, keep=NL)}", err=True)
    if not traceback:
        click.echo("hint: run again with --traceback for the full stack, and report it", err=True)
    return EXIT_FAILED
