"""Generated, learnable image tasks: shapes to classify and shapes to segment.

Everything is drawn from a ``torch.Generator`` seeded by the caller (never the global RNG), so
the same seed gives the same tensors, and rendered once, vectorised, at construction time: a
training step then only gathers a batch (see ``TensorData``).

Classification: one shape per image, the label is the shape's kind. Segmentation: one to three
shapes per image, the mask holds ``1 + kind`` per pixel (0 = background). Up to ten kinds:
disk, square, triangle, plus, ring, diamond, horizontal bar, vertical bar, X and frame; a task
with more classes uses the first ten. Position, size, colours and noise vary per image.
"""

from __future__ import annotations

import torch

from opskit.train.data.tensors import TensorData

SHAPE_NAMES = (
    "disk", "square", "triangle", "plus", "ring",
    "diamond", "hbar", "vbar", "x", "frame",
)  # fmt: skip
MAX_KINDS = len(SHAPE_NAMES)


def shape_mask(kind: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Boolean mask of shape ``kind`` in coordinates relative to its centre and radius."""
    au, av = u.abs(), v.abs()
    box = torch.maximum(au, av)
    radius = (u * u + v * v).sqrt()
    if kind == 0:
        return radius <= 1.0
    if kind == 1:
        return box <= 0.8
    if kind == 2:  # apex up: width grows from the top (v=-0.8) to the base (v=0.8)
        return (v >= -0.8) & (v <= 0.8) & (au <= (v + 0.8) * 0.6)
    if kind == 3:
        return ((au <= 0.25) & (av <= 0.9)) | ((av <= 0.25) & (au <= 0.9))
    if kind == 4:
        return (radius >= 0.55) & (radius <= 1.0)
    if kind == 5:
        return au + av <= 1.0
    if kind == 6:
        return (av <= 0.3) & (au <= 1.0)
    if kind == 7:
        return (au <= 0.3) & (av <= 1.0)
    if kind == 8:
        return (((u - v).abs() <= 0.35) | ((u + v).abs() <= 0.35)) & (box <= 0.85)
    if kind == 9:
        return (box <= 0.9) & (box >= 0.6)
    raise ValueError(f"shape kind {kind} is not in 0..{MAX_KINDS - 1}")


def _render(kinds: torch.Tensor, size: tuple[int, int], g: torch.Generator, scale: tuple):
    """Masks (N, H, W) of one shape per sample, at random positions and radii."""
    n = kinds.shape[0]
    h, w = size
    side = min(h, w)
    r = (scale[0] + (scale[1] - scale[0]) * torch.rand(n, generator=g)) * side
    cy = r + torch.rand(n, generator=g) * (h - 2 * r).clamp(min=0)
    cx = r + torch.rand(n, generator=g) * (w - 2 * r).clamp(min=0)
    ys = torch.arange(h, dtype=torch.float32).view(1, h, 1) + 0.5
    xs = torch.arange(w, dtype=torch.float32).view(1, 1, w) + 0.5
    masks = torch.zeros((n, h, w), dtype=torch.bool)
    for kind in kinds.unique().tolist():
        sel = (kinds == kind).nonzero().squeeze(1)
        u = (xs - cx[sel].view(-1, 1, 1)) / r[sel].view(-1, 1, 1)
        v = (ys - cy[sel].view(-1, 1, 1)) / r[sel].view(-1, 1, 1)
        masks[sel] = shape_mask(int(kind), u, v)
    return masks


def _paint(masks: list[torch.Tensor], channels: int, g: torch.Generator) -> torch.Tensor:
    """Images (N, C, H, W): a dark background, each mask in its own bright colour, noise."""
    n, h, w = masks[0].shape
    img = (0.4 * torch.rand((n, channels, 1, 1), generator=g)).expand(n, channels, h, w)
    for mask in masks:
        colour = 0.6 + 0.4 * torch.rand((n, channels, 1, 1), generator=g)
        img = torch.where(mask.unsqueeze(1), colour, img)
    img = img + 0.08 * torch.randn(img.shape, generator=g)
    return (img - 0.4) / 0.3


def _chunks(n: int, per_chunk: int):
    for start in range(0, n, per_chunk):
        yield start, min(n, start + per_chunk)


def shapes_classification(n: int, shape: tuple, num_classes: int, seed: int) -> TensorData:
    """``n`` images of ``shape`` (C, H, W), labels in ``0..min(num_classes, 10)-1``."""
    c, h, w = shape
    kinds_n = max(1, min(num_classes, MAX_KINDS))
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, kinds_n, (n,), generator=g)
    images = torch.empty((n, c, h, w))
    per_chunk = max(1, (1 << 22) // (h * w))  # bound the memory of the intermediate masks
    for a, b in _chunks(n, per_chunk):
        masks = _render(labels[a:b], (h, w), g, (0.25, 0.45))
        images[a:b] = _paint([masks], c, g)
    return TensorData(images, labels)


def shapes_segmentation(
    n: int, shape: tuple, num_classes: int, seed: int, *, max_shapes: int = 3
) -> TensorData:
    """``n`` images and (N, H, W) int64 masks: 0 background, ``1 + kind`` on each shape."""
    c, h, w = shape
    kinds_n = max(1, min(num_classes - 1, MAX_KINDS))
    g = torch.Generator().manual_seed(seed)
    images = torch.empty((n, c, h, w))
    targets = torch.zeros((n, h, w), dtype=torch.long)
    per_chunk = max(1, (1 << 21) // (h * w))
    for a, b in _chunks(n, per_chunk):
        count = torch.randint(1, max_shapes + 1, (b - a,), generator=g)
        masks = []
        for i in range(max_shapes):
            kinds = torch.randint(0, kinds_n, (b - a,), generator=g)
            mask = _render(kinds, (h, w), g, (0.15, 0.3)) & (count > i).view(-1, 1, 1)
            targets[a:b] = torch.where(mask, (kinds + 1).view(-1, 1, 1), targets[a:b])
            masks.append(mask)
        images[a:b] = _paint(masks, c, g)
    return TensorData(images, targets)
