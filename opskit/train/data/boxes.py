"""Generated detection data: coloured shapes on a noisy background, with their boxes.

Each image holds 1 to 4 objects, one per quadrant at most (so objects never hide each other),
each a square, a disk or a triangle (class 0, 1, 2) of a random size, position and bright
colour. The class is the *shape*, not the colour, so a detector must look at the outline.
Everything is drawn for the whole dataset at once with tensor masks - generating 4,096
48x48 images takes well under a second - and is deterministic in the seed.
"""

from __future__ import annotations

import torch

from opskit.train.data.tensors import TensorData

CLASSES = ("square", "disk", "triangle")


def _draw(kind: torch.Tensor, cx, cy, half, yy, xx) -> torch.Tensor:
    """Masks ``(N, H, W)`` of each image's shape of ``kind`` centred at (cx, cy)."""
    dx, dy = xx - cx[:, None, None], yy - cy[:, None, None]
    h = half[:, None, None]
    square = (dx.abs() <= h) & (dy.abs() <= h)
    disk = dx**2 + dy**2 <= h**2
    # Triangle with apex at the top centre and base along the bottom of the box.
    triangle = (dy.abs() <= h) & (dx.abs() <= (dy + h) / 2)
    k = kind[:, None, None]
    return torch.where(k == 0, square, torch.where(k == 1, disk, triangle))


def make_shapes(n: int, seed: int, size: int = 48, chunk: int = 256) -> tuple[torch.Tensor, ...]:
    """``images (n, 3, size, size)`` uint8, ``boxes (n, 4, 4)``, ``labels (n, 4)`` (-1 = none).

    Objects are ``size / 6`` to ``size * 5 / 12`` pixels wide (8 to 20 at 48x48). Images are
    stored as bytes (a quarter of the memory); divide by 255 to train. The objects are drawn
    first, then the pixels ``chunk`` images at a time, so large sizes stay within memory.
    """
    if size < 24:
        raise ValueError(f"detection images must be at least 24x24, got {size}")
    min_size, max_size = max(4, size // 6), size * 5 // 12
    g = torch.Generator().manual_seed(seed)
    present = torch.rand(n, 4, generator=g) < 0.5
    present[torch.arange(n), torch.randint(0, 4, (n,), generator=g)] = True  # at least one
    q = size // 2
    half = torch.randint(min_size, max_size + 1, (n, 4), generator=g).float() / 2
    room = (q - 2 * half).clamp(min=0)
    offset = torch.tensor([[0, 0], [q, 0], [0, q], [q, q]], dtype=torch.float32)  # quadrants
    cx = offset[:, 0] + half + torch.rand(n, 4, generator=g) * room
    cy = offset[:, 1] + half + torch.rand(n, 4, generator=g) * room
    kind = torch.randint(0, len(CLASSES), (n, 4), generator=g)
    colour = 0.5 + 0.5 * torch.rand(n, 4, 3, generator=g)
    labels = torch.where(present, kind, -1)
    boxes = torch.stack((cx - half, cy - half, cx + half, cy + half), 2) * present[..., None]
    centres = torch.arange(size, dtype=torch.float32) + 0.5
    yy, xx = centres[:, None], centres[None, :]
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        img = 0.15 * torch.rand(b - a, 3, size, size, generator=g)
        for slot in range(4):
            mask = _draw(kind[a:b, slot], cx[a:b, slot], cy[a:b, slot], half[a:b, slot], yy, xx)
            mask &= present[a:b, slot, None, None]
            img = torch.where(mask[:, None], colour[a:b, slot, :, None, None], img)
        images[a:b] = (img * 255).round().to(torch.uint8)
    return images, boxes, labels


def shapes_datasets(seed: int, n_train: int = 2048, n_val: int = 256, size: int = 48):
    """Train and validation ``TensorData(images, boxes, labels)`` from independent seeds."""
    train = TensorData(*make_shapes(n_train, seed, size))
    val = TensorData(*make_shapes(n_val, seed + 1_000_003, size))
    return train, val
