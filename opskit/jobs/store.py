"""The local store of runs: ``runs/<RUN>/`` with ``job.json`` (opskit's run card) and results.

``job.json`` records where and how the run ran: host, container, image ID and layer digests,
git commit and a hash of uncommitted changes, host facts (GPU model, driver, CUDA), the
arguments, the seed, the exit status and whether the kernel killed it for memory, and which
files were collected and verified. Every write is atomic (temp name + rename).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opskit import atomic, gitinfo
from opskit.errors import UsageError
from opskit.jobs.spec import check_run_id

DEFAULT_RUNS_DIR = "runs"
CARD = "job.json"


def runs_dir(explicit: str | None = None) -> Path:
    from opskit import settings  # --runs-dir < $OPSKIT_RUNS_DIR < settings file < "runs"

    return Path(settings.get("runs_dir", explicit or None) or DEFAULT_RUNS_DIR)


@dataclass
class RunStore:
    root: Path

    def path(self, run_id: str) -> Path:
        return self.root / check_run_id(run_id)

    def card_path(self, run_id: str) -> Path:
        return self.path(run_id) / CARD

    def exists(self, run_id: str) -> bool:
        return self.card_path(run_id).exists()

    def load(self, run_id: str) -> dict:
        path = self.card_path(run_id)
        if not path.exists():
            known = ", ".join(recent_runs(self.root)) or "none"
            raise UsageError(
                f"unknown run ID {run_id!r} (no {path})",
                f"recent runs here: {known}; see 'opskit runs list', or name the host with --host",
            )
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}: not valid JSON ({exc})") from exc

    def save(self, run_id: str, card: dict) -> None:
        atomic.write_json(self.card_path(run_id), card)

    def update(self, run_id: str, **changes: Any) -> dict:
        card = self.load(run_id)
        card.update(changes)
        self.save(run_id, card)
        return card

    def list_ids(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / CARD).is_file())

    def list_cards(self) -> list[dict]:
        cards = []
        for run_id in self.list_ids():
            try:
                cards.append(self.load(run_id))
            except UsageError as exc:  # a broken card is listed as such, with what is wrong
                cards.append({"run_id": run_id, "state": "broken", "error": exc.message})
        return cards


def card_hosts(card: dict) -> list[str]:
    """Every host of a run: a multi-host run's ``hosts`` (rank 0 first), else its ``host``."""
    hosts = card.get("hosts") or [card.get("host")]
    return [str(h) for h in hosts if h]


def card_files(card: dict) -> int:
    """How many files a run's collect verified: ``collected.files`` of a one-host run, the
    sum of ``collected.nodes.HOST.files`` of a multi-host run (both shapes, when both are there)."""
    collected = card.get("collected") or {}
    if not isinstance(collected, dict):
        return 0
    nodes = collected.get("nodes") or {}
    return len(collected.get("files") or ()) + sum(
        len(n.get("files") or ()) for n in (nodes.values() if isinstance(nodes, dict) else ()) if isinstance(n, dict))


def recent_runs(root: Path, n: int = 5, marker: tuple[str, ...] = (CARD,)) -> list[str]:
    """The ``n`` newest runs in ``root`` (folders holding one of ``marker``), newest first: by
    the run card's ``created`` time, else (no card, or no time in it) by the folder's change
    time. Not by name: a run ID begins with the model's name, not the date."""
    if not root.is_dir():
        return []
    found = [(_created(p), p.name) for p in root.iterdir() if p.is_dir() and any((p / m).is_file() for m in marker)]
    return [name for _, name in sorted(found, reverse=True)[:n]]


def _created(folder: Path) -> float:
    """When the run was created: its card's ``created`` (UTC), else the folder's mtime."""
    from datetime import UTC, datetime

    try:
        created = json.loads((folder / CARD).read_text()).get("created")
        when = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    except (OSError, ValueError, AttributeError, TypeError):
        return folder.stat().st_mtime


def git_facts(cwd: str | None = None) -> dict:
    """The project's git commit and a hash of uncommitted changes (tracked diff + untracked)."""
    return gitinfo.git_facts(cwd).to_dict()


def redact_snapshot(snapshot: dict | None) -> dict | None:
    """The host snapshot as a run card keeps it: no other process's command line or user.

    A run card travels (it is copied, shared, committed); the processes of the host's other
    users, and their command lines (which may hold passwords), are not opskit's to record.
    The process table is dropped; GPU processes keep their pid and memory (whether a GPU was
    busy matters for the run), not their user and command.
    """
    if snapshot is None:
        return None
    out = {k: v for k, v in snapshot.items() if k != "top_processes"}
    gpu = out.get("gpu")
    if isinstance(gpu, dict):
        gpus = []
        for g in gpu.get("gpus") or []:
            procs = [{k: v for k, v in p.items() if k not in ("command", "username", "name")}
                     for p in (g.get("processes") or [])] if isinstance(g, dict) else []
            gpus.append({**g, "processes": procs} if isinstance(g, dict) else g)
        out["gpu"] = {**gpu, "gpus": gpus}
    return out

