"""Generated shapes, synthetic tensors and the user's .npz format (opskit.train.data)."""

from __future__ import annotations

import struct
import zipfile

import pytest
import torch

from opskit.train.data.files import load_npz_dataset, read_npz, save_npz
from opskit.train.data.shapes import MAX_KINDS, shapes_classification, shapes_segmentation
from opskit.train.data.synthetic import synthetic_images
from opskit.train.errors import DataError


def test_shapes_are_deterministic_in_the_seed():
    a = shapes_classification(64, (3, 24, 24), 10, seed=3)
    b = shapes_classification(64, (3, 24, 24), 10, seed=3)
    c = shapes_classification(64, (3, 24, 24), 10, seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a.tensors, b.tensors, strict=True))
    assert not torch.equal(a.tensors[0], c.tensors[0])


def test_shapes_classification_labels_and_shapes():
    data = shapes_classification(400, (1, 20, 20), 1000, seed=0)
    x, y = data.tensors
    assert x.shape == (400, 1, 20, 20) and x.dtype == torch.float32
    assert y.dtype == torch.long
    # More classes than shape kinds: only the first MAX_KINDS labels occur, all of them do.
    assert set(y.tolist()) == set(range(MAX_KINDS))
    few = shapes_classification(100, (3, 16, 16), 4, seed=0).tensors[1]
    assert set(few.tolist()) == {0, 1, 2, 3}


def test_shapes_differ_by_class_not_only_by_noise():
    # Mean image per class: the shape kinds must look different from each other.
    x, y = shapes_classification(800, (1, 24, 24), 4, seed=1).tensors
    means = torch.stack([x[y == k].mean(0).flatten() for k in range(4)])
    distances = torch.cdist(means, means)
    assert distances[~torch.eye(4, dtype=torch.bool)].min() > 0.5


def test_segmentation_masks_match_the_painted_shapes():
    x, m = shapes_segmentation(32, (3, 32, 32), 5, seed=0).tensors
    assert m.shape == (32, 32, 32) and m.dtype == torch.long
    assert int(m.min()) == 0 and int(m.max()) <= 4
    # Shapes are painted brighter than the background: mask pixels are brighter on average.
    brightness = x.mean(1)
    assert brightness[m > 0].mean() > brightness[m == 0].mean() + 1.0
    assert (m > 0).float().mean() > 0.05


def test_synthetic_is_cheap_and_long():
    data = synthetic_images((3, 8, 8), 10, length=10_000, seed=0, pool=16)
    assert len(data) == 10_000
    x, y = data.get_batch(torch.tensor([0, 16, 9999]))
    assert x.shape == (3, 3, 8, 8) and torch.equal(x[0], x[1])
    # What place_dataset weighs before moving it to a GPU: the pool, not the virtual length.
    assert data.nbytes() == 16 * 3 * 8 * 8 * 4 + 16 * 8
    dense = synthetic_images((3, 8, 8), 4, length=5, seed=0, dense=True)
    assert dense.get_batch(torch.tensor([0]))[1].shape == (1, 8, 8)


def test_npz_round_trip(tmp_path):
    path = tmp_path / "d.npz"
    x = torch.rand(20, 3, 8, 8)
    y = torch.arange(20) % 3
    save_npz(path, x=x, y=y.to(torch.int32))
    arrays = read_npz(path)
    assert torch.equal(arrays["x"], x) and torch.equal(arrays["y"], y.to(torch.int32))
    train, val = load_npz_dataset(path)
    assert (len(train), len(val)) == (18, 2)
    assert train.tensors[1].dtype == torch.long


def test_save_npz_refuses_a_dtype_npy_lacks_and_leaves_nothing(tmp_path):
    path = tmp_path / "d.npz"
    save_npz(path, x=torch.zeros(2))
    before = path.read_bytes()
    with pytest.raises(ValueError, match="array 'y': dtype torch.bfloat16"):
        save_npz(path, x=torch.ones(2), y=torch.zeros(2, dtype=torch.bfloat16))
    assert [p.name for p in tmp_path.iterdir()] == ["d.npz"] and path.read_bytes() == before


def test_npz_uint8_images_are_scaled_and_val_arrays_used(tmp_path):
    path = tmp_path / "d.npz"
    x = torch.full((4, 1, 2, 2), 255, dtype=torch.uint8)
    save_npz(path, x=x, y=torch.zeros(4, dtype=torch.long), x_val=x[:2], y_val=torch.ones(2).long())
    train, val = load_npz_dataset(path)
    assert float(train.tensors[0].max()) == 1.0
    assert (len(train), len(val)) == (4, 2)


def _write_raw_npy(path, name, descr, shape, payload, fortran=False):
    header = repr({"descr": descr, "fortran_order": fortran, "shape": shape}).encode()
    header += b" " * (64 - (10 + len(header) + 1) % 64) + b"\n"
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(name, b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + payload)


def test_npz_fortran_order_is_read_correctly(tmp_path):
    path = tmp_path / "f.npz"
    values = torch.arange(6, dtype=torch.float32)  # column-major 2x3: [[0,2,4],[1,3,5]]
    payload = struct.pack("<6f", *values.tolist())
    _write_raw_npy(path, "a.npy", "<f4", (2, 3), payload, fortran=True)
    assert read_npz(path)["a"].tolist() == [[0, 2, 4], [1, 3, 5]]


@pytest.mark.parametrize(
    "arrays, expected",
    [
        ({"x": torch.rand(4, 8, 8), "y": torch.zeros(4).long()}, "'x' has shape (4, 8, 8)"),
        ({"x": torch.rand(4, 1, 8, 8), "y": torch.zeros(4)}, "'y' has dtype torch.float32"),
        ({"x": torch.rand(4, 1, 8, 8), "y": torch.zeros(3).long()}, "'y' has shape (3,)"),
        ({"x": torch.rand(4, 1, 8, 8)}, "no array 'y'"),
        ({"x": torch.zeros(4, 1, 2, 2).long(), "y": torch.zeros(4).long()}, "'x' has dtype"),
        ({"x": torch.rand(4, 1, 8, 8), "y": -torch.ones(4).long()}, "negative class index"),
    ],
)
def test_malformed_npz_names_file_and_fault(tmp_path, arrays, expected):
    path = tmp_path / "bad.npz"
    save_npz(path, **arrays)
    with pytest.raises(DataError) as err:
        load_npz_dataset(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_segmentation_npz_needs_masks(tmp_path):
    path = tmp_path / "seg.npz"
    save_npz(path, x=torch.rand(4, 3, 8, 8), y=torch.zeros(4).long())
    with pytest.raises(DataError, match=r"expected \(N, H, W\) masks"):
        load_npz_dataset(path, dense=True)


def test_not_a_zip_and_missing_file_and_bad_dtype(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"hello, not a zip")
    with pytest.raises(DataError, match="not an .npz file"):
        read_npz(junk)
    with pytest.raises(DataError, match="no such data file"):
        read_npz(tmp_path / "missing.npz")
    objects = tmp_path / "obj.npz"
    _write_raw_npy(objects, "x.npy", "|O", (2,), b"\x00" * 16)
    with pytest.raises(DataError, match="unsupported dtype '\\|O'"):
        read_npz(objects)
    short = tmp_path / "short.npz"
    _write_raw_npy(short, "x.npy", "<f4", (4,), b"\x00" * 8)
    with pytest.raises(DataError, match="8 data bytes, expected 16"):
        read_npz(short)
