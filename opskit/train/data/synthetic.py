"""``synthetic``: random tensors of the right shapes, for throughput measurements.

A small pool of samples is generated once from the seed; ``get_batch`` gathers from it modulo
the pool size, so a step costs one indexing call and the dataset can be as long as asked.
"""

from __future__ import annotations

import torch


class SyntheticData:
    """``length`` virtual samples drawn from a pool of ``pool`` random ones."""

    def __init__(self, tensors: tuple[torch.Tensor, ...], length: int):
        self.pool = tuple(tensors)
        self.pool_size = int(tensors[0].shape[0])
        self.length = int(length)

    def __len__(self) -> int:
        return self.length

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, ...]:
        idx = indices.to(self.pool[0].device).remainder(self.pool_size)
        return tuple(t.index_select(0, idx) for t in self.pool)

    def to(self, device: torch.device | str) -> SyntheticData:
        return SyntheticData(tuple(t.to(device) for t in self.pool), self.length)

    def nbytes(self) -> int:
        return sum(t.element_size() * t.nelement() for t in self.pool)


def synthetic_images(
    shape: tuple, num_classes: int, length: int, seed: int, *, pool: int = 256, dense: bool = False
) -> SyntheticData:
    """Random images (N, *shape) and labels: per image, or per pixel with ``dense=True``."""
    g = torch.Generator().manual_seed(seed)
    pool = max(1, min(pool, length))
    x = torch.randn((pool, *shape), generator=g)
    label_shape = (pool, *shape[1:]) if dense else (pool,)
    y = torch.randint(0, max(1, num_classes), label_shape, generator=g)
    return SyntheticData((x, y), length)
