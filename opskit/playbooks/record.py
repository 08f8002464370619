"""A folder per play run: ``events.jsonl`` (every event, written as it happens, so a
Ctrl-C or a crash leaves what ran where) and ``recap.json``; the oldest folders beyond
``plays_keep`` are removed when a new run starts.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from opskit import settings
from opskit.errors import UsageError
from opskit.events import Event

_NAME = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}-")


class PlayRecord:
    def __init__(self, folder: Path):
        self.folder = folder
        self._lock = threading.Lock()
        self._fh = open(folder / "events.jsonl", "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    @classmethod
    def start(cls, playbook: Path, root: str | None = None, keep: int | None = None) -> PlayRecord:
        base = Path(root or settings.get("plays_dir"))
        keep = keep if keep is not None else _keep()
        base.mkdir(parents=True, exist_ok=True)
        rotate(base, keep - 1)
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", playbook.stem)[:40]
        folder = base / f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(3)}-{stem}"
        folder.mkdir(mode=0o700)
        return cls(folder)

    def write(self, event: Event) -> None:
        line = json.dumps({"time": round(time.time(), 3), **event.to_dict()}, default=str)
        with self._lock:
            self._fh.write(line + "\n")
            self._fh.flush()

    def write_recap(self, recap: dict[str, Any]) -> Path:
        path = self.folder / "recap.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(recap, indent=2, default=str), encoding="utf-8")
        os.replace(tmp, path)
        return path

    def close(self) -> None:
        with self._lock:
            self._fh.close()


def _keep() -> int:
    text = str(settings.get("plays_keep"))
    if not text.isdigit() or int(text) < 1:
        raise UsageError(f"plays_keep {text!r} is not a count", "set OPSKIT_PLAYS_KEEP to 1 or more")
    return int(text)


def rotate(base: Path, keep: int) -> list[Path]:
    """Remove the oldest play-run folders so that at most ``keep`` remain; only folders
    named as this module names them are touched."""
    runs = sorted(p for p in base.iterdir() if p.is_dir() and _NAME.match(p.name))
    gone = runs[: max(0, len(runs) - max(0, keep))]
    for p in gone:
        shutil.rmtree(p, ignore_errors=True)
    return gone
