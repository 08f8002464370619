"""Figures as plain data: one ``Fig`` per chart, turned into a plotly figure (``to_plotly``) and
into a PNG through matplotlib (``opskit.reports.png``) from the same numbers. Tests check these
numbers; nothing here imports plotly or matplotlib.

Kinds: ``xy`` (lines and bars over x), ``heatmap`` (a matrix, e.g. missing values), ``waffle``
(one square per item, coloured by state), ``venn`` (two sets and what they share).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]


@dataclass
class Trace:
    name: str
    x: list
    y: list
    kind: str = "line"  # "line" | "bar" | "markers"
    color: str | None = None
    dash: bool = False  # dashed line (e.g. the baseline)
    width: float = 2.0
    text: list | None = None  # hover text per point
    markers: bool = False  # a line with a marker at each point (few points, e.g. evaluations)


@dataclass
class Fig:
    key: str  # stable id within a report (tests and the browser test find figures by it)
    title: str
    traces: list[Trace] = field(default_factory=list)
    xlabel: str = ""
    ylabel: str = ""
    kind: str = "xy"
    z: list | None = None  # heatmap rows (kind "heatmap")
    zlabels: tuple[str, str] = ("", "")  # heatmap: (label of 0, label of 1)
    cells: list[dict] = field(default_factory=list)  # waffle: {label, state, text}
    states: dict[str, str] = field(default_factory=dict)  # waffle: state -> colour
    sets: dict[str, Any] = field(default_factory=dict)  # venn: {a, b, only_a, only_b, both, ...}
    log_y: bool = False
    note: str = ""

    @property
    def empty(self) -> bool:
        if self.kind == "xy":
            return not any(t.x for t in self.traces)
        if self.kind == "heatmap":
            return not self.z
        if self.kind == "waffle":
            return not self.cells
        return not self.sets


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


# -- plotly -----------------------------------------------------------------------------------
def _trace(t: Trace) -> dict:
    if t.kind == "bar":
        d: dict = {"type": "bar", "x": t.x, "y": t.y, "name": t.name}
        if t.color:
            d["marker"] = {"color": t.color}
    else:
        mode = ("lines+markers" if t.markers else "lines") if t.kind == "line" else "markers"
        d = {"type": "scatter", "mode": mode,
             "x": t.x, "y": t.y, "name": t.name}
        style = {"color": t.color} if t.color else {}
        if t.kind == "line":
            d["line"] = {**style, "width": t.width, **({"dash": "dash"} if t.dash else {})}
        else:
            d["marker"] = style
    if t.text:
        d["text"] = t.text
    return d


def _base_layout(fig: Fig) -> dict:
    return {"title": {"text": fig.title, "x": 0.02, "xanchor": "left"}, "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
            "height": 360, "template": "plotly_white",
            "xaxis": {"title": {"text": fig.xlabel}}, "yaxis": {"title": {"text": fig.ylabel}}}


def _waffle(fig: Fig) -> tuple[list, dict]:
    cols = max(1, min(16, len(fig.cells)))
    data = []
    for state, col in fig.states.items():
        idx = [i for i, c in enumerate(fig.cells) if c["state"] == state]
        if not idx:
            continue
        data.append({"type": "scatter", "mode": "markers", "name": f"{state} ({len(idx)})",
                     "x": [i % cols for i in idx], "y": [-(i // cols) for i in idx],
                     "text": [fig.cells[i]["text"] for i in idx], "hoverinfo": "text",
                     "marker": {"symbol": "square", "size": 34, "color": col}})
    layout = _base_layout(fig)
    hidden = {"visible": False, "zeroline": False, "showgrid": False}
    rows = (len(fig.cells) + cols - 1) // cols
    layout.update(xaxis={**hidden, "range": [-0.6, cols - 0.4]},
                  yaxis={**hidden, "range": [-rows + 0.4, 0.6]}, height=170 + 48 * rows,
                  legend={"orientation": "h", "y": -0.05})
    return data, layout


def _venn(fig: Fig) -> tuple[list, dict]:
    s = fig.sets
    layout = _base_layout(fig)
    hidden = {"visible": False, "range": [0, 3], "zeroline": False, "showgrid": False}
    layout.update(xaxis=hidden, yaxis={**hidden, "range": [0, 2], "scaleanchor": "x"}, height=380)
    layout["shapes"] = [
        {"type": "circle", "x0": 0.3, "x1": 1.9, "y0": 0.2, "y1": 1.8,
         "fillcolor": PALETTE[0], "opacity": 0.35, "line": {"color": PALETTE[0]}},
        {"type": "circle", "x0": 1.1, "x1": 2.7, "y0": 0.2, "y1": 1.8,
         "fillcolor": PALETTE[1], "opacity": 0.35, "line": {"color": PALETTE[1]}},
    ]
    texts = venn_labels(s)
    data = [{"type": "scatter", "mode": "text", "x": [0.7, 1.5, 2.3, 0.7, 2.3],
             "y": [1.0, 1.0, 1.0, 1.9, 1.9], "text": texts, "hoverinfo": "none",
             "textfont": {"size": 14}, "showlegend": False}]
    return data, layout


def venn_labels(s: dict) -> list[str]:
    """Texts of the three regions and the two set names (also used by the PNG)."""
    def region(key: str) -> str:
        return f"{s[key]} layers<br>{s.get(key + '_size', '')}".rstrip("<br>")

    return [region("only_a"), region("both"), region("only_b"), s["a"], s["b"]]


def to_plotly(fig: Fig) -> dict:
    """``{"data": [...], "layout": {...}}`` for ``Plotly.newPlot`` (plain JSON, no plotly)."""
    if fig.kind == "waffle":
        data, layout = _waffle(fig)
    elif fig.kind == "venn":
        data, layout = _venn(fig)
    elif fig.kind == "heatmap":
        data = [{"type": "heatmap", "z": fig.z, "zmin": 0, "zmax": 1, "showscale": False,
                 "colorscale": [[0, "#222222"], [1, "#f5f5f5"]], "x": fig.traces[0].x if fig.traces else None,
                 "hovertemplate": "row %{y}, %{x}: %{z}<extra></extra>"}]
        layout = _base_layout(fig)
        layout["yaxis"].update(autorange="reversed")
        layout["height"] = 420
    else:
        data, layout = [_trace(t) for t in fig.traces], _base_layout(fig)
        if fig.log_y:
            layout["yaxis"]["type"] = "log"
        if len(fig.traces) > 12:
            layout["showlegend"] = False
    return {"data": data, "layout": layout}
