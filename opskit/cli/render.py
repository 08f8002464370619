"""The one place that prints: rich tables, JSON, progress bars, per-host errors, events.

Two renderers of an operation's event stream (:mod:`opskit.events`): :class:`EventView` for
people (progress on stderr: ``[host] ...`` lines, byte bars on a terminal, build steps; a
run's own output on stdout unless stdout carries JSON) and ``print_json_line`` of each event's
``to_dict()`` for machines. With ``--json`` a command writes exactly one JSON document on
stdout (JSON Lines for following commands, as their ``--help`` says), and an error becomes a
JSON document too (``error_document``), so ``opskit CMD --json | jq`` always parses.

Text from hosts (process command lines, mount points, file names, container output, their
error messages) is shown as TEXT: never read as Rich markup (``[/x]``, ``[link=...]``), and
control characters shown visibly (``\\x1b``, ``\\r``) so that no escape sequence reaches the
terminal (titles, clipboard writes, cleared screens) and no carriage return can overwrite a
``[host]`` prefix. :func:`safe_text` is that one rule; ``print_table`` and ``print_line`` apply
it to everything they print. JSON output keeps the raw strings (escaped by JSON itself).
"""

from __future__ import annotations

import contextvars
import json
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opskit.errors import EXIT_FAILED, EXIT_OK, OpskitError

# C0 controls, DEL and C1 controls (an 8-bit CSI is one byte); newline and tab only where the
# caller keeps them (a multi-line message of ours, an indented log line).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\r": "\\r", "\n": "\\n", "\t": "\\t"}


def _visible(m: re.Match) -> str:
    c = m.group(0)
    return _NAMED.get(c) or f"\\x{ord(c):02x}"


def safe_text(text: object, *, keep: str = "") -> str:
    """``text`` with every control character (but those in ``keep``, e.g. ``"\\n\\t"``)
    written visibly: ESC as ``\\x1b``, CR as ``\\r``. Markup needs no escaping here: tables
    take the result as plain ``rich.text.Text``; lines never go through Rich."""
    s = str(text)
    if not _CONTROL.search(s):
        return s
    return _CONTROL.sub(lambda m: m.group(0) if m.group(0) in keep else _visible(m), s)


# Set by the --json option of the command that runs (opskit.cli.common.json_option) and read
# by the error boundary: is stdout a machine's?
_JSON_OUTPUT: contextvars.ContextVar[bool] = contextvars.ContextVar("opskit_json", default=False)


def set_json_output(on: bool) -> contextvars.Token:
    return _JSON_OUTPUT.set(on)


def reset_json_output(token: contextvars.Token) -> None:
    _JSON_OUTPUT.reset(token)


def json_output() -> bool:
    return _JSON_OUTPUT.get()


def error_document(exc: BaseException, exit_code: int) -> dict:
    """What ``--json`` prints for a failed command: the error's keys and the exit code."""
    return {**error_dict(exc), "exit_code": exit_code}


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=pipe_width(stderr))


