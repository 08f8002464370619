"""AlexNet: the network that made deep CNNs win ImageNet (2012).

Krizhevsky, Sutskever and Hinton, "ImageNet Classification with Deep Convolutional Neural
Networks" (NIPS 2012); the layout here is the single-tower "one weird trick" version
(Krizhevsky 2014) that torchvision ships.

The lesson
----------
Five convolutions and three fully connected layers, trained on two GPUs, with the ideas that
made it work at that scale:

* a large first convolution, 11x11 with stride 4, that cuts a 224x224 image to 55x55 at once
  (most of the computation is spent early, on few channels);
* ReLU instead of tanh: non-saturating, so training is several times faster;
* overlapping max pooling (3x3 windows, stride 2);
* dropout (p=0.5) in the two large fully connected layers against over-fitting: they hold
  about 95% of the 61 million parameters.

Shapes at 224x224 (N = batch)::

    features.0  conv 11x11/4, pad 2   N x 64  x 55 x 55
    features.2  max pool 3x3/2        N x 64  x 27 x 27
    features.3  conv 5x5, pad 2       N x 192 x 27 x 27
    features.5  max pool 3x3/2        N x 192 x 13 x 13
    features.6  conv 3x3              N x 384 x 13 x 13
    features.8  conv 3x3              N x 256 x 13 x 13
    features.10 conv 3x3              N x 256 x 13 x 13
    features.12 max pool 3x3/2        N x 256 x 6  x 6
    avgpool     adaptive 6x6          N x 256 x 6  x 6  (lets other input sizes through)
    classifier  9216 -> 4096 -> 4096 -> num_classes

The pooling stack needs at least 63x63 pixels: at 16x16 the second max pool (features.5)
gets a 1x1 map and the summary names it.

Size options: ``widths`` (the five convolutions' channels), ``hidden`` (the two dense
layers), ``pool_size`` (the adaptive pool's output), ``dropout``, ``num_classes``,
``in_channels``. Module names match torchvision's ``alexnet``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from opskit.models.registry import register_model


class AlexNet(nn.Module):
    def __init__(
        self,
        num_classes: int = 1000,
        in_channels: int = 3,
        widths: Sequence[int] = (64, 192, 384, 256, 256),
        hidden: int = 4096,
        pool_size: int = 6,
        dropout: float = 0.5,
    ):
        super().__init__()
        c1, c2, c3, c4, c5 = widths
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size=11, stride=4, padding=2),  # 0
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # 2: overlapping pooling
            nn.Conv2d(c1, c2, kernel_size=5, padding=2),  # 3
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # 5
            nn.Conv2d(c2, c3, kernel_size=3, padding=1),  # 6
            nn.ReLU(inplace=True),
            nn.Conv2d(c3, c4, kernel_size=3, padding=1),  # 8
            nn.ReLU(inplace=True),
            nn.Conv2d(c4, c5, kernel_size=3, padding=1),  # 10
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # 12
        )
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(c5 * pool_size * pool_size, hidden),  # 1
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden),  # 4
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),  # 6
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # N x 256 x 6 x 6 at 224x224
        x = self.avgpool(x)  # N x 256 x pool x pool
        x = torch.flatten(x, 1)  # N x 9216
        return self.classifier(x)  # N x num_classes

    def shape_flow(self, x, t):
        return t(self.classifier, t.flatten(t(self.avgpool, t(self.features, x))))


@register_model("alexnet")
def alexnet(**cfg) -> AlexNet:
    return AlexNet(**cfg)
