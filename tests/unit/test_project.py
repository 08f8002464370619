"""The project card, evaluation gates (numbers as MLflow's MetricThreshold defines them) and
reading run folders with bad input (torn lines, no metrics, a metric never logged)."""

from __future__ import annotations

import json

import pytest

from opskit.cli.main import main
from opskit.errors import ConfigError, UsageError
from opskit.project import card as cardmod
from opskit.project.gate import BaselineMismatch, evaluate
from opskit.project.runread import cached_digest, load_run, read_jsonl
from tests.unit._runs import CARD, write_run


def run_cli(argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPSKIT_PROJECT", raising=False)
    monkeypatch.setenv("OPSKIT_RUNS_DIR", str(tmp_path / "runs"))
    (tmp_path / "opskit.yaml").write_text(CARD)
    return tmp_path


def test_template_is_a_valid_card_and_the_hash_follows_the_content(tmp_path):
    card = cardmod.parse_card(__import__("yaml").safe_load(cardmod.template("x"))["project"], "t")
    assert card.metric == cardmod.Metric("accuracy", "higher", 0.92)
    assert card.gates.min_absolute_change == 0.05 and card.baseline.value == 0.25
    same = cardmod.parse_card({**card.to_dict(), "metric": "accuracy >= 0.92"} | {
        "baseline": {"heuristic": "majority class", "value": 0.25},
        "gates": {"min_absolute_change": 0.05, "min_relative_change": 0.10}}, "elsewhere")
    assert same.hash == card.hash  # the file it came from is not part of the card
    other = cardmod.parse_card({"name": "x", "metric": "accuracy >= 0.93"}, "t")
    assert other.hash != card.hash and other.hash.startswith("sha256:")


def test_metric_forms_and_bad_cards_name_the_key():
    assert cardmod.parse_metric("loss <= 0.5", "p") == cardmod.Metric("loss", "lower", 0.5)
    assert cardmod.parse_metric({"name": "miou"}, "p") == cardmod.Metric("miou", "higher", None)
    with pytest.raises(ConfigError, match="metric: 'accuracy = 0.9'"):
        cardmod.parse_metric("accuracy = 0.9", "p")
    with pytest.raises(ConfigError, match="unknown key.*colour"):
        cardmod.parse_card({"metric": "a >= 1", "colour": "red"}, "f.yaml")
    with pytest.raises(ConfigError, match="constraints.max_gpu_mem_gb"):
        cardmod.parse_card({"metric": "a >= 1", "constraints": {"max_gpu_mem_gb": "lots"}}, "f")


def test_gates_threshold_absolute_and_relative_margins(tmp_path):
    card = cardmod.parse_card(__import__("yaml").safe_load(CARD)["project"], "t")
    run = load_run(write_run(tmp_path, "a", accuracies=(0.4, 0.7)))
    v = evaluate(run, card)
    assert v.value == 0.7 and v.baseline == 0.25 and v.passed
    checks = {c.name: c for c in v.checks}
    assert checks["min_absolute_change"].value == pytest.approx(0.45)
    assert checks["min_relative_change"].value == pytest.approx(0.45 / 0.25)
    weak = load_run(write_run(tmp_path, "b", accuracies=(0.65,)))
    base = load_run(write_run(tmp_path, "c", accuracies=(0.6,)))
    v = evaluate(weak, card, base)  # +0.05 absolute, +8.3% relative: both margins fail
    assert v.baseline == 0.6 and not v.passed
    assert [c.passed for c in v.checks] == [True, False, False]


def test_lower_is_better_metric_turns_the_sign(tmp_path):
    card = cardmod.parse_card({"metric": "loss <= 0.5", "gates": {"min_absolute_change": 0.1}}, "t")
    run, base = (load_run(write_run(tmp_path, n, accuracies=(a,))) for n, a in (("r", 0.7), ("b", 0.5)))
    v = evaluate(run, card, base)  # loss 0.3 vs 0.5: 0.2 better
    assert v.value == pytest.approx(0.3) and v.checks[1].value == pytest.approx(0.2) and v.passed


def test_baseline_of_another_task_or_model_is_refused_with_why(tmp_path):
    card = cardmod.parse_card({"metric": "accuracy >= 0.5"}, "t")
    run = load_run(write_run(tmp_path, "r"))
    seg = load_run(write_run(tmp_path, "s", model="fcn", task="segmentation"))
    with pytest.raises(BaselineMismatch, match="segmentation run .*classification run"):
        evaluate(run, card, seg)
    other = load_run(write_run(tmp_path, "o", model="resnet18"))
    with pytest.raises(BaselineMismatch, match="trained resnet18"):
        evaluate(run, card, other)
    assert evaluate(run, card, other, allow_other_model=True).baseline == 0.7


def test_metric_never_logged_names_what_was(tmp_path):
    card = cardmod.parse_card({"metric": "miou >= 0.5"}, "t")
    with pytest.raises(UsageError, match="never logged the card's metric 'miou'.*accuracy, loss"):
        evaluate(load_run(write_run(tmp_path, "r")), card)


def test_torn_last_line_is_read_up_to_and_no_metrics_is_a_run(tmp_path):
    path = write_run(tmp_path, "t", accuracies=(0.3, 0.5), torn='{"kind": "train", "st')
    records, notes = read_jsonl(path / "metrics.jsonl")
    assert len(records) == 6 and "last line (line 7) is torn" in notes[0]
    run = load_run(path)
    assert run.final_metric("accuracy") == 0.5 and run.notes == notes
    empty = tmp_path / "e"
    empty.mkdir()
    (empty / "run_card.json").write_text(json.dumps({"model": "lenet"}))
    run = load_run(empty)
    assert run.records == [] and run.status == "no metrics" and "no metrics yet" in run.notes[0]
    assert run.task == "classification"  # from the torch-free catalogue


def test_digest_is_cached_and_rebuilt_when_the_run_changes(tmp_path):
    path = write_run(tmp_path, "d", accuracies=(0.3, 0.5))
    d = cached_digest(path)
    assert d["final"]["accuracy"] == 0.5 and d["curves"]["eval.accuracy"] == [[10, 20], [0.3, 0.5]]
    assert (path / ".opskit" / "report-summary.json").is_file()
    with open(path / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"kind": "eval", "step": 30, "accuracy": 0.9}) + "\n")
    assert cached_digest(path)["final"]["accuracy"] == 0.5  # summary.json still says 0.5
    assert cached_digest(path)["curves"]["eval.accuracy"][1] == [0.3, 0.5, 0.9]


