"""``opskit scp`` and ``opskit chmod``: thin commands (parse -> one operation of
:mod:`opskit.files` -> render).

Heavy modules (paramiko, rich) are imported inside the command functions.
"""

from __future__ import annotations

from typing import Any

import click

from opskit.cli.common import common_options, inventory_option, json_option, traceback_option

MAX_FILES_LISTED = 20


def _print_copy(result: Any) -> None:
    from opskit.cli import render

    # sha256sum's own format, so the lines can be checked with `sha256sum -c` on that host.
    for f in result.files[:MAX_FILES_LISTED]:
        render.print_line(f"{f.sha256}  {f.path}")
    if len(result.files) > MAX_FILES_LISTED:
        render.print_line(f"... and {len(result.files) - MAX_FILES_LISTED} more (--json lists all)")
    count = len(result.files)
    render.print_line(
        f"copied {count} file{'s' if count != 1 else ''} ({render.human_bytes(result.bytes)}) "
        f"{result.source} -> {result.destination} in {result.seconds:.2f}s, sha256 verified"
    )
    for name, reason in result.skipped.items():
        render.print_line(f"skipped {name}: {reason}", err=True)
    for name, reason in result.refused.items():
        render.print_line(f"error: not copied {name!r}: {reason}", err=True)
    kept = [f.path for f in result.files if f.special_bits]
    if kept:
        render.print_line(f"note: setuid/setgid/sticky bits kept (--preserve-mode) on "
                          f"{', '.join(kept[:5])}" + (" ..." if len(kept) > 5 else ""), err=True)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("src")
@click.argument("dst")
@click.option("-r", "--recursive", is_flag=True, help="Copy a folder and everything in it.")
@click.option("-p", "--preserve-mode", is_flag=True,
              help="Keep every mode bit of the source, setuid/setgid/sticky included (cp -p). "
              "Default: the source's rwx bits masked by your umask, as cp without -p.")
@inventory_option
@json_option
@traceback_option
def scp(src: str, dst: str, recursive: bool, preserve_mode: bool, inventory: str | None,
        as_json: bool) -> int:
    """Copy SRC to DST; either may be HOST:PATH (a plain path or localhost:PATH is here).

    Every file is written to a temporary name beside its destination, checked with sha256 on
    both ends, then renamed into place: a failed copy never leaves a partial file and never
    harms a good copy already there. Host to host copies are relayed through this machine.
    Relative paths on a host start in the login user's home folder. Any file name is copied
    whole; a name inside a folder that cannot travel safely (a newline or other control
    character) is left out and named, the rest is copied, and the exit code is 1.

    \b
    --json keys: source, destination, folder, files [{path, size, sha256}], bytes,
    skipped [{path, reason}], refused [{path, reason}], seconds, verified ("sha256").
    """
    from opskit import events as ev
    from opskit.cli import render
    from opskit.files.scp import scp as copy

    view = ev.ignore if as_json else render.EventView()
    try:
        result = copy(src, dst, recursive=recursive, preserve_mode=preserve_mode,
                      inventory=inventory, emit=view)
    finally:
        if not as_json:
            view.close()  # type: ignore[union-attr]
    if as_json:
        render.print_json(result.to_dict())
    else:
        _print_copy(result)
    return 0 if result.ok else 1


def _print_chmod(group: Any) -> None:
    from opskit.cli import render

    rows = []
    for outcome in group:
        if outcome.ok:
            rows += [(outcome.host, p.path, p.octal, p.ls) for p in outcome.value.paths]
    if rows:
        render.print_table(["HOST", "PATH", "MODE", "LS -L"], rows)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("mode")
@click.argument("paths", nargs=-1)
@click.option("-R", "--recursive", is_flag=True, help="Change folders and everything in them.")
@click.option("--explain", is_flag=True, help="Spell the mode out (r=4, w=2, x=1).")
@common_options
def chmod(mode: str, paths: tuple[str, ...], recursive: bool, explain: bool,
          hosts: tuple[str, ...], inventory: str | None, as_json: bool) -> int:
    """Set MODE (octal like 755, or symbolic like u+x,go-w) on PATHs on each host.

    With --explain and no PATH, only explain the mode. A symbolic mode that starts with '-'
    goes after '--': opskit chmod -- -w FILE. Shows the resulting modes.

    \b
    --json keys: mode, explain [lines], hosts {HOST: {host, mode, recursive,
    paths [{path, mode (octal), ls, folder}]}}, errors {HOST: {error, message, hint}}.
    """
    from opskit.cli import render
    from opskit.errors import UsageError
    from opskit.files.chmod import change_mode, chmod_argv, current_umask
    from opskit.files.modes import explain_mode

    chmod_argv(mode, paths, recursive=recursive)  # mode and paths refused before connecting
    lines = explain_mode(mode, umask=current_umask()) if explain else []
    if not paths:
        if not explain:
            raise UsageError("no PATH given", "give one or more paths, or --explain MODE alone")
        if as_json:
            render.print_json({"mode": mode, "explain": lines})
        else:
            for line in lines:
                render.print_line(line)
        return 0
    from opskit.cli.common import resolve_hosts
    from opskit.hosts.group import run_on_hosts

    specs = resolve_hosts(hosts, inventory)
    group = run_on_hosts(specs, lambda t: change_mode(t, mode, paths, recursive=recursive))
    if as_json:
        data = render.group_json(group, lambda v: v.to_dict())
        data.update({"mode": mode, "explain": lines})
        render.print_json(data)
        return 0 if group.ok else 1
    for line in lines:
        render.print_line(line)
    _print_chmod(group)
    return render.report_group_errors(group)
