"""Region pooling: a fixed-size feature grid for every box, whatever its size.

The two-stage detector cuts each proposal out of the shared feature map and resizes it to
``output_size`` so that one fully connected head can classify every proposal.

* ``roi_pool`` (Fast R-CNN): round the box to feature cells, split it into an
  ``out_h x out_w`` grid of bins (rounded again) and max-pool each bin. The two roundings
  shift the features by up to a cell - harmless for classification, costly for box accuracy.
* ``roi_align`` (Mask R-CNN): no rounding. Each bin is sampled at ``sampling_ratio**2``
  regularly spaced points whose values are bilinearly interpolated from the four nearest
  cells, and the samples are averaged. ``aligned=True`` uses pixel centres at ``i + 0.5``,
  as torchvision does with ``aligned=True``.

Boxes are ``rois (K, 5)``: ``(batch_index, x1, y1, x2, y2)`` in input-image pixels;
``spatial_scale`` is ``1 / stride`` of the feature map.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _bilinear(features: torch.Tensor, batch: torch.Tensor, y: torch.Tensor, x: torch.Tensor):
    """Values of ``features (N, C, H, W)`` at real positions ``(y, x)`` of shape ``(K, P)``.

    ``y``/``x`` are in cell units with cell ``i`` centred at ``i`` (for ``aligned`` boxes the
    caller has already subtracted the half-cell offset). Points more than one cell outside the map
    read 0; points just outside are clamped to the border, as in the reference kernels.
    """
    _, _, h, w = features.shape
    outside = (y < -1.0) | (y > h) | (x < -1.0) | (x > w)
    y = y.clamp(min=0, max=h - 1)
    x = x.clamp(min=0, max=w - 1)
    y0 = y.floor().long()
    x0 = x.floor().long()
    y1 = (y0 + 1).clamp(max=h - 1)
    x1 = (x0 + 1).clamp(max=w - 1)
    ly, lx = y - y0, x - x0  # weights of the far neighbours
    hy, hx = 1 - ly, 1 - lx
    b = batch[:, None].expand_as(y0)
    # Advanced indices around a slice: the result is (K, P, C).
    value = (
        features[b, :, y0, x0] * (hy * hx)[..., None]
        + features[b, :, y0, x1] * (hy * lx)[..., None]
        + features[b, :, y1, x0] * (ly * hx)[..., None]
        + features[b, :, y1, x1] * (ly * lx)[..., None]
    )
    return value * (~outside)[..., None]


def roi_align(
    features: torch.Tensor,
    rois: torch.Tensor,
    output_size: tuple[int, int],
    spatial_scale: float,
    sampling_ratio: int = 2,
    aligned: bool = True,
) -> torch.Tensor:
    """RoIAlign: ``(K, C, out_h, out_w)`` bilinear, un-quantised features for each box."""
    out_h, out_w = output_size
    k = rois.shape[0]
    c = features.shape[1]
    if k == 0:
        return features.new_zeros((0, c, out_h, out_w))
    offset = 0.5 if aligned else 0.0
    boxes = rois[:, 1:].to(features.dtype) * spatial_scale - offset
    x1, y1, x2, y2 = boxes.unbind(1)
    bw = x2 - x1
    bh = y2 - y1
    if not aligned:  # the original kernel forces at least a 1-cell box
        bw, bh = bw.clamp(min=1.0), bh.clamp(min=1.0)
    s = sampling_ratio
    # Sample positions inside each bin at (bin + (i + 0.5) / s) * bin_size.
    frac_y = (torch.arange(out_h * s, device=rois.device, dtype=features.dtype) + 0.5) / s
    frac_x = (torch.arange(out_w * s, device=rois.device, dtype=features.dtype) + 0.5) / s
    ys = y1[:, None] + frac_y[None] * (bh / out_h)[:, None]  # (K, out_h * s)
    xs = x1[:, None] + frac_x[None] * (bw / out_w)[:, None]  # (K, out_w * s)
    grid_y = ys[:, :, None].expand(k, out_h * s, out_w * s).reshape(k, -1)
    grid_x = xs[:, None, :].expand(k, out_h * s, out_w * s).reshape(k, -1)
    values = _bilinear(features, rois[:, 0].long(), grid_y, grid_x)  # (K, P, C)
    values = values.reshape(k, out_h * s, out_w * s, c).permute(0, 3, 1, 2)
    return F.avg_pool2d(values, s) if s > 1 else values.contiguous()  # mean of each bin


def roi_pool(
    features: torch.Tensor, rois: torch.Tensor, output_size: tuple[int, int], spatial_scale: float
) -> torch.Tensor:
    """RoIPool (Fast R-CNN): quantised boxes, max over each bin; empty bins give 0."""
    out_h, out_w = output_size
    n_img, c, h, w = features.shape
    out = features.new_zeros((rois.shape[0], c, out_h, out_w))
    boxes = torch.floor(rois[:, 1:] * spatial_scale + 0.5).long()  # round half up, as in C
    for i in range(rois.shape[0]):
        b = int(rois[i, 0])
        x1, y1, x2, y2 = boxes[i].tolist()
        rh, rw = max(y2 - y1 + 1, 1), max(x2 - x1 + 1, 1)
        for ph in range(out_h):
            hs = min(max(y1 + (ph * rh) // out_h, 0), h)
            he = min(max(y1 + -(-((ph + 1) * rh) // out_h), 0), h)
            for pw in range(out_w):
                ws = min(max(x1 + (pw * rw) // out_w, 0), w)
                we = min(max(x1 + -(-((pw + 1) * rw) // out_w), 0), w)
                if he > hs and we > ws:
                    out[i, :, ph, pw] = features[b, :, hs:he, ws:we].amax(dim=(1, 2))
    return out
