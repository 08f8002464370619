"""``opskit models list|show`` through the CLI's real error boundary (``opskit.cli.main``)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from opskit.testing.cli import CliRun, run_cli


def run(capsys, *args: str) -> CliRun:
    return run_cli(capsys, "models", *args)


def test_list_json_has_reference_parameter_counts(capsys) -> None:
    code, out, _ = run(capsys, "list", "--json")
    assert code == 0
    models = {m["name"]: m for m in json.loads(out)["models"]}
    assert models["resnet50"]["parameters"] == 25_557_032
    assert models["alexnet"]["parameters"] == 61_100_840
    assert models["fcn_resnet50"]["parameters"] == 35_322_218  # with the aux head
    assert models["googlenet"]["parameters"] == 13_004_888  # with its auxiliary heads
    assert models["fcn"]["task"] == "segmentation" and models["vgg16"]["family"] == "vgg"
    assert models["alexnet"]["small_input_shape"] == [3, 64, 64]


def test_list_table(capsys) -> None:
    code, out, _ = run(capsys, "list")
    assert code == 0
    line = next(ln for ln in out.splitlines() if ln.startswith("vgg16_bn"))
    assert "138,365,992" in line and "classification" in line


def test_show_json_layers_and_total(capsys) -> None:
    code, out, _ = run(capsys, "show", "resnet18", "--input", "3x64x64", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["input_shape"] == [3, 64, 64] and data["output_shape"] == [1000]
    assert data["total_params"] == 11_689_512 and data["config"] == "reference"
    layers = {r["name"]: r for r in data["layers"]}
    assert layers["conv1"]["output_shape"] == [64, 32, 32]
    assert layers["conv1"]["params"] == 7 * 7 * 3 * 64
    assert layers["layer4"]["output_shape"] == [512, 2, 2]


def test_show_table_small_with_depth(capsys) -> None:
    code, out, _ = run(capsys, "show", "fcn", "--small", "--input", "3x37x41", "--depth", "0")
    assert code == 0
    assert "up4to1" in out and "4x40x44" in out  # the transposed convolution, before the crop
    assert "output: 4x37x41" in out and "total parameters:" in out
    assert "block1.0" not in out  # deeper rows hidden


def test_show_alexnet_too_small_names_the_layer(capsys) -> None:
    code, out, err = run(capsys, "show", "alexnet", "--input", "3x16x16")
    assert code == 2 and out == ""
    assert "features.5" in err and "MaxPool2d" in err and "3x63x63" in err
    assert "hint:" in err


def test_show_unknown_model_lists_known(capsys) -> None:
    code, _, err = run(capsys, "show", "resnet9000")
    assert code == 2
    assert "unknown model 'resnet9000'" in err and "resnet50" in err and "alexnet" in err


@pytest.mark.parametrize("bad", ["3x224", "axbxc", "3x0x4"])
def test_show_malformed_input(capsys, bad: str) -> None:
    code, _, err = run(capsys, "show", "resnet18", "--input", bad)
    assert code == 2 and "--input" in err and "CxHxW" in err


def test_show_wrong_channels(capsys) -> None:
    code, _, err = run(capsys, "show", "vgg11", "--input", "1x224x224")
    assert code == 2 and "features.0" in err and "expects 3 input channels" in err


def test_help_does_not_import_torch() -> None:
    code = ("import sys; from opskit.cli.main import main\n"
            "try:\n    main(['models', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    assert "list" in res.stdout and "show" in res.stdout
