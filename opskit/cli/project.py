"""``opskit project show|init`` and ``opskit eval RUN [--baseline RUN] [--data FILE]``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from opskit.cli.common import json_option, traceback_option
from opskit.cli.render import print_json, print_line, print_table

PROJECT_OPTION = click.option(
    "--project", "project_file", default=None, envvar="OPSKIT_PROJECT", type=click.Path(dir_okay=False),
    help="The file with the project card (default ./opskit.yaml).",
)
RUNS_DIR_OPTION = click.option(
    "--runs-dir", default=None, envvar="OPSKIT_RUNS_DIR", help="Local store of runs (default ./runs)."
)


@click.group("project")
def project() -> None:
    """The project card: problem, goal, metric, constraints, baseline, prototype."""


@project.command("show")
@PROJECT_OPTION
@json_option
@traceback_option
def show(project_file: str | None, as_json: bool) -> None:
    """Print the card and its hash (what runs record)."""
    from opskit.project.card import load_card

    card = load_card(project_file)
    if as_json:
        print_json({**card.to_dict(), "hash": card.hash, "source": card.source})
        return
    for line in card_lines(card):
        print_line(line)


def card_lines(card: Any) -> list[str]:
    lines = [f"project {card.name}  ({card.hash}, from {card.source})"]
    for label, text in (("problem", card.problem), ("goal", card.goal)):
        if text:
            lines.append(f"  {label + ':':12}{text}")
    lines.append(f"  {'metric:':12}{card.metric.text()} ({card.metric.direction} is better)")
    if card.task:
        lines.append(f"  {'task:':12}{card.task}")
    for key, value in card.constraints.items():
        lines.append(f"  {'constraint:':12}{key} = {value}")
    b = card.baseline
    if b.run:
        lines.append(f"  {'baseline:':12}run {b.run}")
    if b.heuristic or b.value is not None:
        lines.append(f"  {'baseline:':12}{b.heuristic or 'heuristic'}"
                     + (f" = {b.value:g}" if b.value is not None else ""))
    g = card.gates
    if g.min_absolute_change is not None:
        lines.append(f"  {'gate:':12}beat the baseline by >= {g.min_absolute_change:g} (absolute)")
    if g.min_relative_change is not None:
        lines.append(f"  {'gate:':12}beat the baseline by >= {g.min_relative_change:.0%} (relative)")
    if card.prototype:
        lines.append(f"  {'prototype:':12}{card.prototype}")
    return lines


@project.command("init")
@click.option("--name", default=None, help="Project name (default: this folder's name).")
@click.option("--file", "path", default="opskit.yaml", show_default=True, type=click.Path(dir_okay=False))
@traceback_option
def init(name: str | None, path: str) -> None:
    """Write a commented template of the card (appended to an opskit.yaml without one)."""
    import yaml

    from opskit import atomic
    from opskit.errors import UsageError
    from opskit.project.card import template

    target = Path(path)
    text = template(name or Path.cwd().name)
    if target.exists():
        old = target.read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(old) or {}
        except yaml.YAMLError as exc:
            raise UsageError(f"{target}: not valid YAML ({exc}); nothing written") from None
        if isinstance(data, dict) and "project" in data:
            raise UsageError(f"{target} already has a project card; nothing written",
                             "edit it, or see it with 'opskit project show'")
        text = old.rstrip("\n") + "\n\n" + text
    atomic.write_text(target, text)
    print_line(f"wrote the project card template to {target}; edit it, then 'opskit project show'")


@click.command("eval")
@click.argument("run")
@click.option("--baseline", default=None, help="A run to beat (default: the card's baseline).")
@click.option("--data", "data_file", default=None, type=click.Path(dir_okay=False),
              help="Re-measure the metric on fresh labelled data (.npz with x, y) and judge that.")
@click.option("--any-model", is_flag=True, help="Accept a baseline of another model (same task).")
@PROJECT_OPTION
@RUNS_DIR_OPTION
@json_option
@traceback_option
def eval_cmd(run: str, baseline: str | None, data_file: str | None, any_model: bool,
             project_file: str | None, runs_dir: str | None, as_json: bool) -> int:
    """Judge RUN by the project card: its metric against the threshold and the baseline.
    Exit 0 when every check passes, 1 when one fails (a breach, with --data)."""
    from opskit.project.card import load_card
    from opskit.project.gate import evaluate
    from opskit.project.runread import load_run

    card = load_card(project_file)
    target = load_run(run, runs_dir)
    base_ref = baseline or card.baseline.run
    base = load_run(base_ref, runs_dir) if base_ref else None
    measured = None
    if data_file:
        from opskit.project.remeasure import remeasure

        measured = remeasure(target, data_file, card.metric.name)
    verdict = evaluate(target, card, base, allow_other_model=any_model,
                       value=None if measured is None else measured[card.metric.name])
    if as_json:
        print_json({**verdict.to_dict(), "remeasured": measured})
    else:
        _print_verdict(verdict, measured)
    return 0 if verdict.passed else 1


def _print_verdict(verdict: Any, measured: dict | None) -> None:
    where = f"on {measured['file']} ({measured['samples']} samples)" if measured else "at the end of training"
    print_line(f"{verdict.run_id}: {verdict.metric} = {verdict.value:.4g} {where}")
    if verdict.baseline is not None:
        print_line(f"baseline: {verdict.baseline:.4g} ({verdict.baseline_source})")
    print_table(["check", "result", "detail"],
                [(c.name, "pass" if c.passed else "FAIL", c.text) for c in verdict.checks])
    word = "PASS" if verdict.passed else ("BREACH" if measured else "FAIL")
    print_line(f"{word}: {verdict.run_id} against card {verdict.card_hash}")
    if verdict.run_card_hash and verdict.run_card_hash != verdict.card_hash:
        print_line(f"note: {verdict.run_id} was made under another card ({verdict.run_card_hash}); "
                   "the card changed since", err=True)
