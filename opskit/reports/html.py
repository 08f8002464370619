"""One self-contained HTML file: plotly.js embedded once, every figure's data as JSON, and a
PNG of each figure (matplotlib) shown where scripts do not run. Opens offline: no request
leaves the page (no CDN, no fonts, no MathJax).

``Page`` collects blocks (headings, paragraphs, tables, figures) in order; ``write`` renders
it to a temporary name and renames it into place.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit import atomic
from opskit.errors import UsageError
from opskit.reports.figures import Fig, to_plotly

STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;max-width:1100px;
color:#222;padding:0 16px}
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:2em}
h3{font-size:1.05em}table{border-collapse:collapse;margin:8px 0;font-size:.9em}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}tr.baseline td{background:#fff6d5}.pass{color:#08711f;font-weight:600}
.fail{color:#b00020;font-weight:600}.note{background:#fff3f3;border-left:4px solid #b00020;
padding:6px 10px;margin:6px 0}.muted{color:#666}.opskit-fig{min-height:200px;margin:8px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(480px,1fr));gap:8px}
img.fallback{max-width:100%}
"""

BOOT = """
(function(){var figs=JSON.parse(document.getElementById('opskit-figures').textContent);
window.opskitRendered=0;window.opskitErrors=[];
figs.forEach(function(f){var el=document.getElementById(f.id);
 try{Plotly.newPlot(el,f.spec.data,f.spec.layout,{displaylogo:false,responsive:true,
  showLink:false,displayModeBar:'hover'}).then(function(){el.setAttribute('data-rendered','1');
  window.opskitRendered+=1;});}
 catch(e){window.opskitErrors.push(f.id+': '+e);}});})();
"""


def plotly_js() -> str:
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise UsageError("plotly is not installed (needed for the HTML reports)",
                         "pip install 'opskit[reports]'") from None
    return get_plotlyjs()


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _script_json(obj: Any) -> str:
    """JSON safe inside <script>: no '</' can close the tag."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False, default=str).replace("</", "<\\/")


@dataclass
class Page:
    title: str
    png: bool = True  # embed a matplotlib PNG of each figure (the no-script fallback)
    blocks: list[str] = field(default_factory=list)
    figures: list[tuple[str, Fig]] = field(default_factory=list)
    pngs: dict[str, bytes] = field(default_factory=dict)

    def heading(self, text: str, level: int = 2, anchor: str | None = None) -> None:
        ident = f' id="{esc(anchor)}"' if anchor else ""
        self.blocks.append(f"<h{level}{ident}>{esc(text)}</h{level}>")

    def para(self, text: str, cls: str = "") -> None:
        self.blocks.append(f'<p class="{cls}">{esc(text)}</p>' if cls else f"<p>{esc(text)}</p>")

    def raw(self, markup: str) -> None:
        self.blocks.append(markup)

    def note(self, text: str) -> None:
        self.blocks.append(f'<div class="note">{esc(text)}</div>')

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]],
              row_classes: Sequence[str] | None = None, cls: str = "") -> None:
        head = "".join(f"<th>{esc(c)}</th>" for c in columns) if any(columns) else ""
        body = []
        for i, row in enumerate(rows):
            rc = row_classes[i] if row_classes else ""
            cells = "".join(_cell(v) for v in row)
            body.append(f'<tr class="{rc}">{cells}</tr>' if rc else f"<tr>{cells}</tr>")
        thead = f"<thead><tr>{head}</tr></thead>" if head else ""  # key/value tables: no header
        self.blocks.append(f'<table class="{cls}">{thead}<tbody>{"".join(body)}</tbody></table>')

    def figure_grid(self, figs: Sequence[Fig], prefix: str) -> None:
        """Figures side by side; one with nothing to draw is a line saying why, not an empty plot."""
        cells = [self._figure(f, prefix) for f in figs if not f.empty]
        self.blocks.append('<div class="grid">' + "".join(cells) + "</div>")
        for f in figs:
            if f.empty:
                self.blocks.append(f'<p class="muted nofig" data-key="{esc(f.key)}">{esc(f.title)}: '
                                   f"{esc(f.note or 'nothing to draw')}</p>")

    def _figure(self, fig: Fig, prefix: str) -> str:
        ident = f"fig-{prefix}-{fig.key}"
        self.figures.append((ident, fig))
        fallback = ""
        if self.png:
            from opskit.reports.png import render_png

            data = render_png(fig)
            self.pngs[ident] = data
            b64 = base64.b64encode(data).decode()
            fallback = (f'<noscript><img class="fallback" alt="{esc(fig.title)}" '
                        f'src="data:image/png;base64,{b64}"></noscript>')
        note = f'<div class="muted">{esc(fig.note)}</div>' if fig.note else ""
        return f'<div><div class="opskit-fig" id="{ident}" data-key="{esc(fig.key)}"></div>{note}{fallback}</div>'

    def render(self) -> str:
        specs = [{"id": ident, "spec": to_plotly(fig)} for ident, fig in self.figures]
        return "".join([
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
            f"<title>{esc(self.title)}</title><style>{STYLE}</style>",
            f'<meta name="opskit-figures" content="{len(specs)}">',
            # the one copy of plotly.js in this file
            f'<script type="text/javascript">{plotly_js()}</script></head><body>',
            f"<h1>{esc(self.title)}</h1>",
            "\n".join(self.blocks),
            f'<script type="application/json" id="opskit-figures">{_script_json(specs)}</script>',
            f"<script>{BOOT}</script></body></html>\n",
        ])

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        atomic.write_text(path, self.render())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(path, 0o666 & ~umask)  # a report is for sharing: the usual file mode
        return path

    def write_pngs(self, folder: str | Path) -> list[Path]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        out = []
        for ident, data in self.pngs.items():
            atomic.write_bytes(folder / f"{ident}.png", data)
            out.append(folder / f"{ident}.png")
        return out


def _cell(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str):
        return f'<td class="{esc(value[1])}">{esc(value[0])}</td>'  # (text, css class)
    if isinstance(value, float):
        return f"<td>{value:.4g}</td>"
    return f"<td>{esc(value)}</td>"
