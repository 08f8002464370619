"""LeNet-5: the convolutional network that read handwritten digits (1998).

LeCun, Bottou, Bengio and Haffner, "Gradient-Based Learning Applied to Document
Recognition" (Proc. IEEE, 1998).

The lesson
----------
The pattern every later CNN repeats: *convolutions* share one small set of weights across
the whole image (a feature detector that works wherever the feature is), *subsampling*
(pooling) trades resolution for robustness to small shifts, and a few *dense layers* at the
end turn the features into class scores. Alternating the two, the maps get smaller and
deeper: 1x32x32 -> 6x28x28 -> 6x14x14 -> 16x10x10 -> 16x5x5 -> 120 -> 84 -> 10.

Shapes for the paper's 32x32 input (N = batch)::

    conv1 5x5       N x 6  x 28 x 28      C1
    pool1 2x2/2     N x 6  x 14 x 14      S2
    conv2 5x5       N x 16 x 10 x 10      C3
    pool2 2x2/2     N x 16 x 5  x 5       S4
    flatten         N x 400
    fc1             N x 120               C5 (a 5x5 convolution over a 5x5 map = dense)
    fc2             N x 84                F6
    fc3             N x num_classes       output

Modern choices, as in most re-implementations: ReLU instead of the scaled tanh, max
pooling instead of trainable average subsampling, every C3 map connected to every S2 map
(the paper used a sparse table), and a linear output instead of RBF units. With
``input_size`` the first dense layer adapts to other input sizes (it needs at least 12x12).

Size options: ``widths`` (the two convolutions), ``hidden`` (the two dense layers),
``input_size``, ``num_classes``, ``in_channels``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from opskit.models.registry import register_model


class LeNet(nn.Module):
    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        input_size: int = 32,
        widths: Sequence[int] = (6, 16),
        hidden: Sequence[int] = (120, 84),
    ):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, widths[0], kernel_size=5),  # 0: C1
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),  # 2: S2
            nn.Conv2d(widths[0], widths[1], kernel_size=5),  # 3: C3
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2, stride=2),  # 5: S4
        )
        side = ((input_size - 4) // 2 - 4) // 2  # the formula, twice: conv 5x5 then pool /2
        if side < 1:
            raise ValueError(f"LeNet needs input_size >= 12, got {input_size}")
        self.classifier = nn.Sequential(
            nn.Linear(widths[1] * side * side, hidden[0]),  # 0: C5
            nn.ReLU(inplace=True),
            nn.Linear(hidden[0], hidden[1]),  # 2: F6
            nn.ReLU(inplace=True),
            nn.Linear(hidden[1], num_classes),  # 4: output
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # N x 16 x 5 x 5 at 32x32
        return self.classifier(torch.flatten(x, 1))  # N x num_classes

    def shape_flow(self, x, t):
        return t(self.classifier, t.flatten(t(self.features, x)))


@register_model("lenet")
def lenet(**cfg) -> LeNet:
    return LeNet(**cfg)
