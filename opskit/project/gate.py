"""Evaluation gates: a run's metric against the card's threshold and against a baseline.

As MLflow's ``MetricThreshold``: ``threshold`` is an absolute bound on the value; against a
baseline the run must improve on it by at least ``min_absolute_change`` (value - baseline,
sign turned for lower-is-better metrics) and by ``min_relative_change`` (that change over
``|baseline|``). Every check is kept with its numbers; the verdict passes when all pass.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from opskit.errors import UsageError
from opskit.project.card import Metric, ProjectCard
from opskit.project.runread import RunData


class BaselineMismatch(UsageError):
    """A baseline that cannot stand for this run (another task or model, another metric)."""


@dataclass(frozen=True)
class Check:
    name: str  # "threshold" | "min_absolute_change" | "min_relative_change"
    passed: bool
    value: float
    bound: float
    text: str


@dataclass
class Verdict:
    run_id: str
    metric: str
    direction: str
    value: float
    baseline: float | None = None
    baseline_source: str | None = None  # "run RUN" | "heuristic: TEXT"
    checks: list[Check] = field(default_factory=list)
    card_hash: str | None = None
    run_card_hash: str | None = None  # the card the run was made under (None: not recorded)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        return d


def _improvement(metric: Metric, value: float, base: float) -> float:
    return value - base if metric.higher_is_better else base - value


def metric_of(run: RunData, metric: Metric, role: str = "run") -> float:
    value = run.final_metric(metric.name)
    if value is None:
        logged = ", ".join(run.logged_metrics()) or "none yet"
        raise UsageError(
            f"{role} {run.run_id} never logged the card's metric {metric.name!r} (it logged: {logged})",
            "fix the card's metric name in opskit.yaml, or evaluate a run of the card's task",
        )
    return value


def check_baseline(run: RunData, base: RunData, card: ProjectCard, allow_other_model: bool) -> None:
    """Refuse a baseline that measures something else; the message says what differs."""
    if run.run_id == base.run_id:
        raise BaselineMismatch(f"baseline {base.run_id} is the run itself", "name an earlier run")
    if run.task and base.task and run.task != base.task:
        raise BaselineMismatch(
            f"baseline {base.run_id} is a {base.task} run ({base.model}); "
            f"{run.run_id} is a {run.task} run: their {card.metric.name} values do not measure the same thing",
            "choose a baseline of the same task (see 'opskit runs list')",
        )
    if not allow_other_model and run.model and base.model and run.model != base.model:
        raise BaselineMismatch(
            f"baseline {base.run_id} trained {base.model}, {run.run_id} trained {run.model}",
            "compare runs of one model, or pass --any-model to compare models on the same task",
        )


def gate_checks(metric: Metric, value: float, baseline: float | None, card: ProjectCard) -> list[Check]:
    checks = []
    if metric.threshold is not None:
        ok = value >= metric.threshold if metric.higher_is_better else value <= metric.threshold
        op = ">=" if metric.higher_is_better else "<="
        checks.append(Check("threshold", ok, value, metric.threshold,
                            f"{metric.name} {value:.4g} (need {op} {metric.threshold:g})"))
    if baseline is None:
        return checks
    gain = _improvement(metric, value, baseline)
    if card.gates.min_absolute_change is not None:
        bound = card.gates.min_absolute_change
        checks.append(Check("min_absolute_change", gain >= bound, gain, bound,
                            f"better than baseline {baseline:.4g} by {gain:+.4g} (need >= {bound:g})"))
    if card.gates.min_relative_change is not None:
        bound = card.gates.min_relative_change
        rel = gain / abs(baseline) if baseline else (float("inf") if gain > 0 else 0.0)
        checks.append(Check("min_relative_change", rel >= bound, rel, bound,
                            f"relative change {rel:+.2%} (need >= {bound:.0%})"))
    if card.gates.min_absolute_change is None and card.gates.min_relative_change is None:
        checks.append(Check("beats_baseline", gain > 0, gain, 0.0,
                            f"better than baseline {baseline:.4g} by {gain:+.4g} (need > 0)"))
    return checks


def check_task(run: RunData, card: ProjectCard) -> None:
    if card.task and run.task and card.task != run.task:
        raise UsageError(
            f"run {run.run_id} is a {run.task} run ({run.model}); the card is for {card.task}",
            "evaluate a run of the card's task, or fix 'task:' in opskit.yaml",
        )


def constraint_checks(card: ProjectCard, wall_time_s: float | None, peak_gpu_mem_bytes: float | None) -> list[Check]:
    """The card's measurable constraints, where the run recorded the figure."""
    checks = []
    limit = card.constraints.get("max_train_time_s")
    if isinstance(limit, (int, float)) and wall_time_s is not None:
        checks.append(Check("max_train_time_s", wall_time_s <= limit, float(wall_time_s), float(limit),
                            f"trained in {wall_time_s:.0f} s (limit {limit:g} s)"))
    limit = card.constraints.get("max_gpu_mem_gb")
    if isinstance(limit, (int, float)) and peak_gpu_mem_bytes is not None:
        gb = peak_gpu_mem_bytes / 1e9
        checks.append(Check("max_gpu_mem_gb", gb <= limit, gb, float(limit),
                            f"peak GPU memory {gb:.2f} GB (limit {limit:g} GB)"))
    return checks


