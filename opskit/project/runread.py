"""Reading one run's folder: what ``opskit train --out DIR`` writes, or ``runs/RUN/`` after a
collect (the same files plus ``job.json``). Torch-free.

* ``metrics.jsonl`` is read line by line; a torn last line (a run still writing, or killed
  mid-line) is left out with a note, never an error: everything before it is kept.
* A run with no metrics yet is a run: its cards are shown, its curves are empty.
* ``summary(run)`` is the small per-run digest a comparison of many runs reads (final metrics,
  curves thinned to at most ``CURVE_POINTS`` points); it is cached in ``DIR/.opskit/`` and
  rebuilt when the run's files change.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from opskit import atomic
from opskit.errors import UsageError

RUN_FILES = ("metrics.jsonl", "summary.json", "run_card.json", "job.json")
CURVE_POINTS = 200
SUMMARY_CACHE = ".opskit/report-summary.json"
SUMMARY_VERSION = 2


@dataclass
class RunData:
    run_id: str
    path: Path
    job: dict = field(default_factory=dict)  # opskit's card (runs/RUN/job.json), remote runs
    card: dict = field(default_factory=dict)  # the training entry's run_card.json
    summary: dict = field(default_factory=dict)  # summary.json (absent while running)
    records: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def model(self) -> str | None:
        return self.job.get("model") or self.card.get("model") or self.summary.get("model")

    @property
    def task(self) -> str | None:
        task = self.summary.get("task")
        if task or not self.model:
            return task
        from opskit.models.catalogue import UnknownModelError, entry  # torch-free data

        try:
            return entry(self.model).task
        except UnknownModelError:  # an unknown model has no known task
            return None

    @property
    def status(self) -> str:
        return self.summary.get("status") or self.job.get("state") or ("running" if self.records else "no metrics")

    @property
    def project(self) -> dict | None:
        return self.job.get("project") or self.card.get("project")

    def kind(self, kind: str) -> list[dict]:
        return [r for r in self.records if r.get("kind") == kind]

    def logged_metrics(self) -> list[str]:
        names: set[str] = set()
        for r in self.kind("eval"):
            names.update(k for k, v in r.items() if _is_number(v) and k not in ("step", "epoch"))
        names.update(k for k, v in (self.summary.get("final") or {}).items() if _is_number(v))
        return sorted(names)

    def final_metric(self, name: str) -> float | None:
        """The metric at the end: summary.json's final evaluation, else the last eval line."""
        final = self.summary.get("final") or {}
        if _is_number(final.get(name)):
            return float(final[name])
        for r in reversed(self.kind("eval")):
            if _is_number(r.get(name)):
                return float(r[name])
        return None


def _is_number(v: object) -> bool:
    """A finite number (NaN and infinities are not values to plot or judge)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def read_jsonl(path: Path) -> tuple[list[dict], list[str]]:
    """Records of a metrics file and notes about lines left out (torn last line, bad lines)."""
    if not path.is_file():
        return [], []
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    records, notes = [], []
    last = len(lines) - 1
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError):
            if i == last:  # no newline after it: the writer stopped mid-line
                notes.append(f"{path.name}: the last line (line {i + 1}) is torn; read up to it")
            else:
                notes.append(f"{path.name}: line {i + 1} is not a JSON object; left out")
            continue
        records.append(rec)
    return records, notes


def _read_json(path: Path, notes: list[str]) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        notes.append(f"{path.name}: not valid JSON ({exc}); left out")
        return {}
    return data if isinstance(data, dict) else {}


def resolve_run(ref: str, runs_root: str | os.PathLike | None = None) -> Path:
    """A run folder from ``RUN`` (an ID in the runs store) or a path to a run's folder."""
    from opskit.jobs.store import runs_dir

    as_path = Path(ref)
    if as_path.is_dir() and any((as_path / f).exists() for f in RUN_FILES):
        return as_path
    root = runs_dir(str(runs_root) if runs_root else None)
    candidate = root / ref
    if "/" not in ref and candidate.is_dir() and any((candidate / f).exists() for f in RUN_FILES):
        return candidate
    if as_path.is_dir():
        raise UsageError(f"{ref}: a folder, but not a run's (none of {', '.join(RUN_FILES)})",
                         "give the --out folder of 'opskit train', or a run ID of 'opskit runs list'")
    from opskit.jobs.store import recent_runs

    known = recent_runs(root, marker=RUN_FILES)  # newest first, by the card's time
    raise UsageError(f"unknown run {ref!r}: no folder {ref} and no {candidate}",
                     f"recent runs in {root}: {', '.join(known) or 'none'}; see 'opskit runs list'")


