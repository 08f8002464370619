"""Charts of the fleet: a waffle of GPUs (``status --html``) and a Venn diagram of the layers
two images or two hosts share (``image layers --compare ... --html``).

Waffle: one square per GPU of every host, coloured by state: ``busy`` (utilisation at or
above ``BUSY_UTIL`` percent, or a process on it), ``idle``, ``too hot`` (temperature at or
above the hot limit, whatever the load), ``faulty`` (nvidia-smi reports an NVML error in its
cells, or the GPU is lost). Hosts that could not be read are listed under the chart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from opskit.reports.figures import Fig

BUSY_UTIL = 10  # percent
HOT_C = 85  # degrees C: NVIDIA data-centre GPUs start slowing down near 85-90 C
STATES = {"busy": "#1f77b4", "idle": "#9ecae1", "too hot": "#d62728", "faulty": "#7f7f7f"}
_LOST = re.compile(r"GPU (\S+) is lost")


def gpu_state(gpu: Any, hot_c: float = HOT_C) -> str:
    if gpu.errors:
        return "faulty"
    temp, util = gpu.values.get("temperature.gpu"), gpu.values.get("utilization.gpu")
    if temp is not None and temp >= hot_c:
        return "too hot"
    if (util is not None and util >= BUSY_UTIL) or gpu.processes:
        return "busy"
    return "idle"


def _text(host: str, gpu: Any, state: str) -> str:
    v = gpu.values
    parts = [f"{host} GPU {v.get('index')}: {v.get('name')}", state]
    if v.get("temperature.gpu") is not None:
        parts.append(f"{v['temperature.gpu']} C")
    if v.get("utilization.gpu") is not None:
        parts.append(f"{v['utilization.gpu']}% busy")
    if v.get("memory.used") is not None:
        parts.append(f"{v['memory.used']} / {v.get('memory.total')} MiB")
    if gpu.processes:
        parts.append(", ".join(f"{p.command}/{p.pid}" for p in gpu.processes))
    return " | ".join(str(p) for p in parts)


def gpu_cells(snapshots: Iterable[Any], hot_c: float = HOT_C) -> list[dict]:
    """One cell per GPU (lost GPUs too), in host order then GPU index."""
    cells = []
    for s in snapshots:
        for g in s.gpu.gpus:
            state = gpu_state(g, hot_c)
            cells.append({"label": f"{s.host}:{g.values.get('index')}", "state": state,
                          "text": _text(s.host, g, state)})
        for problem in s.gpu.problems:
            m = _LOST.search(problem)
            if m:
                cells.append({"label": f"{s.host}:{m.group(1)}", "state": "faulty",
                              "text": f"{s.host}: {problem}"})
    return cells


def waffle(cells: list[dict], hot_c: float = HOT_C) -> Fig:
    counts = {s: sum(c["state"] == s for c in cells) for s in STATES}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return Fig("gpus", f"GPUs of the fleet: {summary or 'none'}", kind="waffle", cells=cells,
               states=dict(STATES), note=f"busy: >= {BUSY_UTIL}% utilisation or a process; "
               f"too hot: >= {hot_c:g} C; faulty: an NVML error or lost")


def write_status_html(outcomes: Sequence[Any], out: str | Path, hot_c: float = HOT_C) -> Path:
    """The page of ``opskit status --html``: the waffle, a row per GPU, what failed."""
    from opskit.reports.html import Page

    snaps = [o.value for o in outcomes if o.ok]
    cells = gpu_cells(snaps, hot_c)
    page = Page("opskit status: GPUs of the fleet", png=True)
    fig = waffle(cells, hot_c)
    if not cells:
        fig.note = "no GPU on these hosts"
    page.figure_grid([fig], "fleet")
    page.table(["GPU", "state", "detail"], [(c["label"], c["state"], c["text"]) for c in cells])
    for o in outcomes:
        if not o.ok:
            page.note(f"{o.host}: not read: {getattr(o.error, 'message', o.error)}")
        elif o.value.problems:
            page.note(f"{o.host}: {'; '.join(o.value.problems)}")
    return page.write(out)


def venn(a: str, b: str, counts: tuple[int, int, int], sizes: tuple[int, int, int] | None = None) -> Fig:
    """Layers only in ``a``, shared, only in ``b`` (``counts``) and their bytes (``sizes``).
    Layers are shared as Docker shares them: the same chain of diff IDs from the bottom."""
    sets: dict[str, Any] = {"a": a, "b": b}
    for i, key in enumerate(("only_a", "both", "only_b")):
        sets[key] = counts[i]
        if sizes is not None:
            sets[f"{key}_size"] = _bytes(sizes[i])
    return Fig("layers_venn", f"Layers of {a} and {b}", kind="venn", sets=sets,
               note=f"{counts[1]} layers shared, {counts[0]} only in {a}, {counts[2]} only in {b}")


def write_layers_html(cmp: Any, a: str, b: str, out: str | Path) -> Path:
    """The page of ``image layers --compare --html``: the Venn diagram and both layer lists."""
    from opskit.reports.html import Page

    fig = venn(a, b, (len(cmp.only_image), cmp.shared, len(cmp.only_other)),
               (cmp.only_image_bytes, cmp.shared_bytes, cmp.only_other_bytes))
    page = Page(f"opskit image layers: {a} vs {b}")
    page.figure_grid([fig], "layers")
    for name, img, only in ((a, cmp.image, cmp.only_image), (b, cmp.other, cmp.only_other)):
        only_ids = {x.index for x in only}
        page.heading(name, 3)
        page.table(["#", "instruction", "bytes", "diff_id", "layer"],
                   [(x.index, x.instruction, x.size, x.diff_id or "", "" if not x.diff_id else
                     ("only here" if x.index in only_ids else "shared")) for x in img.layers])
    return page.write(out)


def hosts_venn(image: Any, plans: Sequence[Any]) -> Fig:
    """Which of ``image``'s layers each of two hosts' engines already holds (``plans``: ship's
    HostPlans, whose ``send`` lists the layers a host lacks)."""
    a, b = plans
    layers = {lay.index: lay for lay in image.layers}
    held_a, held_b = (set(layers) - {lay.index for lay in p.send} for p in (a, b))
    regions = (held_a - held_b, held_a & held_b, held_b - held_a)
    fig = venn(a.host, b.host, tuple(len(r) for r in regions),  # type: ignore[arg-type]
               tuple(sum(layers[i].size for i in r) for r in regions))  # type: ignore[arg-type]
    neither = set(layers) - held_a - held_b
    fig.title = f"Layers of {image.ref} held by {a.host} and {b.host}"
    fig.note += f"; {len(neither)} of {len(layers)} held by neither"
    return fig


def write_hosts_layers_html(image: Any, plans: Sequence[Any], out: str | Path) -> Path:
    """The page of ``image layers IMAGE --host A --host B --html``."""
    from opskit.reports.html import Page

    page = Page(f"opskit image layers: {image.ref} on {plans[0].host} and {plans[1].host}")
    page.figure_grid([hosts_venn(image, plans)], "hosts")
    missing = [{lay.index for lay in p.send} for p in plans]
    page.table(["#", "diff_id", "bytes", *(p.host for p in plans)],
               [(lay.index, lay.diff_id, lay.size, *("missing" if lay.index in m else "held" for m in missing))
                for lay in image.layers])
    return page.write(out)


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"
