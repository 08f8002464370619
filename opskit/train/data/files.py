"""A user's own data: one ``.npz`` file (what ``numpy.savez`` writes), read without numpy.

Format (``--data PATH.npz``):

* ``x``: inputs, shape (N, C, H, W), dtype float32/float64/float16 (used as they are) or uint8
  (scaled to [0, 1]).
* ``y``: targets, integer dtype (int64/int32/int16/int8/uint8):
  classification: shape (N,), class indices in ``0..num_classes-1``;
  segmentation: shape (N, H, W), class index per pixel.
* optional ``x_val`` and ``y_val`` of the same kinds; without them the last 10% (at least one
  sample) of ``x``/``y`` is held out for validation.

Make one with numpy: ``numpy.savez("data.npz", x=x, y=y)`` (``savez_compressed`` works too),
or without numpy: ``opskit.train.data.files.save_npz(path, x=tensor, y=tensor)``.
A malformed file raises ``DataError`` naming the file, the array and what is wrong.
"""

from __future__ import annotations

import ast
import ctypes
import os
import struct
import zipfile
from pathlib import Path

import torch

from opskit.train.data.tensors import TensorData
from opskit.train.errors import DataError

_MAGIC = b"\x93NUMPY"
_DTYPES = {
    "f2": torch.float16, "f4": torch.float32, "f8": torch.float64,
    "i1": torch.int8, "i2": torch.int16, "i4": torch.int32, "i8": torch.int64,
    "u1": torch.uint8, "b1": torch.bool,
}  # fmt: skip
_NAMES = {v: k for k, v in _DTYPES.items()}
FLOAT_DTYPES = (torch.float16, torch.float32, torch.float64)
INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)


def _parse_npy(raw: bytes, where: str) -> torch.Tensor:
    if not raw.startswith(_MAGIC) or len(raw) < 10:
        raise DataError(f"{where}: not a .npy array (bad magic bytes)")
    major = raw[6]
    if major == 1:
        (hlen,), start = struct.unpack("<H", raw[8:10]), 10
    else:
        (hlen,), start = struct.unpack("<I", raw[8:12]), 12
    try:
        header = ast.literal_eval(raw[start : start + hlen].decode("latin1"))
        descr, fortran, shape = header["descr"], header["fortran_order"], tuple(header["shape"])
    except (ValueError, SyntaxError, KeyError, TypeError) as exc:
        raise DataError(f"{where}: unreadable .npy header ({exc})") from None
    if not isinstance(descr, str) or descr[1:] not in _DTYPES or descr[0] == ">":
        raise DataError(
            f"{where}: unsupported dtype {descr!r}",
            "use little-endian float16/32/64, int8/16/32/64, uint8 or bool arrays",
        )
    dtype = _DTYPES[descr[1:]]
    body = memoryview(raw)[start + hlen :]
    count = 1
    for d in shape:
        count *= d
    itemsize = torch.empty((), dtype=dtype).element_size()
    if len(body) != count * itemsize:
        raise DataError(f"{where}: {len(body)} data bytes, expected {count * itemsize} for {shape}")
    flat = torch.frombuffer(bytearray(body), dtype=dtype) if count else torch.empty(0, dtype=dtype)
    if fortran:
        return flat.reshape(shape[::-1]).permute(*reversed(range(len(shape)))).contiguous()
    return flat.reshape(shape)


def read_npz(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All arrays of an ``.npz`` file as tensors; ``DataError`` naming the file if malformed."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: no such data file",
            "give --data an existing .npz file, or 'shapes' (generated) or 'synthetic'",
        )
    try:
        with zipfile.ZipFile(path) as zf:
            arrays = {}
            for name in zf.namelist():
                key = name[:-4] if name.endswith(".npy") else name
                arrays[key] = _parse_npy(zf.read(name), f"{path}: array {key!r}")
            return arrays
    except zipfile.BadZipFile:
        raise DataError(
            f"{path}: not an .npz file (not a zip archive)",
            "write it with numpy.savez(path, x=..., y=...) or opskit.train.data.files.save_npz",
        ) from None


