"""The figures of runs, as data: one run's curves (``run_figures``) and many runs overlaid from
their digests (``compare_figures``). Torch-free, plotly-free."""

from __future__ import annotations

from opskit.project.runread import RunData, _is_number, curve
from opskit.reports.figures import Fig, Trace, colour

GIB = float(1 << 30)
SYSTEM_PERCENT = (("sys_proc_cpu_percent", "process CPU %"), ("sys_host_cpu_percent", "host CPU %"),
                  ("sys_host_mem_percent", "host memory %"), ("sys_gpu_util_percent", "GPU utilisation %"))
SYSTEM_BYTES = (("sys_proc_rss_bytes", "process RSS"), ("sys_gpu_mem_bytes", "GPU memory used"))


def _line(records: list[dict], key: str, name: str, i: int, scale: float = 1.0, limit: int = 2000) -> Trace:
    x, y = curve(records, key, limit)
    return Trace(name, x, [v / scale for v in y] if scale != 1.0 else y, color=colour(i),
                 markers=name.startswith("eval "))


def metric_name(run: RunData, card_metric: str | None = None) -> str | None:
    if card_metric:
        return card_metric
    if run.summary.get("metric"):
        return run.summary["metric"]
    logged = [m for m in run.logged_metrics() if m != "loss"]
    return logged[0] if logged else ("loss" if run.logged_metrics() else None)


def _only(fig: Fig, note: str) -> Fig:
    fig.traces = [t for t in fig.traces if t.x]
    if fig.empty:
        fig.note = note
    return fig


def run_figures(run: RunData, metric: str | None) -> list[Fig]:
    """Loss, metric, throughput, data vs step time, learning rate, GPU memory, system metrics."""
    train, evals = run.kind("train"), run.kind("eval")
    figs = [
        _only(Fig("loss", "Loss", [_line(train, "loss", "train loss", 0), _line(evals, "loss", "eval loss", 1)],
                  "step", "loss"), "no loss logged yet"),
    ]
    if metric and metric != "loss":
        figs.append(_only(Fig("metric", f"Metric: {metric}",
                              [_line(train, metric, f"train {metric}", 0), _line(evals, metric, f"eval {metric}", 1)],
                              "step", metric), f"{metric} not logged yet"))
    figs += [
        _only(Fig("throughput", "Throughput", [_line(train, "items_per_s", "items/s", 2)], "step", "items/s"),
              "no throughput logged yet"),
        _only(Fig("time", "Data time vs step time (ms per step)",
                  [_line(train, "data_time_s", "data time", 3, 1e-3), _line(train, "step_time_s", "step time", 0, 1e-3)],
                  "step", "ms"), "no step times logged yet"),
        _only(Fig("lr", "Learning rate", [_line(train, "lr", "lr", 4)], "step", "lr"), "no learning rate logged yet"),
        _only(Fig("gpu_mem", "Peak GPU memory (GiB)", [_line(train, "peak_gpu_mem_bytes", "peak allocated", 5, GIB)],
                  "step", "GiB"), "no GPU memory logged (the run had no GPU)"),
        _only(Fig("system", "System: CPU, memory, GPU (%)",
                  [_line(train, k, name, i) for i, (k, name) in enumerate(SYSTEM_PERCENT)], "step", "%"),
              "no system metrics logged (psutil was not installed where it ran, or an older opskit)"),
        _only(Fig("memory", "System: memory (GiB)",
                  [_line(train, k, name, i + 6, GIB) for i, (k, name) in enumerate(SYSTEM_BYTES)], "step", "GiB"),
              "no memory figures logged"),
    ]
    return figs


def compare_figures(digests: list[dict], metric: str, baseline_id: str | None) -> list[Fig]:
    """Curves of many runs overlaid (the baseline dashed and thicker)."""
    figs = []
    for key, title, ylabel in ((f"eval.{metric}", f"{metric} (eval) of each run", metric),
                               ("train.loss", "Training loss of each run", "loss")):
        traces = []
        for i, d in enumerate(digests):
            x, y = d["curves"].get(key, ([], []))
            is_base = d["run_id"] == baseline_id
            traces.append(Trace(d["run_id"] + (" (baseline)" if is_base else ""), x, y,
                                color="#000000" if is_base else colour(i), dash=is_base,
                                width=3.0 if is_base else 1.5,
                                markers=key.startswith("eval.") and len(digests) <= 12))
        figs.append(_only(Fig(f"compare_{key.replace('.', '_')}", title, traces, "step", ylabel),
                          f"no run logged {key}"))
    return figs


def final_value(d: dict, metric: str) -> float | None:
    v = (d.get("final") or {}).get(metric)
    return float(v) if _is_number(v) else None


def ranked(digests: list[dict], metric: str, higher_is_better: bool) -> list[dict]:
    """Best first by the metric; runs without it last (in their given order)."""
    have = [d for d in digests if final_value(d, metric) is not None]
    lack = [d for d in digests if final_value(d, metric) is None]
    have.sort(key=lambda d: final_value(d, metric), reverse=higher_is_better)
    return have + lack
