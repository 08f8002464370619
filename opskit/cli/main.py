"""The ``opskit`` entry point: a lazily loaded Click group and the one error boundary.

``opskit --help`` imports only click and this module: each command's module is imported
when that command runs, so torch, docker, paramiko and rich stay unloaded until needed.
"""

from __future__ import annotations

import importlib
import sys

import click

from opskit import __version__

# name -> (module, attribute, one-line help). The help lives here so --help imports nothing.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "status": ("opskit.cli.checks", "status", "One snapshot per host: OS, load, memory, disks, GPUs, Docker."),
    "df": ("opskit.cli.checks", "df", "Filesystems with size, used, free and percent (like df)."),
    "ps": ("opskit.cli.checks", "ps", "Processes with cpu%, mem%, elapsed time; GPU processes too."),
    "scp": ("opskit.cli.files", "scp", "Copy files to/from hosts, sha256-verified, never half-written."),
    "chmod": ("opskit.cli.files", "chmod", "Change file modes; --explain spells a mode out."),
    "hosts": ("opskit.cli.hosts", "hosts", "List, show and trust hosts from ~/.ssh/config and the inventory."),
    "base": ("opskit.cli.images", "base", "Make the offline base image (debootstrap, no registry)."),
    "build": ("opskit.cli.images", "build", "Build a layered training image for a project."),
    "image": ("opskit.cli.images", "image", "Inspect images: layers, sizes, what two images share."),
    "models": ("opskit.cli.models", "models", "The model zoo: list models, show layer shapes and parameters."),
    "train": ("opskit.cli.train", "train", "Train a model of the zoo here (the image's entry point too)."),
    "ship": ("opskit.cli.jobs", "ship", "Send an image to hosts, only the layers they lack."),
    "run-remote": ("opskit.cli.jobs", "run_remote", "Train on a remote host's GPUs and bring the results back."),
    "jobs": ("opskit.cli.jobs", "jobs", "Runs on hosts: model, state, start time, duration."),
    "logs": ("opskit.cli.jobs", "logs", "Show or follow a run's logs (reattaches after a disconnect)."),
    "cancel": ("opskit.cli.jobs", "cancel", "Stop a run: SIGTERM (checkpoint), then kill after a grace period."),
    "collect": ("opskit.cli.jobs", "collect", "Bring a run's results home, sha256-verified."),
    "runs": ("opskit.cli.runs", "runs", "The local store of runs (runs/)."),
    "play": ("opskit.cli.play", "play", "Run a playbook: steps over hosts, --check dry run, recap."),
    "project": ("opskit.cli.project", "project", "The project card: goal, metric, baseline, constraints."),
    "eval": ("opskit.cli.project", "eval_cmd", "Judge a run by the project card's metric and baseline (exit 0/1)."),
    "report": ("opskit.cli.reports", "report", "One offline HTML report of runs: curves, system metrics, verdict."),
    "data": ("opskit.cli.reports", "data", "Check a dataset before training: missing values, mixed types."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        module = importlib.import_module(entry[0])
        return getattr(module, entry[1])

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, entry[2]) for name, entry in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="opskit")
@click.option("--traceback", is_flag=True, expose_value=False,  # main() reads it from argv
              help="Show the full Python stack on errors.")
def cli() -> None:
    """opskit: host checks, layered GPU images and remote training from one command line.

    Hosts: no --host means this machine; --host NAME (repeatable) reaches hosts through
    ~/.ssh/config and the inventory; --host @group expands a group.
    Exit codes: 0 all well, 1 a check or a host failed, 2 bad usage or configuration.
    """


def _want_traceback(argv: list[str]) -> bool:
    if "--traceback" in argv:
        return True
    from opskit import settings
    from opskit.errors import OpskitError

    try:
        return bool(settings.get("traceback"))
    except OpskitError:  # a broken settings file: its own error is being reported
        return False


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; map every error to an exit code at this one boundary."""
    from opskit.cli import render

    args = list(sys.argv[1:] if argv is None else argv)
    token = render.set_json_output(False)
    try:
        sys.exit(_run(args))
    finally:
        render.reset_json_output(token)


def _run(args: list[str]) -> int:
    try:
        rv = cli.main(args=args, prog_name="opskit", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted.", err=True)
        return _json_error(args, KeyboardInterrupt("aborted"), 130)
    except click.ClickException as exc:
        exc.show()
        code = 2 if exc.exit_code in (1, 2) else exc.exit_code
        return _json_error(args, exc, code)
    except KeyboardInterrupt as exc:
        click.echo("Interrupted.", err=True)
        return _json_error(args, exc, 130)
    except Exception as exc:  # noqa: BLE001 - the one boundary
        from opskit.cli.errors import known_error, report

        code = report(exc, traceback=_want_traceback(args))
        return _json_error(args, known_error(exc), code)
    return rv if isinstance(rv, int) else 0


def _json_error(args: list[str], exc: BaseException, code: int) -> int:
    """With --json, the error is also one JSON document on stdout (the message stays on
    stderr for people); returns ``code``."""
    from opskit.cli import render

    if render.json_output() or "--json" in args:
        if isinstance(exc, click.ClickException):
            exc = _usage(exc)
        render.print_json_line(render.error_document(exc, code))
    return code


def _usage(exc: click.ClickException) -> BaseException:
    from opskit.errors import UsageError

    return UsageError(exc.format_message(), "see the command's --help")