def save_npz(path: str | os.PathLike, **arrays: torch.Tensor) -> None:
    """Write tensors as an ``.npz`` numpy can read (temp name, then rename)."""
    path = Path(path)
    for key, t in arrays.items():
        if t.dtype not in _NAMES:
            raise ValueError(f"array {key!r}: dtype {t.dtype} has no .npy equivalent here")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            for key, t in arrays.items():
                zf.writestr(key + ".npy", _npy_bytes(t.detach().cpu().contiguous()))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _npy_bytes(t: torch.Tensor) -> bytes:
    """One array in .npy format version 1.0 (header padded to 64 bytes)."""
    descr = ("|" if t.element_size() == 1 else "<") + _NAMES[t.dtype]
    header = repr({"descr": descr, "fortran_order": False, "shape": tuple(t.shape)})
    pad = 64 - (10 + len(header) + 1) % 64
    header_bytes = (header + " " * pad + "\n").encode("latin1")
    prefix = _MAGIC + b"\x01\x00" + struct.pack("<H", len(header_bytes))
    return prefix + header_bytes + _tensor_bytes(t)


def _tensor_bytes(t: torch.Tensor) -> bytes:
    """The raw bytes of a contiguous CPU tensor (no numpy needed)."""
    if t.dtype == torch.bool:
        t = t.to(torch.uint8)
    return ctypes.string_at(t.data_ptr(), t.element_size() * t.numel()) if t.numel() else b""


def _check(arrays: dict, path: Path, xkey: str, ykey: str, dense: bool) -> tuple:
    x, y = arrays[xkey], arrays[ykey]
    where = f"{path}: array {xkey!r}"
    if x.dtype not in FLOAT_DTYPES + (torch.uint8,):
        raise DataError(f"{where} has dtype {x.dtype}, expected float16/32/64 or uint8")
    if x.dim() != 4:
        raise DataError(
            f"{where} has shape {tuple(x.shape)}, expected 4 dimensions (N, C, H, W)",
            "images go channels first: x.transpose(0, 3, 1, 2) turns NHWC into NCHW",
        )
    where = f"{path}: array {ykey!r}"
    if y.dtype not in INT_DTYPES:
        raise DataError(f"{where} has dtype {y.dtype}, expected integer class indices")
    want = (x.shape[0], *x.shape[2:]) if dense else (x.shape[0],)
    if tuple(y.shape) != tuple(want):
        what = "(N, H, W) masks" if dense else "(N,) labels"
        raise DataError(f"{where} has shape {tuple(y.shape)}, expected {what} = {tuple(want)}")
    if y.numel() and int(y.min()) < 0:
        raise DataError(f"{where} holds negative class index {int(y.min())}")
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return x, y.long()


def load_npz_dataset(path: str | os.PathLike, *, dense: bool = False) -> tuple:
    """(train, val) ``TensorData`` from a user's ``.npz`` (see the module docstring)."""
    path = Path(path)
    arrays = read_npz(path)
    for key in ("x", "y"):
        if key not in arrays:
            raise DataError(
                f"{path}: no array {key!r} (found: {', '.join(sorted(arrays)) or 'none'})",
                "save inputs as x=... and targets as y=...",
            )
    x, y = _check(arrays, path, "x", "y", dense)
    if "x_val" in arrays or "y_val" in arrays:
        if not ("x_val" in arrays and "y_val" in arrays):
            raise DataError(f"{path}: x_val and y_val must come together")
        xv, yv = _check(arrays, path, "x_val", "y_val", dense)
        if xv.shape[1:] != x.shape[1:]:
            raise DataError(
                f"{path}: x_val samples are {tuple(xv.shape[1:])}, x has {tuple(x.shape[1:])}"
            )
        return TensorData(x, y), TensorData(xv, yv)
    if x.shape[0] < 2:
        raise DataError(f"{path}: {x.shape[0]} samples; need at least 2 (train and validation)")
    n_val = max(1, x.shape[0] // 10)
    return TensorData(x, y).split(x.shape[0] - n_val)


def max_label(*datasets: TensorData) -> int:
    return max(int(d.tensors[1].max()) for d in datasets if len(d))