def run_figures_for_constraints(run: RunData) -> tuple[float | None, float | None]:
    """(wall time of the training, peak GPU memory in bytes) as the run recorded them."""
    wall = run.summary.get("wall_time_s")
    peaks = [r["peak_gpu_mem_bytes"] for r in run.kind("train")
             if isinstance(r.get("peak_gpu_mem_bytes"), (int, float))]
    return (float(wall) if isinstance(wall, (int, float)) else None), (max(peaks) if peaks else None)


def evaluate(run: RunData, card: ProjectCard, baseline: RunData | None = None, *,
             value: float | None = None, allow_other_model: bool = False) -> Verdict:
    """The verdict for ``run`` (or for ``value``, a re-measured figure of it)."""
    metric = card.metric
    check_task(run, card)
    if value is None:
        value = metric_of(run, metric)
    base_value, source = None, None
    if baseline is not None:
        check_baseline(run, baseline, card, allow_other_model)
        base_value, source = metric_of(baseline, metric, "baseline"), f"run {baseline.run_id}"
    elif card.baseline.value is not None:
        base_value = card.baseline.value
        source = f"heuristic: {card.baseline.heuristic or 'named in the card'}"
    verdict = Verdict(run.run_id, metric.name, metric.direction, value, base_value, source,
                      gate_checks(metric, value, base_value, card), card.hash,
                      (run.project or {}).get("hash"))
    verdict.checks += constraint_checks(card, *run_figures_for_constraints(run))
    if not verdict.checks:
        raise UsageError(
            f"nothing to judge {run.run_id} by: the card's metric {metric.name} has no threshold "
            "and there is no baseline",
            "give the metric a threshold (\"accuracy >= 0.92\") or pass --baseline RUN",
        )
    return verdict


def judge_digest(d: dict, card: ProjectCard, base_value: float | None) -> str:
    """``"pass" | "FAIL" | "-"`` for a run's digest (``runread.digest``): the checks of
    ``evaluate`` on the summary numbers, for lists of many runs ("-": nothing to judge, e.g.
    the metric not logged yet; "other task": a run of another task than the card's)."""
    value = (d.get("final") or {}).get(card.metric.name)
    if not isinstance(value, (int, float)):
        return "-"
    if card.task and d.get("task") and d["task"] != card.task:
        return "other task"
    checks = gate_checks(card.metric, float(value), base_value, card)
    checks += constraint_checks(card, d.get("wall_time_s"), d.get("peak_gpu_mem_bytes"))
    if not checks:
        return "-"
    return "pass" if all(c.passed for c in checks) else "FAIL"


def gate_words(run_dirs: dict[str, str], card: ProjectCard | None) -> dict[str, str]:
    """``run ID -> judge_digest(...)`` for ``runs list``, from the cached per-run digests.
    Empty without a card. The card's baseline run is judged without a baseline."""
    from opskit.project.runread import cached_digest

    if card is None:
        return {}
    digests = {run_id: cached_digest(path) for run_id, path in run_dirs.items()}
    base_value = card.baseline.value
    if card.baseline.run in digests:
        base_value = (digests[card.baseline.run].get("final") or {}).get(card.metric.name)
    return {run_id: judge_digest(d, card, None if run_id == card.baseline.run else base_value)
            for run_id, d in digests.items()}
