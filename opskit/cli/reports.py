"""``opskit report RUN... -o report.html`` and ``opskit data check FILE``."""

from __future__ import annotations

import click

from opskit.cli.common import json_option, traceback_option
from opskit.cli.render import print_json, print_line, print_table


@click.command("report")
@click.argument("runs", nargs=-1, required=True)
@click.option("--baseline", default=None, help="A run to mark and compare against.")
@click.option("-o", "--out", default="report.html", show_default=True, type=click.Path(dir_okay=False),
              help="The HTML file to write (one file, works offline).")
@click.option("--png", "png_dir", default=None, type=click.Path(file_okay=False),
              help="Also write each figure as a PNG into this folder.")
@click.option("--no-png", is_flag=True, help="Leave out the PNG fallback images (smaller, faster).")
@click.option("--project", "project_file", default=None, envvar="OPSKIT_PROJECT",
              type=click.Path(dir_okay=False), help="The project card file (default ./opskit.yaml).")
@click.option("--runs-dir", default=None, envvar="OPSKIT_RUNS_DIR", help="Local store of runs (default ./runs).")
@json_option
@traceback_option
def report(runs: tuple[str, ...], baseline: str | None, out: str, png_dir: str | None, no_png: bool,
           project_file: str | None, runs_dir: str | None, as_json: bool) -> None:
    """One self-contained HTML report of RUNS (IDs in runs/, or 'opskit train --out' folders):
    curves, throughput, data vs step time, lr, GPU memory, system metrics, run card, verdict."""
    from opskit.reports.build import ReportRequest, build_report

    res = build_report(ReportRequest(list(runs), out, baseline, project_file, runs_dir,
                                     png=not no_png, png_dir=png_dir))
    if as_json:
        print_json(res.to_dict())
        return
    for n in res.notes:
        print_line(f"note: {n}", err=True)
    print_line(f"wrote {res.path}: {res.runs} run(s), {res.figures} figures"
               + (f", {len(res.pngs)} PNGs in {png_dir}" if res.pngs else ""))


@click.group("data")
def data() -> None:
    """Look at a dataset before training on it."""


@data.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--html", "html_out", default=None, type=click.Path(dir_okay=False),
              help="Write the missing-value matrix and bar chart to this HTML file.")
@json_option
@traceback_option
def check(file: str, html_out: str | None, as_json: bool) -> int:
    """Missing values per column (matrix and bar) and columns of mixed types, for a CSV or
    .npz file. Exit 1 when a column mixes types (numbers and text), 0 otherwise."""
    from opskit.reports.datacheck import check_file, write_html

    res = check_file(file)
    if html_out:
        write_html(res, html_out)
    if as_json:
        print_json(res.to_dict())
    else:
        print_line(f"{file}: {res.rows} rows, {len(res.columns)} columns, "
                   f"{res.missing_total} missing values")
        print_table(["column", "type", "missing", "missing %", "note"],
                    [(c.name, c.kind, c.missing, f"{100 * c.missing / max(1, res.rows):.1f}", c.note)
                     for c in res.columns])
        if html_out:
            print_line(f"wrote {html_out}")
    for c in res.mixed:
        print_line(f"error: column {c.name!r} mixes types: {c.note}", err=True)
    if res.mixed:
        print_line("hint: clean those cells (or read the column as text) before training", err=True)
    return 1 if res.mixed else 0
