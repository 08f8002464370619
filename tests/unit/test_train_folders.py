"""Image class folders as --data (needs Pillow; skipped where it is not installed)."""

from __future__ import annotations

import json
import sys

import pytest

from opskit.train.data.folders import load_image_folder
from opskit.train.entry import main
from opskit.train.errors import DataError

Image = pytest.importorskip("PIL.Image")


def make_folder(root, classes=("blue", "red"), n=10, size=(12, 10)):
    colours = {"red": (255, 0, 0), "blue": (0, 0, 255), "green": (0, 255, 0)}
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", size, colours[name]).save(root / name / f"{i:02}.png")
    return root


def test_class_folders_become_tensors_with_a_held_out_tenth(tmp_path):
    root = make_folder(tmp_path / "d")
    train, val = load_image_folder(root, (3, 8, 8))
    assert (len(train), len(val)) == (18, 2)  # every 10th image of each class
    x, y = train.tensors
    assert x.shape == (18, 3, 8, 8) and y.tolist() == [0] * 9 + [1] * 9  # sorted: blue, red
    assert float(x[0, 2].mean()) == pytest.approx(1.0) and float(x[-1, 0].mean()) == 1.0
    grey, _ = load_image_folder(root, (1, 4, 4))
    assert grey.tensors[0].shape == (18, 1, 4, 4)


def test_train_and_val_folders(tmp_path):
    make_folder(tmp_path / "d" / "train", n=4)
    make_folder(tmp_path / "d" / "val", n=2)
    train, val = load_image_folder(tmp_path / "d", (3, 8, 8))
    assert (len(train), len(val)) == (8, 4)
    make_folder(tmp_path / "e" / "train", n=2)
    make_folder(tmp_path / "e" / "val", classes=("green",), n=2)
    with pytest.raises(DataError, match="class 'green' is not among the training classes"):
        load_image_folder(tmp_path / "e", (3, 8, 8))


def test_bad_folders_name_the_fault(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        load_image_folder(tmp_path / "empty", (3, 8, 8))
    root = make_folder(tmp_path / "d", n=3)
    bad = root / "red" / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png: not a readable image"):
        load_image_folder(root, (3, 8, 8))
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(DataError, match="need Pillow"):
        load_image_folder(root, (3, 8, 8))


def test_training_on_an_image_folder(tmp_path, capsys):
    root = make_folder(tmp_path / "d", n=20, size=(40, 40))
    out = tmp_path / "o"
    argv = ["lenet", "--small", "--data", str(root), "--steps", "3", "--batch-size", "8",
            "--threads", "1", "--device", "cpu", "--progress", "none", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"
    assert main([*argv[:-1], str(tmp_path / "o2"), "--model-arg", "num_classes=1"]) == 2
    assert "class index 1 in the data" in capsys.readouterr().err
