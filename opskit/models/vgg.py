"""VGG: depth from nothing but 3x3 convolutions and 2x2 max pooling.

Simonyan and Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition" (ICLR 2015).

The lesson
----------
One design rule, applied over and over: 3x3 convolutions (padding 1, so they keep the size),
and after each block a 2x2 max pool that halves the resolution while the next block doubles
the channels (64 -> 128 -> 256 -> 512). Two stacked 3x3 convolutions see a 5x5 window and
three see 7x7, with fewer parameters than one large kernel (3 * 9 C^2 = 27 C^2 against
49 C^2) and a ReLU between each. Configurations from the paper's table 1:

* A (VGG-11): 1, 1, 2, 2, 2 convolutions in the five blocks;
* D (VGG-16): 2, 2, 3, 3, 3.

``vgg16_bn`` adds batch normalization after every convolution (not in the paper; it came a
few months later and makes these nets train from scratch without the paper's staged
initialisation).

Shapes of VGG-16 at 224x224: the five pools give 112, 56, 28, 14, 7; ``features`` ends at
N x 512 x 7 x 7, the adaptive pool keeps 7x7 (and lets other sizes through), and the
classifier maps 25088 -> 4096 -> 4096 -> num_classes. The classifier holds about 124 of the
138 million parameters.

Size options: ``width`` (a multiplier on every convolution's channels), ``hidden``,
``pool_size``, ``dropout``, ``num_classes``, ``in_channels``; ``head_init_std``. Module names match
torchvision's (``features.0.weight`` ... ``classifier.6.weight``).
"""

from __future__ import annotations

import torch
from torch import nn

from opskit.models.registry import register_model

# Channels of each 3x3 convolution; "M" is a 2x2 max pool. Table 1 of the paper.
CONFIGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M"],
}


def make_features(cfg: list[int | str], in_channels: int, width: float,
                  batch_norm: bool) -> tuple[nn.Sequential, int]:
    """The convolutional part; returns it and its output channels."""
    layers: list[nn.Module] = []
    ch = in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        out = max(1, round(int(v) * width))
        layers.append(nn.Conv2d(ch, out, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out))
        layers.append(nn.ReLU(inplace=True))
        ch = out
    return nn.Sequential(*layers), ch


class VGG(nn.Module):
    def __init__(
        self,
        config: str = "D",
        batch_norm: bool = False,
        num_classes: int = 1000,
        in_channels: int = 3,
        width: float = 1.0,
        hidden: int = 4096,
        pool_size: int = 7,
        dropout: float = 0.5,
        head_init_std: float | None = 0.01,
    ):
        super().__init__()
        self.head_init_std = head_init_std
        self.features, ch = make_features(CONFIGS[config], in_channels, width, batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d((pool_size, pool_size))
        self.classifier = nn.Sequential(
            nn.Linear(ch * pool_size * pool_size, hidden),  # 0
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, hidden),  # 3
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(hidden, num_classes),  # 6
        )
        self._init_weights()

    def _init_weights(self) -> None:
        """He init for convolutions; the dense layers N(0, 0.01) as in the paper (and
        torchvision). That tiny start suits the full-size net but starves a narrow one of
        gradient for many steps, so ``head_init_std=None`` keeps PyTorch's default (scaled
        to the fan-in) instead: the small variants use it."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear) and self.head_init_std is not None:
                nn.init.normal_(m.weight, 0, self.head_init_std)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # N x 512 x H/32 x W/32
        x = self.avgpool(x)  # N x 512 x 7 x 7
        x = torch.flatten(x, 1)  # N x 25088
        return self.classifier(x)  # N x num_classes

    def shape_flow(self, x, t):
        return t(self.classifier, t.flatten(t(self.avgpool, t(self.features, x))))


@register_model("vgg11")
def vgg11(**cfg) -> VGG:
    return VGG("A", batch_norm=False, **cfg)


@register_model("vgg16")
def vgg16(**cfg) -> VGG:
    return VGG("D", batch_norm=False, **cfg)


@register_model("vgg16_bn")
def vgg16_bn(**cfg) -> VGG:
    return VGG("D", batch_norm=True, **cfg)