def results_dir(path: Path) -> Path:
    """Where a run's own files are: ``runs/RUN/results/`` after a collect (opskit's records,
    ``job.json`` first, stay in ``runs/RUN/`` and are never read from there), else the folder."""
    collected = path / "results"
    return collected if (path / "job.json").is_file() and collected.is_dir() else path


def load_run(ref: str | os.PathLike, runs_root: str | os.PathLike | None = None) -> RunData:
    path = resolve_run(str(ref), runs_root)
    notes: list[str] = []
    data = results_dir(path)
    run = RunData(
        run_id=path.resolve().name,
        path=path,
        job=_read_json(path / "job.json", notes),
        card=_read_json(data / "run_card.json", notes),
        summary=_read_json(data / "summary.json", notes),
    )
    run.run_id = run.job.get("run_id") or run.run_id
    run.records, more = read_jsonl(data / "metrics.jsonl")
    run.notes = notes + more
    if not run.records:
        run.notes.append("no metrics yet: metrics.jsonl is missing or empty")
    return run


def thin(points: list, limit: int = CURVE_POINTS) -> list:
    """At most ``limit`` evenly spaced points, the last always kept."""
    if len(points) <= limit:
        return list(points)
    stride = len(points) / (limit - 1)
    picked = [points[int(i * stride)] for i in range(limit - 1)]
    return picked + [points[-1]]


def curve(records: list[dict], key: str, limit: int = CURVE_POINTS) -> tuple[list, list]:
    pts = [(r["step"], r[key]) for r in records if _is_number(r.get(key)) and _is_number(r.get("step"))]
    pts = thin(pts, limit)
    return [p[0] for p in pts], [p[1] for p in pts]


def digest(run: RunData) -> dict:
    """The per-run summary a comparison reads (JSON-ready)."""
    evals, trains = run.kind("eval"), run.kind("train")
    final = {k: v for k, v in (run.kind("eval") or [{}])[-1].items() if _is_number(v)}
    final.update({k: v for k, v in (run.summary.get("final") or {}).items() if _is_number(v)})
    curves = {f"eval.{m}": list(curve(evals, m)) for m in run.logged_metrics()}
    curves["train.loss"] = list(curve(trains, "loss"))
    rates = sorted(r["items_per_s"] for r in trains if _is_number(r.get("items_per_s")))
    peaks = [r["peak_gpu_mem_bytes"] for r in trains if _is_number(r.get("peak_gpu_mem_bytes"))]
    return {
        "version": SUMMARY_VERSION,
        "run_id": run.run_id,
        "path": str(run.path),
        "model": run.model,
        "task": run.task,
        "status": run.status,
        "step": max((r.get("step") or 0 for r in run.records), default=0),
        "final": final,
        "curves": {k: v for k, v in curves.items() if v[0]},
        "items_per_s": rates[len(rates) // 2] if rates else None,
        "peak_gpu_mem_bytes": max(peaks) if peaks else None,
        "wall_time_s": run.summary.get("wall_time_s") if _is_number(run.summary.get("wall_time_s")) else None,
        "project": run.project,
        "notes": run.notes,
    }


def _signature(path: Path) -> list:
    sig = []
    data = results_dir(path)
    for name in RUN_FILES:
        try:
            st = ((path if name == "job.json" else data) / name).stat()
            sig.append([name, st.st_size, st.st_mtime_ns])
        except FileNotFoundError:
            sig.append([name, None, None])
    return sig


def cached_digest(ref: str | os.PathLike, runs_root: str | os.PathLike | None = None) -> dict:
    """``digest`` from ``DIR/.opskit/report-summary.json`` when the run's files are unchanged;
    otherwise read the run, digest it and write the cache (a read-only folder just skips it)."""
    path = resolve_run(str(ref), runs_root)
    cache = path / SUMMARY_CACHE
    sig = _signature(path)
    try:
        data = json.loads(cache.read_text(encoding="utf-8"))
        if data.get("signature") == sig and data.get("digest", {}).get("version") == SUMMARY_VERSION:
            return data["digest"]
    except (OSError, ValueError):
        pass
    d = digest(load_run(path))
    try:
        atomic.write_json(cache, {"signature": sig, "digest": d})
    except OSError:
        pass
    return d
