"""A plain convolutional feature extractor for the detectors (Darknet/VGG in spirit).

``stages`` times: a 3x3 convolution (BatchNorm, leaky ReLU) then 2x2 max pooling, channels
doubling each stage up to ``max_width``. The output stride is ``2 ** stages``. Small widths
and few stages give the CPU-sized variants; the same code with width 32 and 5 stages is the
Darknet-19-like trunk of YOLOv2 at stride 32.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_bn_act(c_in: int, c_out: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.1, inplace=True),
    )


class ConvBackbone(nn.Module):
    """Feature map at stride ``2 ** stages`` with ``out_channels`` channels."""

    def __init__(
        self, in_channels: int = 3, width: int = 32, stages: int = 5, max_width: int = 512
    ):
        super().__init__()
        layers: list[nn.Module] = []
        c_in, c = in_channels, width
        for _ in range(stages):
            layers += [conv_bn_act(c_in, c), nn.MaxPool2d(2, 2)]
            c_in, c = c, min(c * 2, max_width)
        layers.append(conv_bn_act(c_in, c_in))
        self.body = nn.Sequential(*layers)
        self.out_channels = c_in
        self.stride = 2**stages

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def shape_flow(self, x, t):  # for opskit.models.summary
        return t(self.body, x)


def unpad_targets(boxes: torch.Tensor, labels: torch.Tensor) -> list[dict]:
    """Padded ``boxes (B, M, 4)`` / ``labels (B, M)`` (-1 = no object) -> one dict per image."""
    return [
        {"boxes": b[lab >= 0], "labels": lab[lab >= 0]}
        for b, lab in zip(boxes, labels, strict=True)
    ]
