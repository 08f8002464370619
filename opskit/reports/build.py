"""``opskit report RUN... [--baseline RUN] -o report.html``: one offline HTML file of runs.

Several runs: their curves overlaid and a table sorted by the card's metric (baseline marked),
built from the per-run digests (``runread.cached_digest``), so a thousand runs compare
quickly. Up to ``detail_limit`` runs also get a section each: every curve, the run card, the
eval verdict. A run with no metrics yet still gets its card and a note.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from opskit.errors import UsageError
from opskit.project.card import Metric, ProjectCard, load_card
from opskit.project.gate import BaselineMismatch, evaluate, judge_digest
from opskit.project.runread import RunData, cached_digest, load_run
from opskit.reports.html import Page
from opskit.reports.runfigs import compare_figures, final_value, metric_name, ranked, run_figures

CARD_KEYS = ("model", "task", "status", "device", "device_name", "host", "world_size", "threads",
             "torch", "cuda", "seed", "started", "python")


@dataclass
class ReportRequest:
    runs: list[str]
    out: str
    baseline: str | None = None
    project_file: str | None = None
    runs_dir: str | None = None
    png: bool = True
    png_dir: str | None = None
    detail_limit: int = 12
    title: str | None = None


@dataclass
class ReportResult:
    path: Path
    runs: int
    figures: int
    notes: list[str] = field(default_factory=list)
    pngs: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"path": str(self.path), "runs": self.runs, "figures": self.figures,
                "notes": self.notes, "pngs": self.pngs}


def _metric(card: ProjectCard | None, first: RunData | None, digests: list[dict]) -> Metric:
    if card is not None:
        return card.metric
    name = metric_name(first) if first is not None else None
    summaries = [first.summary] if first is not None else []
    higher = next((s["higher_is_better"] for s in summaries if "higher_is_better" in s), True)
    if name is None:
        name = next((k[5:] for d in digests for k in d["curves"] if k.startswith("eval.") and k != "eval.loss"),
                    "loss")
        higher = name != "loss"
    return Metric(name, "higher" if higher else "lower")


def check_baseline_digest(d: dict, base: dict) -> None:
    if d["task"] and base["task"] and d["task"] != base["task"]:
        raise BaselineMismatch(
            f"baseline {base['run_id']} is a {base['task']} run ({base['model']}); "
            f"{d['run_id']} is a {d['task']} run: their metrics do not measure the same thing",
            "choose a baseline of the same task (see 'opskit runs list')",
        )


def build_report(req: ReportRequest) -> ReportResult:
    if not req.runs:
        raise UsageError("no runs to report", "name one or more runs (IDs or --out folders)")
    card = load_card(req.project_file, required=False)
    refs = list(dict.fromkeys(req.runs + ([req.baseline] if req.baseline else [])))
    digests = [cached_digest(r, req.runs_dir) for r in refs]
    base = digests[refs.index(req.baseline)] if req.baseline else None
    if base is not None:
        for d in digests:
            if d is not base:
                check_baseline_digest(d, base)
    detailed = [load_run(r, req.runs_dir) for r in refs] if len(refs) <= req.detail_limit else []
    metric = _metric(card, detailed[0] if detailed else None, digests)
    page = Page(req.title or _title(refs), png=req.png)
    _header(page, card, metric, base)
    notes = [f"{d['run_id']}: {n}" for d in digests for n in d["notes"]]
    if len(digests) > 1:
        _compare(page, digests, metric, card, base)
    elif len(refs) > req.detail_limit:
        page.para(f"{len(refs)} runs: per-run sections are left out past {req.detail_limit}.", "muted")
    base_run = next((r for r in detailed if base is not None and r.run_id == base["run_id"]), None)
    for run in detailed:
        _run_section(page, run, card, metric, base_run)
    path = page.write(req.out)
    pngs = [str(p) for p in page.write_pngs(req.png_dir)] if req.png_dir and req.png else []
    return ReportResult(path, len(refs), len(page.figures), notes, pngs)


def _title(refs: list[str]) -> str:
    names = [Path(r).name or r for r in refs]
    return f"opskit report: {names[0]}" if len(names) == 1 else f"opskit report: {len(names)} runs"


def _header(page: Page, card: ProjectCard | None, metric: Metric, base: dict | None) -> None:
    if card is None:
        page.para(f"No project card here: runs are ranked by {metric.name} "
                  f"({metric.direction} is better) and not judged.", "muted")
    else:
        page.heading(f"Project {card.name}")
        rows = [("goal", card.goal), ("metric", card.metric.text()), ("card", card.hash)]
        if card.problem:
            rows.insert(0, ("problem", card.problem))
        rows += [(f"constraint {k}", v) for k, v in card.constraints.items()]
        if card.baseline.heuristic:
            rows.append(("baseline heuristic", f"{card.baseline.heuristic} = {card.baseline.value}"))
        page.table(["", ""], rows)
    if base is not None:
        page.para(f"Baseline: run {base['run_id']} ({base['model']}).")


def _verdict_word(d: dict, card: ProjectCard | None, base_value: float | None) -> tuple:
    word = "-" if card is None else judge_digest(d, card, None if d.get("is_base") else base_value)
    return (word, {"pass": "pass", "FAIL": "fail"}.get(word, "muted"))


def _compare(page: Page, digests: list[dict], metric: Metric, card: ProjectCard | None,
             base: dict | None) -> None:
    page.heading(f"{len(digests)} runs compared", anchor="compare")
    base_id = base["run_id"] if base is not None else None
    page.figure_grid(compare_figures(digests, metric.name, base_id), "compare")
    base_value = final_value(base, metric.name) if base is not None else (
        card.baseline.value if card is not None else None)
    rows, classes = [], []
    for rank, d in enumerate(ranked(digests, metric.name, metric.higher_is_better), 1):
        value = final_value(d, metric.name)
        is_base = d["run_id"] == base_id
        delta = None if value is None or base_value is None or is_base else value - base_value
        word = _verdict_word({**d, "is_base": is_base}, card, base_value)
        rows.append((rank, d["run_id"] + (" (baseline)" if is_base else ""), d["model"], d["status"],
                     "-" if value is None else value, "" if delta is None else f"{delta:+.4g}", word,
                     d["step"], "" if d["items_per_s"] is None else round(d["items_per_s"]),
                     (d.get("project") or {}).get("hash", "")))
        classes.append("baseline" if is_base else "")
    page.table(["#", "run", "model", "status", metric.name, "vs baseline", "gate", "steps", "items/s", "card"],
               rows, classes, cls="ranking")


def _run_section(page: Page, run: RunData, card: ProjectCard | None, metric: Metric,
                 base_run: RunData | None) -> None:
    page.heading(f"Run {run.run_id}", anchor=f"run-{run.run_id}")
    for n in run.notes:
        page.note(n)
    if card is not None:
        _verdict(page, run, card, base_run)
    page.heading("Run card", 3)
    facts = {**run.card, **{k: v for k, v in run.job.items() if k in CARD_KEYS}}
    facts.setdefault("task", run.task)
    facts["status"] = run.status
    rows = [(k, facts[k]) for k in CARD_KEYS if facts.get(k) not in (None, "")]
    if run.project:
        rows.append(("project card", f"{run.project.get('name', '')} {run.project.get('hash', '')}"))
    args = run.card.get("args") or run.job.get("args")
    if args:
        rows.append(("args", json.dumps(args, sort_keys=True, default=str)))
    page.table(["", ""], rows)
    if run.records:
        page.figure_grid(run_figures(run, metric.name), _ident(run.run_id))


def _ident(run_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in run_id)


def _verdict(page: Page, run: RunData, card: ProjectCard, base_run: RunData | None) -> None:
    try:
        v = evaluate(run, card, base_run if base_run is not None and base_run.run_id != run.run_id else None,
                     allow_other_model=True)
    except UsageError as exc:
        page.note(f"not judged: {exc.message}")
        return
    word = ("PASS", "pass") if v.passed else ("FAIL", "fail")
    page.raw(f'<p>Eval verdict: <span class="{word[1]}">{word[0]}</span> '
             f"({v.metric} = {v.value:.4g}, card {v.card_hash})</p>")
    page.table(["check", "result", "detail"],
               [(c.name, ("pass", "pass") if c.passed else ("FAIL", "fail"), c.text) for c in v.checks])
