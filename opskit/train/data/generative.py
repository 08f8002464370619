"""Generated images for the generative models: a few distinct modes, each with variation.

``MODES`` kinds of 16x16 (by default) one-channel binary images: a horizontal bar, a vertical
bar, a filled disk and a hollow square, each shifted by up to ``jitter`` pixels (and, with
``variants > 1``, varying in thickness or size). The defaults (36 distinct images) are what a
small DCGAN learns on a CPU in under a thousand steps. A good generative model must produce all four kinds (no mode collapse),
each looking like real members of its kind; ``labels`` name the mode of every real image so
that a judge classifier can be trained on them (see ``opskit.train.tasks.generative``).
Pixel values are 0 or 1 (the VAE's Bernoulli targets); the GAN uses ``2 * x - 1``.
"""

from __future__ import annotations

import torch

from opskit.train.data.tensors import TensorData

MODES = ("horizontal bar", "vertical bar", "disk", "hollow square")


def make_modes(
    n: int, seed: int, size: int = 16, jitter: int = 1, variants: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """``images (n, 1, size, size)`` in {0, 1} and ``labels (n,)`` in ``0..len(MODES)-1``."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(MODES), (n,), generator=g)
    centre = size / 2 + torch.randint(-jitter, jitter + 1, (n, 2), generator=g).float()
    extent = torch.randint(0, variants, (n,), generator=g).float()  # thickness / size variation
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    dy = coords[None, :, None] - centre[:, 1, None, None]
    dx = coords[None, None, :] - centre[:, 0, None, None]
    half_bar = (1.5 + extent)[:, None, None]
    radius = (size / 4 + extent)[:, None, None]
    horizontal = (dy.abs() < half_bar) & (dx.abs() < size * 0.4)
    vertical = (dx.abs() < half_bar) & (dy.abs() < size * 0.4)
    disk = dx**2 + dy**2 < radius**2
    box = torch.maximum(dx.abs(), dy.abs())
    hollow = (box < radius + 0.5) & (box >= radius - 1.5)
    k = labels[:, None, None]
    masks = torch.where(
        k == 0, horizontal, torch.where(k == 1, vertical, torch.where(k == 2, disk, hollow))
    )
    return masks.float()[:, None], labels


def mode_datasets(seed: int, n_train: int = 2048, n_val: int = 512, size: int = 16):
    """Train/val ``TensorData(images, labels)``, validation from an independent seed."""
    return (
        TensorData(*make_modes(n_train, seed, size)),
        TensorData(*make_modes(n_val, seed + 1_000_003, size)),
    )