def test_cli_project_init_show_and_eval_exit_codes(project, capsys):
    (project / "opskit.yaml").write_text("hosts: {}\n")
    assert run_cli(["project", "init", "--name", "parts"]) == 0
    assert "hosts: {}" in (project / "opskit.yaml").read_text()
    assert run_cli(["project", "init"]) == 2  # never written twice
    assert "already has a project card" in capsys.readouterr().err
    assert run_cli(["project", "show"]) == 0
    assert "accuracy >= 0.92" in capsys.readouterr().out
    (project / "opskit.yaml").write_text(CARD)
    write_run(project / "runs", "good", accuracies=(0.5, 0.8))
    write_run(project / "runs", "poor", accuracies=(0.5,))
    assert run_cli(["eval", "good"]) == 0
    assert "PASS: good" in capsys.readouterr().out
    assert run_cli(["eval", "poor"]) == 1
    assert "FAIL: poor" in capsys.readouterr().out
    assert run_cli(["eval", "good", "--baseline", "poor", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["baseline"] == 0.5
    assert run_cli(["eval", "nosuch"]) == 2
    assert "unknown run 'nosuch'" in capsys.readouterr().err


def test_runs_list_shows_pass_fail(project, capsys):
    for name, accs, task in (("good", (0.8,), "classification"), ("poor", (0.4,), "classification"),
                             ("seg", (0.9,), "segmentation"), ("new", (), "classification")):
        p = write_run(project / "runs", name, accuracies=accs, task=task)
        (p / "job.json").write_text(json.dumps({"run_id": name, "model": "lenet", "state": "exited"}))
    assert run_cli(["runs", "list", "--json"]) == 0
    assert {c["run_id"]: c["gate"] for c in json.loads(capsys.readouterr().out)} == {
        "good": "pass", "poor": "FAIL", "seg": "other task", "new": "-"}
    assert run_cli(["runs", "list"]) == 0
    assert "gate" in capsys.readouterr().out


@pytest.mark.usefixtures("one_thread")
def test_real_run_records_the_card_and_is_judged_and_remeasured(project, capsys):
    out = project / "r"
    assert run_cli(["train", "lenet", "--small", "--steps", "4", "--batch-size", "8",
                    "--train-samples", "32", "--val-samples", "16", "--threads", "1",
                    "--device", "cpu", "--out", str(out), "--progress", "none"]) == 0
    card = cardmod.load_card()
    assert json.loads((out / "run_card.json").read_text())["project"]["hash"] == card.hash
    code = run_cli(["eval", str(out), "--json"])
    verdict = json.loads(capsys.readouterr().out)
    assert code == (0 if verdict["passed"] else 1)
    assert verdict["value"] == json.loads((out / "summary.json").read_text())["final"]["accuracy"]
    import torch

    from opskit.train.data.files import save_npz

    g = torch.Generator().manual_seed(3)
    save_npz(project / "fresh.npz", x=torch.rand(20, 3, 32, 32, generator=g),
             y=torch.randint(0, 4, (20,), generator=g))
    code = run_cli(["eval", str(out), "--data", str(project / "fresh.npz"), "--json"])
    verdict = json.loads(capsys.readouterr().out)
    assert verdict["remeasured"]["samples"] == 20 and code == (0 if verdict["passed"] else 1)
    assert verdict["value"] == verdict["remeasured"]["accuracy"]


def test_constraints_are_checks_where_the_run_recorded_the_figure(tmp_path):
    card = cardmod.parse_card({"metric": "accuracy >= 0.5", "task": "classification",
                               "constraints": {"max_train_time_s": 60, "max_gpu_mem_gb": 1.5}}, "t")
    path = write_run(tmp_path, "r", accuracies=(0.7,), system=True)  # peak 2 GiB in each line
    summary = json.loads((path / "summary.json").read_text())
    (path / "summary.json").write_text(json.dumps({**summary, "wall_time_s": 42.0}))
    checks = {c.name: c for c in evaluate(load_run(path), card).checks}
    assert checks["max_train_time_s"].passed and checks["max_train_time_s"].value == 42.0
    assert not checks["max_gpu_mem_gb"].passed
    assert checks["max_gpu_mem_gb"].value == pytest.approx(2 * 2**30 / 1e9)
    plain = load_run(write_run(tmp_path, "p", accuracies=(0.7,)))
    assert [c.name for c in evaluate(plain, card).checks] == ["threshold"]  # nothing recorded


def test_a_run_of_another_task_than_the_card_is_refused(tmp_path):
    card = cardmod.parse_card({"metric": "accuracy >= 0.5", "task": "classification"}, "t")
    seg = load_run(write_run(tmp_path, "s", model="fcn", task="segmentation"))
    with pytest.raises(UsageError, match="s is a segmentation run .*the card is for classification"):
        evaluate(seg, card)


def test_run_remote_stops_on_a_broken_card_before_any_host_or_engine(project):
    from opskit.hosts.spec import local_spec
    from opskit.jobs.runner import Runner
    from opskit.jobs.spec import JobSpec
    from opskit.jobs.store import RunStore

    (project / "opskit.yaml").write_text('project:\n  metric: "accuracy = 0.9"\n')
    touched = []
    runner = Runner(RunStore(project / "runs"), connect=lambda spec: touched.append("host"),
                    engine=lambda: touched.append("engine"))
    with pytest.raises(ConfigError, match="opskit.yaml: project.metric"):
        runner.run(local_spec(), JobSpec("r1", "lenet", ["--small"], "img:1"))
    assert touched == [] and not (project / "runs").exists()


def test_a_runs_task_comes_from_the_catalogue_without_torch():
    import subprocess
    import sys

    probe = ("import json, sys; from pathlib import Path; from opskit.project.runread import RunData; "
             "print(json.dumps([RunData('a', Path('.'), job={'model': 'lenet'}).task, "
             "RunData('b', Path('.'), job={'model': 'nosuch'}).task, 'torch' in sys.modules]))")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                         check=True)
    assert json.loads(res.stdout) == ["classification", None, False]
