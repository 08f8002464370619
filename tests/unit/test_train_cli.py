"""`opskit train` hands its arguments to opskit.train and maps its errors to exit codes."""

from __future__ import annotations

import json

import pytest

from opskit.cli.main import main


def run(argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code


def test_opskit_train_runs_and_writes_the_outputs(tmp_path, capsys):
    out = tmp_path / "o"
    code = run(["train", "lenet", "--small", "--steps", "2", "--batch-size", "8",
                "--train-samples", "16", "--val-samples", "8", "--threads", "1",
                "--device", "cpu", "--out", str(out)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"
    assert "eval step 2" in capsys.readouterr().out


def test_opskit_train_errors_map_to_exit_2_with_hint(tmp_path, capsys):
    assert run(["train", "nosuchnet", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'nosuchnet'" in err and "hint:" in err
    assert run(["train", "alexnet", "--input", "3x16x16", "--out", str(tmp_path)]) == 2
    assert "layer features." in capsys.readouterr().err
    assert run(["train", "lenet", "--steps", "0"]) == 2  # argparse usage error


def test_opskit_train_help_and_list(capsys):
    assert run(["train", "--help"]) == 0
    assert "--resume" in capsys.readouterr().out
    assert run(["train", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "resnet18" in listing and "classification" in listing and "segmentation" in listing