def pipe_width(stderr: bool = False) -> int | None:
    """Output to a pipe or file (no terminal, no $COLUMNS) is not folded at 80 columns: a run
    ID or a path cut in two cannot be grepped or pasted. A terminal, or $COLUMNS, decides as
    rich decides."""
    import os

    stream = sys.stderr if stderr else sys.stdout
    if os.environ.get("COLUMNS") or os.environ.get("TERM") == "dumb":
        return None
    try:
        if stream.isatty():
            return None
    except (AttributeError, ValueError):
        pass
    return 10_000


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def print_json_line(obj: Any) -> None:
    """One JSON object on one line (a stream of events: one line per event)."""
    sys.stdout.write(json.dumps(obj, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    justify: dict[str, str] | None = None,
    show_header: bool = True,
) -> None:
    """A table; every title and cell is plain text (see :func:`safe_text`), never markup."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=Text(safe_text(title)) if title is not None else None,
                  title_justify="left", box=None, header_style="bold", pad_edge=False,
                  show_header=show_header)
    justify = justify or {}
    for col in columns:
        table.add_column(Text(safe_text(col)), justify=justify.get(col, "left"),  # type: ignore[arg-type]
                         overflow="fold")
    for row in rows:
        table.add_row(*[Text("" if v is None else safe_text(v)) for v in row])
    console().print(table)


def print_line(text: str = "", *, err: bool = False) -> None:
    """One line (or a multi-line message of ours) as text: control characters but newline
    and tab are shown visibly, so a host's bytes cannot drive the terminal."""
    stream = sys.stderr if err else sys.stdout
    stream.write(safe_text(text, keep="\n\t") + "\n")
    stream.flush()


def error_dict(exc: BaseException) -> dict:
    if isinstance(exc, OpskitError):
        return exc.to_dict()
    return {"error": type(exc).__name__, "message": str(exc), "hint": None}


def print_host_error(host: str, exc: BaseException) -> None:
    msg = exc.message if isinstance(exc, OpskitError) else f"{type(exc).__name__}: {exc}"
    if not msg.startswith(f"{host}:"):
        msg = f"{host}: {msg}"
    print_line(f"error: {msg}", err=True)
    hint = getattr(exc, "hint", None)
    if hint:
        print_line(f"hint: {hint}", err=True)


def group_json(group: Any, value_to_dict: Callable[[Any], Any]) -> dict:
    """``{"hosts": {name: value}, "errors": {name: error}}`` for a GroupResult."""
    return {
        "hosts": {o.host: value_to_dict(o.value) for o in group if o.ok},
        "errors": {o.host: error_dict(o.error) for o in group if not o.ok},
    }


def report_group_errors(group: Any) -> int:
    """Print every failed host's error to stderr; return the exit code for the group."""
    for outcome in group:
        if not outcome.ok:
            print_host_error(outcome.host, outcome.error)
    return EXIT_OK if group.ok else EXIT_FAILED


def human_bytes(n: float | int | None, *, binary: bool = True) -> str:
    """Like ``df -h``: powers of 1024, one decimal under 10, e.g. 9.8G, 120G, 512K."""
    if n is None:
        return "-"
    n = float(n)
    base = 1024.0 if binary else 1000.0
    units = ["B", "K", "M", "G", "T", "P", "E"]
    i = 0
    while abs(n) >= base and i < len(units) - 1:
        n /= base
        i += 1
    if i == 0:
        return f"{int(n)}B"
    return f"{n:.1f}{units[i]}" if abs(n) < 10 else f"{n:.0f}{units[i]}"


class Progress:
    """A byte-progress bar on a terminal (stderr); silent otherwise."""

    def __init__(self, description: str, total: int | None, *, enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress: Any = None
        self._task: Any = None
        self.description = description
        self.total = total

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )
            from rich.progress import Progress as RichProgress

            self._progress = RichProgress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), TimeRemainingColumn(), console=console(stderr=True),
                transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=self.total)
        return self

    def advance(self, n: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=n)

    def __call__(self, n: int) -> None:
        self.advance(n)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)


class EventView:
    """Renders an operation's events for people.

    Steps, checks and build progress go to stderr as ``[host] ...`` lines (a spinner and a byte
    bar on a terminal); a run's log lines go to stdout as ``[host] line``, or to stderr when
    ``logs_to_stdout`` is false (stdout then carries one JSON document).
    """

    def __init__(self, *, logs_to_stdout: bool = True):
        self.logs_to_stdout = logs_to_stdout
        self._bar: Progress | None = None
        self._steps = {"built": 0, "cached": 0}

    def __call__(self, event: Any) -> None:
        kind = event.kind
        if kind == "log":
            print_line(f"[{event.host}] {event.line}", err=not self.logs_to_stdout)
        elif kind == "step":
            print_line(f"[{event.host}] {event.message}", err=True)
        elif kind == "check":
            print_line(f"[{event.host}] preflight {event.name}: {event.detail}", err=True)
        elif kind == "run_started":
            print_line(f"[{event.host}] started run {event.run_id} (container {event.container})",
                       err=True)
        elif kind == "transfer_started":
            self._bar = Progress(f"[{event.host}] {event.what}", event.total).__enter__()
        elif kind == "bytes_sent" and self._bar is not None:
            self._bar.advance(event.bytes)
        elif kind == "transfer_done":
            self.close()
        else:
            self._build(event)

    def _build(self, event: Any) -> None:
        """Build events (opskit.images.events), compactly: phases, built steps, warnings."""
        kind = event.kind
        if kind == "step_done" and event.status in self._steps:
            self._steps[event.status] += 1
            if event.status == "built":
                print_line(f"[localhost] build {event.build} [{event.index}/{event.total}] built "
                           f"{event.seconds:.2f}s  {event.instruction[:60]}", err=True)
        elif kind == "phase_started" and event.phase == "base":  # minutes: say so up front
            print_line(f"[localhost] build base: {event.detail}", err=True)
        elif kind == "phase_done":
            what = "reused" if event.reused else f"done in {event.seconds:.1f}s"
            if event.phase == "context" and "bytes" in event.detail:
                what = f"{human_bytes(event.detail['bytes'])}, {event.detail.get('files')} files"
            if event.phase == "image":
                what += f" ({self._steps['built']} steps built, {self._steps['cached']} cached)"
            print_line(f"[localhost] build {event.phase}: {what}", err=True)
        elif kind == "warning":
            print_line(f"[localhost] warning: {event.message}", err=True)
        elif kind == "build_failed":
            print_line(f"[localhost] build failed: {event.build} step {event.index}: "
                       f"{event.instruction}", err=True)

    def close(self) -> None:
        if self._bar is not None:
            bar, self._bar = self._bar, None
            bar.__exit__(None, None, None)
