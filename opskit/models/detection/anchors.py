"""Anchor boxes: a fixed set of reference boxes tiled over a feature map.

At every cell of a feature map with ``stride`` pixels per cell, one anchor per (size, aspect
ratio) pair is centred on the cell's centre ``((j + 0.5) * stride, (i + 0.5) * stride)``. An
anchor of size ``s`` and ratio ``r = h / w`` has area ``s*s``: ``w = s / sqrt(r)``,
``h = s * sqrt(r)``. The detector predicts, per anchor, "is there an object" and how to move
and stretch the anchor onto it (see ``BoxCoder``), so the anchors set the scales it can find.
"""

from __future__ import annotations

import math

import torch


def base_anchors(sizes: tuple, ratios: tuple) -> torch.Tensor:
    """``(len(sizes) * len(ratios), 4)`` boxes centred on the origin, size-major order."""
    rows = []
    for s in sizes:
        for r in ratios:
            w, h = s / math.sqrt(r), s * math.sqrt(r)
            rows.append((-w / 2, -h / 2, w / 2, h / 2))
    return torch.tensor(rows, dtype=torch.float32)


def grid_anchors(
    feature_hw: tuple[int, int], stride: int, sizes: tuple, ratios: tuple, device=None
) -> torch.Tensor:
    """All anchors of a feature map, ``(H * W * A, 4)`` ordered (row, column, anchor).

    That order matches a head output of shape ``(N, A * k, H, W)`` permuted to
    ``(N, H, W, A, k)`` and flattened.
    """
    h, w = feature_hw
    base = base_anchors(sizes, ratios).to(device)
    ys = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) * stride
    xs = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) * stride
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    centres = torch.stack((cx, cy, cx, cy), dim=-1).reshape(-1, 1, 4)
    return (centres + base[None]).reshape(-1, 4)
