"""``opskit play PLAYBOOK``: run a playbook's steps over hosts (see ``opskit.playbooks``).

Without --check and --yes, a playbook that would change something first shows its plan (a
dry run) and asks; with no terminal to ask on, it stops and says to add --yes. Every run
keeps a folder (plays/ by default) with events.jsonl and recap.json. Exit 0 when no host
failed, 1 when one failed or was unreachable, 2 for a playbook that does not check out.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from opskit.cli.common import common_options

STATUS_WIDTH = 11


@click.command("play")
@click.argument("playbook", type=click.Path(dir_okay=False))
@click.option("--check", is_flag=True, help="Dry run: change nothing, say what each step would do.")
@click.option("--yes", "-y", is_flag=True, help="Apply without showing the plan and asking.")
@click.option("--limit", "-l", metavar="HOSTS", default=None,
              help="Only these of the play's hosts (names or @groups, comma-separated).")
@click.option("--var", "-e", "variables", multiple=True, metavar="KEY=VALUE",
              help="Set a play variable (VALUE read as YAML: 7, [a, b], text); repeatable.")
@click.option("--forks", "-f", type=click.IntRange(1, 256), default=16, show_default=True,
              help="Hosts worked on at once.")
@common_options
def play(playbook: str, check: bool, yes: bool, limit: str | None, variables: tuple[str, ...],
         forks: int, hosts: tuple[str, ...], inventory: str | None, as_json: bool) -> int:
    """Run PLAYBOOK (YAML): steps over opskit's operations on each host, then a recap.

    --host (or @group) replaces the plays' own hosts. --json: one event per line
    (play_started, step_started, host_step, play_aborted, recap) on stdout.
    """
    from opskit.errors import UsageError
    from opskit.playbooks.engine import PlayOptions, any_failed
    from opskit.playbooks.schema import load_playbook

    path = Path(playbook)
    plays = load_playbook(path, _variables(variables))  # file:line:key named before any host
    targets = _targets(plays, hosts, inventory, limit)
    opts = PlayOptions(check=check, forks=forks, base_dir=path.resolve().parent)
    if not check and not yes:  # the plan first; shown (and asked about) only when it changes something
        shown: list = []
        plan = _execute(path, targets, PlayOptions(check=True, forks=forks, base_dir=opts.base_dir),
                        as_json, record=False, show=shown.append)
        if any(c["changed"] for c in plan.values()):
            _show_plan(shown, as_json)
        else:
            yes = True
    if not check and not yes:
        if as_json or not sys.stdin.isatty():
            raise UsageError("the playbook would change hosts (plan above) and no one can be asked here",
                             "run again with --yes to apply it, or with --check for the plan alone")
        if not click.confirm("Apply these changes?", default=False, err=True):
            return 1
    recap = _execute(path, targets, opts, as_json, record=True)
    return 1 if any_failed(recap) else 0


def _show_plan(events: list, as_json: bool) -> None:
    from opskit.cli import render

    if not as_json:
        render.print_line("PLAN (dry run, nothing changed yet)")
    for event in events:
        (_json_line if as_json else _human)(event)


def _variables(items: tuple[str, ...]) -> dict:
    import yaml

    from opskit.errors import UsageError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise UsageError(f"--var {item!r} is not KEY=VALUE", "for example: --var older_than_days=30")
        try:
            out[key] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            raise UsageError(f"--var {key}: {value!r} is not a YAML value",
                             "quote text with spaces: --var 'msg=hello world'") from None
    return out


def _targets(plays: list[Any], hosts: tuple[str, ...], inventory: str | None,
             limit: str | None) -> list[tuple[Any, list[Any]]]:
    from opskit.hosts.inventory import load_inventory

    inv = load_inventory(inventory)
    allowed = None
    if limit:
        allowed = {s.name for s in inv.expand([n.strip() for n in limit.split(",") if n.strip()])}
    out = []
    for p in plays:
        specs = inv.expand(list(hosts) or p.hosts or ["localhost"])
        out.append((p, [s for s in specs if allowed is None or s.name in allowed]))
    return out


def _execute(path: Path, targets: list, opts: Any, as_json: bool, *, record: bool,
             show: Any = None) -> dict:
    from opskit.cli import render
    from opskit.playbooks import events as pe
    from opskit.playbooks.engine import PlaybookRun, any_failed
    from opskit.playbooks.record import PlayRecord

    rec = PlayRecord.start(path) if record else None
    show = show or (_json_line if as_json else _human)

    def emit(event: Any) -> None:
        if rec is not None:
            rec.write(event)
        show(event)

    run = PlaybookRun(opts, emit)
    try:
        try:
            recap = run.run(targets)
        except KeyboardInterrupt:  # the events so far are written; the recap says how far it got
            if rec is not None:
                rec.write_recap({**pe.Recap(run.recap(), opts.check, True).to_dict(), "interrupted": True})
            raise
        done = pe.Recap(recap, opts.check, any_failed(recap))
        emit(done)
        if rec is not None:
            rec.write_recap(done.to_dict())
    finally:
        if rec is not None:
            rec.close()
    if rec is not None and not as_json:
        render.print_line(f"events and recap: {rec.folder}", err=True)
    return recap


def _json_line(event: Any) -> None:
    from opskit.cli import render

    render.print_json_line(event.to_dict())


def _human(event: Any) -> None:
    from opskit.cli import render

    kind = event.kind
    if kind == "play_started":
        mode = " (check: nothing changes)" if event.check else ""
        render.print_line(f"\nPLAY [{event.play}] on {', '.join(event.hosts) or 'no hosts'}{mode}")
    elif kind == "step_started":
        render.print_line(f"STEP [{event.step}]")
    elif kind == "host_step":
        word = event.status + (" (ignored)" if event.ignored else "")
        render.print_line(f"  {word:<{STATUS_WIDTH}} {event.host}: {event.message}")
    elif kind == "play_aborted":
        left = f"; not run on {', '.join(event.hosts_not_run)}" if event.hosts_not_run else ""
        render.print_line(f"PLAY ENDED [{event.play}]: {event.reason}{left}")
    elif kind == "interrupted":
        render.print_line(f"interrupted during {event.step!r}", err=True)
    elif kind == "recap":
        render.print_line("\nRECAP" + (" (check)" if event.check else ""))
        width = max((len(h) for h in event.hosts), default=0)
        for host, c in event.hosts.items():
            render.print_line(f"{host:<{width}}  " + " ".join(
                f"{k}={c[k]}" for k in ("ok", "changed", "failed", "skipped", "unreachable", "ignored")))
