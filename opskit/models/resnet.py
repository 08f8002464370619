"""ResNet: deep networks that learn *residuals* through skip connections.

He, Zhang, Ren and Sun, "Deep Residual Learning for Image Recognition" (2015).

The lesson
----------
Stacking more plain convolutions eventually makes a network *harder to train*: a deeper plain
net reaches a higher training error than a shallower one, which is an optimisation problem,
not over-fitting. ResNet lets every block learn a correction ``F(x)`` to its input and adds
the input back::

    out = relu(F(x) + shortcut(x))

If the best thing a block can do is nothing, it only has to push ``F`` towards zero, which is
easy. Gradients also flow straight through the additions, so 50, 101, 152 layers train.

Two kinds of block:

* ``BasicBlock`` (ResNet-18/34): two 3x3 convolutions.
* ``Bottleneck`` (ResNet-50/101/152): 1x1 reduce -> 3x3 -> 1x1 expand (x4). The expensive 3x3
  works on a quarter of the channels, so a deeper net costs about the same as a shallow one.

The shortcut is the identity whenever it can be. Where a stage halves the resolution (stride
2) or changes the number of channels, the identity no longer has the right shape, and a
*projection* replaces it: a 1x1 convolution with that stride, followed by batch norm
(``downsample``, "option B" of the paper).

Shapes for ResNet-50 at 224x224 (N = batch)::

    conv1 7x7/2     N x 64   x 112 x 112
    maxpool 3x3/2   N x 64   x 56  x 56
    layer1 (x3)     N x 256  x 56  x 56
    layer2 (x4)     N x 512  x 28  x 28
    layer3 (x6)     N x 1024 x 14  x 14
    layer4 (x3)     N x 2048 x 7   x 7
    avgpool + fc    N x 1000

Names follow torchvision's (``layer1.0.downsample.1.running_mean`` ...), so pretrained
torchvision weights load with ``strict=True``. The stride of a Bottleneck sits on its 3x3
convolution (the "v1.5" variant torchvision uses). ``replace_stride_with_dilation`` keeps the
resolution of a stage and dilates its 3x3 convolutions instead: the segmentation backbone of
FCN uses it for layer3 and layer4 (output stride 8 instead of 32).

Size options: ``widths`` (channels of the four stages before expansion), ``num_classes``,
``in_channels``, ``stem_width``. The small variants keep the exact same code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from opskit.models.registry import register_model


def conv3x3(in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    """3x3 convolution that keeps the size (padding = dilation) unless stride > 1."""
    return nn.Conv2d(
        in_ch, out_ch, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
    )


def conv1x1(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x)); channels out = planes."""

    expansion = 1

    def __init__(
        self,
        in_ch: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
    ):
        super().__init__()
        self.conv1 = conv3x3(in_ch, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, 1, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)

    def shape_flow(self, x, t):
        """The same data flow, on shapes (see ``opskit.models.summary``)."""
        identity = x if self.downsample is None else t(self.downsample, x)
        out = t(self.relu, t(self.bn1, t(self.conv1, x)))
        out = t(self.bn2, t(self.conv2, out))
        return t(self.relu, t.add(out, identity))


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (stride, dilation) -> 1x1 expand to planes * 4, plus the shortcut."""

    expansion = 4

    def __init__(
        self,
        in_ch: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        dilation: int = 1,
    ):
        super().__init__()
        out_ch = planes * self.expansion
        self.conv1 = conv1x1(in_ch, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, out_ch)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))  # N x planes x H x W
        out = self.relu(self.bn2(self.conv2(out)))  # N x planes x H/s x W/s
        out = self.bn3(self.conv3(out))  # N x 4*planes x H/s x W/s
        return self.relu(out + identity)

    def shape_flow(self, x, t):
        identity = x if self.downsample is None else t(self.downsample, x)
        out = t(self.relu, t(self.bn1, t(self.conv1, x)))
        out = t(self.relu, t(self.bn2, t(self.conv2, out)))
        out = t(self.bn3, t(self.conv3, out))
        return t(self.relu, t.add(out, identity))


class ResNet(nn.Module):
    """Stem (7x7/2 conv, 3x3/2 max pool), four stages of blocks, global average pool, fc.

    ``num_classes=None`` builds the backbone only (no ``avgpool``/``fc``); ``forward`` then
    returns the layer4 features and ``forward_stages`` the outputs of all four stages.
    """

    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        layers: Sequence[int],
        num_classes: int | None = 1000,
        in_channels: int = 3,
        widths: Sequence[int] = (64, 128, 256, 512),
        stem_width: int | None = None,
        replace_stride_with_dilation: Sequence[bool] = (False, False, False),
    ):
        super().__init__()
        self.block = block
        self.in_ch = stem_width or widths[0]
        self.dilation = 1
        self.conv1 = nn.Conv2d(in_channels, self.in_ch, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.in_ch)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        dilate = [False, *replace_stride_with_dilation]
        self.layer1 = self._make_layer(widths[0], layers[0], 1, dilate[0])
        self.layer2 = self._make_layer(widths[1], layers[1], 2, dilate[1])
        self.layer3 = self._make_layer(widths[2], layers[2], 2, dilate[2])
        self.layer4 = self._make_layer(widths[3], layers[3], 2, dilate[3])
        self.out_channels = widths[3] * block.expansion
        if num_classes is not None:
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(self.out_channels, num_classes)
        self.has_head = num_classes is not None
        self._init_weights()

    def _make_layer(self, planes: int, blocks: int, stride: int, dilate: bool) -> nn.Sequential:
        """One stage; only its first block changes stride/channels (and needs a projection)."""
        block = self.block
        previous_dilation = self.dilation
        if dilate:  # keep the resolution, widen the receptive field instead
            self.dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self.in_ch != planes * block.expansion:
            downsample = nn.Sequential(
                conv1x1(self.in_ch, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        stage = [block(self.in_ch, planes, stride, downsample, previous_dilation)]
        self.in_ch = planes * block.expansion
        stage += [block(self.in_ch, planes, dilation=self.dilation) for _ in range(1, blocks)]
        return nn.Sequential(*stage)

    def _init_weights(self) -> None:
        """He (Kaiming) init for convolutions: keeps activations' variance through ReLUs."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # N x 64 x H/4 x W/4
        outs = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = stage(x)
            outs.append(x)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_stages(x)[-1]  # N x 2048 x H/32 x W/32 (ResNet-50)
        if not self.has_head:
            return x
        x = torch.flatten(self.avgpool(x), 1)  # N x 2048
        return self.fc(x)  # N x num_classes

    def stages_shape_flow(self, x, t) -> list:
        x = t(self.maxpool, t(self.relu, t(self.bn1, t(self.conv1, x))))
        outs = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = t(stage, x)
            outs.append(x)
        return outs

    def shape_flow(self, x, t):
        x = self.stages_shape_flow(x, t)[-1]
        if not self.has_head:
            return x
        return t(self.fc, t.flatten(t(self.avgpool, x)))


def _variant(name: str, block: type, layers: list[int]):
    """Register ``name``: ResNet(block, layers); its settings are in the catalogue."""

    def build(**cfg) -> ResNet:
        return ResNet(block, layers, **cfg)

    build.__name__ = build.__qualname__ = name
    return register_model(name)(build)


resnet18 = _variant("resnet18", BasicBlock, [2, 2, 2, 2])
resnet34 = _variant("resnet34", BasicBlock, [3, 4, 6, 3])
resnet50 = _variant("resnet50", Bottleneck, [3, 4, 6, 3])
