"""``opskit runs``: the local store of runs (runs/), read only."""

from __future__ import annotations

from typing import Any

import click

from opskit.cli.common import json_option, traceback_option
from opskit.cli.jobs import RUNS_DIR_OPTION, _store
from opskit.cli.render import print_json, print_table


@click.group("runs")
def runs() -> None:
    """The local store of runs (runs/)."""


@runs.command("list")
@json_option
@traceback_option
@RUNS_DIR_OPTION
def runs_list(as_json: bool, runs_dir: str | None) -> int:
    """Runs recorded here, with host, model, state and what was collected."""
    store = _store(runs_dir)
    cards = store.list_cards()
    gates = _gate_words(store, cards)  # pass/FAIL by the project card, when there is one
    if as_json:
        print_json([{**c, "gate": gates[c["run_id"]]} if c.get("run_id") in gates else c for c in cards])
        return 0
    from opskit.jobs.store import card_files, card_hosts

    rows = [
        (c.get("run_id"), ",".join(card_hosts(c)), c.get("model"), c.get("state"), c.get("exit_code"),
         "yes" if c.get("oom_killed") else "", card_files(c), (c.get("created") or "")[:19].replace("T", " "))
        + ((gates.get(c.get("run_id"), "-"),) if gates else ())
        for c in cards
    ]
    print_table(["run", "host", "model", "state", "exit", "oom", "files", "created (UTC)"]
                + (["gate"] if gates else []), rows)
    return 0


def _gate_words(store: Any, cards: list[dict]) -> dict[str, str]:
    from opskit.project.card import load_card
    from opskit.project.gate import gate_words

    ids = {c["run_id"]: str(store.root / c["run_id"]) for c in cards if c.get("run_id")}
    return gate_words(ids, load_card(required=False)) if ids else {}
