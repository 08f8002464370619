"""The numbers behind each figure of a report, and the HTML file's promises: plotly.js once,
a PNG for each figure, no address outside the file; bad inputs (no metrics yet, a torn last
line, a baseline of another task, a card metric never logged)."""

from __future__ import annotations

import json
import re

import pytest

from opskit.errors import UsageError
from opskit.project.runread import load_run
from opskit.reports.build import ReportRequest, build_report
from opskit.reports.figures import to_plotly
from opskit.reports.runfigs import compare_figures, ranked, run_figures
from tests.unit._runs import CARD, write_run


def figs_by_key(figs):
    return {f.key: f for f in figs}


def test_run_figures_carry_the_logged_numbers(tmp_path):
    run = load_run(write_run(tmp_path, "r", accuracies=(0.3, 0.5), system=True))
    figs = figs_by_key(run_figures(run, "accuracy"))
    loss = figs["loss"].traces
    assert loss[0].x == [5, 10, 15, 20] and loss[0].y == [2.0 / s for s in (5, 10, 15, 20)]
    assert loss[1].x == [10, 20] and loss[1].y == pytest.approx([0.7, 0.5])  # eval loss
    assert figs["metric"].traces[1].y == [0.3, 0.5]
    assert figs["throughput"].traces[0].y == [105.0, 110.0, 115.0, 120.0]
    data, step = figs["time"].traces  # milliseconds
    assert data.y == pytest.approx([5, 10, 15, 20]) and step.y == pytest.approx([50, 100, 150, 200])
    assert figs["lr"].traces[0].y == [0.1 / s for s in (5, 10, 15, 20)]
    assert figs["gpu_mem"].traces[0].y == [2.0] * 4  # GiB
    names = [t.name for t in figs["system"].traces]
    assert names == ["process CPU %", "host CPU %", "host memory %"]  # no GPU line without one
    assert figs["memory"].traces[0].y == [5.0, 10.0, 15.0, 20.0]


def test_figures_without_data_say_why(tmp_path):
    run = load_run(write_run(tmp_path, "r"))
    figs = figs_by_key(run_figures(run, "accuracy"))
    assert figs["gpu_mem"].empty and "no GPU" in figs["gpu_mem"].note
    assert figs["system"].empty and "psutil" in figs["system"].note


def test_compare_overlays_runs_and_ranks_by_the_metric(tmp_path):
    from opskit.project.runread import cached_digest

    ds = [cached_digest(write_run(tmp_path, n, accuracies=a))
          for n, a in (("a", (0.2, 0.6)), ("b", (0.5, 0.9)), ("c", (0.1, 0.4)))]
    eval_fig, loss_fig = compare_figures(ds, "accuracy", "c")
    assert [t.name for t in eval_fig.traces] == ["a", "b", "c (baseline)"]
    assert eval_fig.traces[1].y == [0.5, 0.9] and eval_fig.traces[2].dash
    assert [d["run_id"] for d in ranked(ds, "accuracy", True)] == ["b", "a", "c"]
    assert [d["run_id"] for d in ranked(ds, "accuracy", False)] == ["c", "a", "b"]
    spec = to_plotly(eval_fig)
    assert spec["data"][2]["line"]["dash"] == "dash" and spec["data"][0]["y"] == [0.2, 0.6]


def _scripts(html):
    return re.findall(r"<script[^>]*>(.*?)</script>", html, flags=re.S)


def test_report_file_is_self_contained_with_plotly_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "opskit.yaml").write_text(CARD)
    runs = [write_run(tmp_path / "runs", n, accuracies=a) for n, a in (("a", (0.3, 0.7)), ("b", (0.5,)))]
    res = build_report(ReportRequest([str(r) for r in runs], str(tmp_path / "r.html"),
                                     baseline=str(runs[1]), png_dir=str(tmp_path / "png")))
    html = (tmp_path / "r.html").read_text()
    assert html.count("plotly.js v") <= 2 and len(_scripts(html)) == 3  # plotly, figures, boot
    specs = json.loads(re.search(r'id="opskit-figures">(.*?)</script>', html, re.S).group(1))
    assert len(specs) == res.figures == html.count('class="opskit-fig"') == len(res.pngs)
    assert html.count('<img class="fallback" alt=') == res.figures
    ours = html.replace(_scripts(html)[0], "")  # the page without plotly.js's own text
    assert not re.search(r'(src|href)="(https?:)?//', ours)  # (the browser test counts requests)
    assert "Eval verdict" in html and "a (baseline)" not in html and "b (baseline)" in html
    ranking = html.split('class="ranking"')[1].split("</table>")[0]
    assert ranking.index(">a<") < ranking.index(">b (baseline)<")  # 0.7 ranks above 0.5


def test_run_with_no_metrics_still_shows_its_card(tmp_path):
    run = tmp_path / "empty"
    run.mkdir()
    (run / "run_card.json").write_text(json.dumps({"model": "lenet", "device": "cuda:0"}))
    res = build_report(ReportRequest([str(run)], str(tmp_path / "r.html"), png=False))
    html = (tmp_path / "r.html").read_text()
    assert res.figures == 0 and "no metrics yet" in html and "cuda:0" in html


def test_torn_line_is_noted_and_the_rest_is_drawn(tmp_path):
    run = write_run(tmp_path, "t", accuracies=(0.3, 0.5), torn='{"kind": "eval", "acc')
    res = build_report(ReportRequest([str(run)], str(tmp_path / "r.html"), png=False))
    assert any("torn" in n for n in res.notes) and res.figures >= 5
    assert "is torn; read up to it" in (tmp_path / "r.html").read_text()


def test_baseline_of_another_task_is_refused(tmp_path):
    a = write_run(tmp_path, "a")
    seg = write_run(tmp_path, "seg", model="fcn", task="segmentation")
    with pytest.raises(UsageError, match="segmentation run"):
        build_report(ReportRequest([str(a)], str(tmp_path / "r.html"), baseline=str(seg), png=False))
    assert not (tmp_path / "r.html").exists()


def test_card_metric_never_logged_is_said_in_the_report(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "opskit.yaml").write_text(CARD.replace('"accuracy >= 0.6"', '"miou >= 0.6"'))
    build_report(ReportRequest([str(write_run(tmp_path, "a"))], str(tmp_path / "r.html"), png=False))
    assert "not judged: run a never logged the card&#x27;s metric &#x27;miou&#x27;" in (
        tmp_path / "r.html").read_text()


def test_png_fallback_is_a_png_of_the_figure(tmp_path):
    from opskit.reports.png import render_png

    fig = run_figures(load_run(write_run(tmp_path, "r")), "accuracy")[0]
    data = render_png(fig)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
