"""PNG of a ``Fig`` through matplotlib (Agg, no display, no browser): the fallback image of each
figure of a report, and what ``--png DIR`` writes. Many lines go in one LineCollection."""

from __future__ import annotations

import io

from opskit.errors import UsageError
from opskit.reports.figures import PALETTE, Fig, venn_labels


def _plt():
    try:
        import matplotlib
    except ImportError:
        raise UsageError("matplotlib is not installed (needed for the PNG figures)",
                         "pip install 'opskit[reports]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _xy(ax, fig: Fig) -> None:
    from matplotlib.collections import LineCollection

    lines = [t for t in fig.traces if t.kind == "line"]
    if len(lines) > 12:  # many runs: one collection draws them all at once
        segs = [list(zip(t.x, t.y, strict=True)) for t in lines if t.x]
        cols = [t.color or PALETTE[0] for t in lines if t.x]
        ax.add_collection(LineCollection(segs, colors=cols, linewidths=0.8, alpha=0.6))
        ax.autoscale()
    else:
        for i, t in enumerate(lines):
            ax.plot(t.x, t.y, label=t.name, color=t.color or PALETTE[i % len(PALETTE)],
                    linestyle="--" if t.dash else "-", linewidth=t.width * 0.75,
                    marker="o" if t.markers else None, markersize=3)
        if lines:
            ax.legend(fontsize=7, loc="best")
    for t in fig.traces:
        if t.kind == "bar":
            ax.bar([str(v) for v in t.x], t.y, color=t.color or PALETTE[0], label=t.name)
            ax.tick_params(axis="x", labelrotation=60, labelsize=6)
        elif t.kind == "markers":
            ax.scatter(t.x, t.y, s=12, color=t.color or PALETTE[0], label=t.name)
    if fig.log_y:
        ax.set_yscale("log")
    ax.set_xlabel(fig.xlabel)
    ax.set_ylabel(fig.ylabel)
    ax.grid(alpha=0.3)


def _waffle(ax, fig: Fig) -> None:
    from matplotlib.patches import Patch, Rectangle

    cols = max(1, min(16, len(fig.cells)))
    rows = (len(fig.cells) + cols - 1) // cols
    for i, cell in enumerate(fig.cells):
        r, c = divmod(i, cols)
        ax.add_patch(Rectangle((c, rows - 1 - r), 0.9, 0.9, color=fig.states[cell["state"]]))
        ax.text(c + 0.45, rows - 0.55 - r, cell["label"], ha="center", va="center", fontsize=6)
    ax.set_xlim(-0.1, cols)
    ax.set_ylim(-0.1, rows)
    ax.set_aspect("equal")
    ax.axis("off")
    counts = {s: sum(c["state"] == s for c in fig.cells) for s in fig.states}
    ax.legend(handles=[Patch(color=col, label=f"{s} ({counts[s]})") for s, col in fig.states.items()],
              loc="upper center", bbox_to_anchor=(0.5, 0), ncol=len(fig.states), fontsize=8)


def _venn(ax, fig: Fig) -> None:
    from matplotlib.patches import Circle

    ax.add_patch(Circle((1.1, 1.0), 0.8, color=PALETTE[0], alpha=0.35))
    ax.add_patch(Circle((1.9, 1.0), 0.8, color=PALETTE[1], alpha=0.35))
    texts = [t.replace("<br>", "\n") for t in venn_labels(fig.sets)]
    for (x, y), text in zip([(0.7, 1.0), (1.5, 1.0), (2.3, 1.0), (0.7, 1.9), (2.3, 1.9)], texts, strict=True):
        ax.text(x, y, text, ha="center", va="center", fontsize=9)
    ax.set_xlim(0, 3)
    ax.set_ylim(0, 2.1)
    ax.set_aspect("equal")
    ax.axis("off")


def render_png(fig: Fig, width: float = 7.0, height: float = 3.6) -> bytes:
    """The figure as PNG bytes (about 100 dpi)."""
    plt = _plt()
    tall = fig.kind in ("heatmap", "venn")
    mfig, ax = plt.subplots(figsize=(width, height * (1.25 if tall else 1.0)), dpi=100)
    try:
        ax.set_title(fig.title, fontsize=10)
        if fig.empty:
            ax.text(0.5, 0.5, fig.note or "nothing logged", ha="center", va="center")
            ax.axis("off")
        elif fig.kind == "heatmap":
            ax.imshow(fig.z, aspect="auto", cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            names = fig.traces[0].x if fig.traces else []
            ax.set_xticks(range(len(names)), names, rotation=60, fontsize=6)
            ax.set_ylabel(fig.ylabel)
        elif fig.kind == "waffle":
            _waffle(ax, fig)
        elif fig.kind == "venn":
            _venn(ax, fig)
        else:
            _xy(ax, fig)
        # fixed margins: tight_layout would draw the whole figure once more just to measure it
        mfig.subplots_adjust(left=0.11, right=0.97, top=0.9, bottom=0.24 if fig.kind == "heatmap" else 0.14)
        buf = io.BytesIO()
        mfig.savefig(buf, format="png")
        return buf.getvalue()
    finally:
        plt.close(mfig)
