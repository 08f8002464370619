"""The project card: ``project:`` in ``opskit.yaml``, what the project is for and how it is judged.

Written down before the first run (the order of an AI project's design): the problem, the goal
for the people served and the metric that stands for it (name, direction, threshold), the
constraints, the baseline (a run, or a named heuristic with its value) and the prototype.
``card_hash`` is what runs record, so a result can be traced to the card it was judged by.

The card shares ``opskit.yaml`` with the host inventory; this module reads only ``project:``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from opskit.errors import ConfigError, UsageError

CARD_FILE = "opskit.yaml"
DIRECTIONS = {">=": "higher", ">": "higher", "<=": "lower", "<": "lower"}
_METRIC_RE = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(>=|<=|>|<)\s*([-+0-9.eE]+)\s*$")
TOP_KEYS = {"name", "problem", "goal", "metric", "constraints", "baseline", "prototype", "gates",
            "task", "notes"}
CONSTRAINT_KEYS = {"max_train_time_s": (int, float), "max_gpu_mem_gb": (int, float),
                   "budget": (str, int, float), "data_stays_on": (list, str)}


@dataclass(frozen=True)
class Metric:
    name: str
    direction: str  # "higher" | "lower"
    threshold: float | None = None

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"

    def text(self) -> str:
        op = ">=" if self.higher_is_better else "<="
        return f"{self.name} {op} {self.threshold:g}" if self.threshold is not None else self.name


@dataclass(frozen=True)
class Baseline:
    run: str | None = None
    heuristic: str | None = None  # e.g. "majority class"
    value: float | None = None  # the heuristic's measured value of the metric


@dataclass(frozen=True)
class Gates:
    """Margins against the baseline, as MLflow's MetricThreshold: the run must beat it by at
    least ``min_absolute_change`` and by ``min_relative_change`` (a fraction of the baseline)."""

    min_absolute_change: float | None = None
    min_relative_change: float | None = None


@dataclass(frozen=True)
class ProjectCard:
    name: str
    metric: Metric
    problem: str = ""
    goal: str = ""
    task: str | None = None
    constraints: dict = field(default_factory=dict)
    baseline: Baseline = field(default_factory=Baseline)
    prototype: str = ""
    gates: Gates = field(default_factory=Gates)
    notes: str = ""
    source: str = ""  # the file it was read from (not part of the hash)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("source")
        return d

    @property
    def hash(self) -> str:
        return card_hash(self)

    def stamp(self) -> dict:
        """What a run records: which card (hash), and the metric it was judged by."""
        return {"name": self.name, "hash": self.hash, "metric": self.metric.text()}


def card_hash(card: ProjectCard) -> str:
    blob = json.dumps(card.to_dict(), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()[:16]


def find_card_file(explicit: str | os.PathLike | None = None) -> Path | None:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise UsageError(f"no project file {path}", "write one with 'opskit project init'")
        return path
    from opskit import settings

    env = settings.get("project")
    if env:
        return find_card_file(env)
    path = Path(CARD_FILE)
    return path if path.is_file() else None


def load_card(explicit: str | os.PathLike | None = None, *, required: bool = True) -> ProjectCard | None:
    """The card of ``--project FILE`` / ``$OPSKIT_PROJECT`` / ``./opskit.yaml``."""
    path = find_card_file(explicit)
    if path is None:
        if not required:
            return None
        raise UsageError(
            f"no project card: {CARD_FILE} not found in {Path.cwd()}",
            "write one with 'opskit project init', or name it with --project FILE",
        )
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict) or "project" not in data:
        if not required:
            return None
        raise ConfigError(f"{path}: no 'project:' section", "add one with 'opskit project init --append'")
    return parse_card(data["project"], str(path))


def parse_metric(raw: Any, where: str) -> Metric:
    if isinstance(raw, str):
        m = _METRIC_RE.match(raw)
        if not m:
            raise ConfigError(
                f"{where}.metric: {raw!r} is not 'NAME >= VALUE' or 'NAME <= VALUE'",
                "e.g. metric: \"accuracy >= 0.92\", or a mapping {name, direction, threshold}",
            )
        return Metric(m.group(1), DIRECTIONS[m.group(2)], float(m.group(3)))
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ConfigError(f"{where}.metric: give 'NAME >= VALUE' or a mapping with a 'name'")
    direction = raw.get("direction", "higher")
    if direction not in ("higher", "lower"):
        raise ConfigError(f"{where}.metric.direction: {direction!r}", "use 'higher' or 'lower'")
    threshold = raw.get("threshold")
    if threshold is not None and not isinstance(threshold, (int, float)):
        raise ConfigError(f"{where}.metric.threshold: {threshold!r} is not a number")
    return Metric(raw["name"], direction, None if threshold is None else float(threshold))


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: {value!r} is not a number")
    return float(value)


def parse_card(raw: Any, source: str) -> ProjectCard:
    where = f"{source}: project"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping", "see 'opskit project init' for a template")
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}",
                          f"known keys: {', '.join(sorted(TOP_KEYS))}")
    if "metric" not in raw:
        raise ConfigError(f"{where}: no metric", "e.g. metric: \"accuracy >= 0.92\"")
    constraints = raw.get("constraints") or {}
    if not isinstance(constraints, dict):
        raise ConfigError(f"{where}.constraints must be a mapping")
    for key, value in constraints.items():
        types = CONSTRAINT_KEYS.get(key)
        if types is None:
            raise ConfigError(f"{where}.constraints: unknown key {key!r}",
                              f"known keys: {', '.join(sorted(CONSTRAINT_KEYS))}")
        if not isinstance(value, types):
            raise ConfigError(f"{where}.constraints.{key}: {value!r} has the wrong type")
    base = raw.get("baseline") or {}
    if isinstance(base, str):
        base = {"run": base}
    if not isinstance(base, dict) or set(base) - {"run", "heuristic", "value"}:
        raise ConfigError(f"{where}.baseline: give {{run: RUN}} or {{heuristic: TEXT, value: NUMBER}}")
    gates = raw.get("gates") or {}
    if not isinstance(gates, dict) or set(gates) - {"min_absolute_change", "min_relative_change"}:
        raise ConfigError(f"{where}.gates: only min_absolute_change and min_relative_change")
    return ProjectCard(
        name=str(raw.get("name") or Path(source).resolve().parent.name),
        metric=parse_metric(raw["metric"], where),
        problem=str(raw.get("problem") or "").strip(),
        goal=str(raw.get("goal") or "").strip(),
        task=raw.get("task"),
        constraints=dict(constraints),
        baseline=Baseline(
            run=None if base.get("run") is None else str(base["run"]),
            heuristic=base.get("heuristic"),
            value=_number(base.get("value"), f"{where}.baseline.value"),
        ),
        prototype=str(raw.get("prototype") or "").strip(),
        gates=Gates(
            _number(gates.get("min_absolute_change"), f"{where}.gates.min_absolute_change"),
            _number(gates.get("min_relative_change"), f"{where}.gates.min_relative_change"),
        ),
        notes=str(raw.get("notes") or "").strip(),
        source=source,
    )


TEMPLATE = """\
# The project card: what this project is for and how its runs are judged.
# 'opskit project show' prints it; 'opskit eval RUN' judges a run by it; every run records
# its hash. Hosts for run-remote may live in this same file (hosts:, groups:).
project:
  name: {name}
  # The problem, in the words of the people who have it.
  problem: >
    Sort photos of parts into the 4 shapes the line makes, by hand today.
  # What success means for them, and the one metric that stands for it.
  goal: >
    Sort at least 92% of parts right, so a person checks only the doubtful ones.
  metric: "accuracy >= 0.92"   # NAME >= VALUE (higher is better) or NAME <= VALUE
  task: classification          # runs of another task are refused as baselines
  constraints:
    max_train_time_s: 3600      # one training run
    max_gpu_mem_gb: 16          # the smallest GPU of the fleet
    budget: "1 GPU-day per week"
    data_stays_on: [gpu1]       # data that may not leave these hosts
  # What to beat: a run ID (runs/RUN), or a simple heuristic and its measured value.
  baseline:
    heuristic: majority class
    value: 0.25
  # Margins a run must beat the baseline by (as MLflow's MetricThreshold).
  gates:
    min_absolute_change: 0.05   # at least 5 points over the baseline
    min_relative_change: 0.10   # and at least 10% better than it
  prototype: >
    resnet18 --small on 48x48 crops, trained for 2 epochs.
"""


def template(name: str) -> str:
    return TEMPLATE.format(name=name)


def project_stamp(explicit: str | os.PathLike | None = None) -> dict | None:
    """``{name, hash, metric}`` of the card in force here (None without one): what runs record."""
    card = load_card(explicit, required=False)
    return None if card is None else card.stamp()
