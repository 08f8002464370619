"""A user's own images in class folders (``--data DIR``), where Pillow is installed.

Layout, one folder per class (the sorted folder names give the class indices 0, 1, ...)::

    DIR/train/cat/*.png   DIR/train/dog/*.jpg   ...
    DIR/val/cat/...       DIR/val/dog/...        (optional)

or the class folders directly in ``DIR`` (then every 10th image of each class, in name order,
is held out for validation). Images (.png, .jpg, .jpeg, .bmp, .gif, .webp) are converted to RGB
(or grey for a 1-channel input) and resized to the model's input size (``--input``), once,
when the run starts, so training steps only index tensors. Classification only.
"""

from __future__ import annotations

from pathlib import Path

import torch

from opskit.train.data.tensors import TensorData
from opskit.train.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}


def _pillow():
    try:
        from PIL import Image
    except ImportError:
        raise DataError(
            "image folders need Pillow, which is not installed",
            "pip install pillow, or convert the images to an .npz file (x, y arrays)",
        ) from None
    return Image


def _class_dirs(root: Path) -> list[Path]:
    dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not dirs:
        raise DataError(
            f"{root}: no class folders",
            "put each class's images in its own folder: DIR/CLASS/*.png (or DIR/train/CLASS)",
        )
    return dirs


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _load(paths: list[Path], shape: tuple) -> torch.Tensor:
    image_mod = _pillow()
    c, h, w = shape
    mode = "L" if c == 1 else "RGB"
    if c not in (1, 3):
        raise DataError(f"image folders give 1 or 3 channels, the model wants {c}")
    out = torch.empty((len(paths), c, h, w))
    for i, path in enumerate(paths):
        try:
            with image_mod.open(path) as img:
                img = img.convert(mode).resize((w, h), image_mod.Resampling.BILINEAR)
                data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: not a readable image ({exc})") from None
        out[i] = data.view(h, w, c).permute(2, 0, 1).float() / 255.0
    return out


def _collect(root: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
    paths, labels = [], []
    for folder in _class_dirs(root):
        if folder.name not in classes:
            raise DataError(f"{folder}: class {folder.name!r} is not among the training classes")
        found = _images(folder)
        paths += found
        labels += [classes.index(folder.name)] * len(found)
    return paths, labels


def load_image_folder(root: str | Path, shape: tuple) -> tuple[TensorData, TensorData]:
    """(train, val) ``TensorData`` of images resized to ``shape`` (C, H, W) and their labels."""
    root = Path(root)
    _pillow()
    split = (root / "train").is_dir()
    train_root = root / "train" if split else root
    classes = [d.name for d in _class_dirs(train_root)]
    paths, labels = _collect(train_root, classes)
    if not paths:
        raise DataError(f"{train_root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if split and (root / "val").is_dir():
        val_paths, val_labels = _collect(root / "val", classes)
    else:
        seen: dict[int, int] = {}
        held = []
        for i, label in enumerate(labels):
            seen[label] = seen.get(label, 0) + 1
            if seen[label] % 10 == 0:
                held.append(i)
        held = held or [len(paths) - 1]
        val_paths = [paths[i] for i in held]
        val_labels = [labels[i] for i in held]
        held_set = set(held)
        keep = [i for i in range(len(paths)) if i not in held_set]
        paths, labels = [paths[i] for i in keep], [labels[i] for i in keep]
    if not paths or not val_paths:
        raise DataError(f"{root}: need images for both training and validation")
    return (
        TensorData(_load(paths, shape), torch.tensor(labels, dtype=torch.long)),
        TensorData(_load(val_paths, shape), torch.tensor(val_labels, dtype=torch.long)),
    )
