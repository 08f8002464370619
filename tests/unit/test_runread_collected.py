"""A collected run (``runs/RUN/job.json`` + ``runs/RUN/results/``) read by the reports: the run's
files come from results/, opskit's card from the top, never a result named like it."""

from __future__ import annotations

import json

from opskit.project.runread import load_run, results_dir


def test_a_collected_run_is_read_from_results_and_its_card_from_the_top(tmp_path):
    run = tmp_path / "runs" / "r1"
    (run / "results").mkdir(parents=True)
    (run / "job.json").write_text(json.dumps({"run_id": "r1", "host": "gpu1"}))
    (run / "results/job.json").write_text(json.dumps({"run_id": "forged", "host": "elsewhere"}))
    (run / "results/metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.0}\n')
    (run / "results/summary.json").write_text(json.dumps({"status": "completed"}))
    data = load_run("r1", tmp_path / "runs")
    assert data.job["host"] == "gpu1" and data.run_id == "r1"
    assert [r["step"] for r in data.records] == [1, 2] and data.summary["status"] == "completed"
    assert results_dir(run) == run / "results"
    local = tmp_path / "out"  # an 'opskit train --out' folder: read as it is
    local.mkdir()
    (local / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    assert results_dir(local) == local and len(load_run(local).records) == 1
