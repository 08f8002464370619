"""The one place that prints: rich tables, JSON, progress bars, per-host errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opskit.errors import EXIT_FAILED, EXIT_OK, OpskitError


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


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
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=None, header_style="bold", pad_edge=False,
                  show_header=show_header)
    justify = justify or {}
    for col in columns:
        table.add_column(col, justify=justify.get(col, "left"), overflow="fold")  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    console().print(table)


def print_line(text: str = "", *, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    stream.write(text + "\n")
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
