"""GoogLeNet (Inception v1): wide *and* cheap, thanks to 1x1 reductions.

Szegedy et al., "Going Deeper with Convolutions" (CVPR 2015).

The lesson
----------
Which filter size is right at a given depth, 1x1, 3x3 or 5x5? An *inception module* does not
choose: it runs them side by side, plus a 3x3 max pool, and concatenates the results along
the channels. Run naively that is very expensive, so every costly branch first *reduces* the
channels with a 1x1 convolution ("network in network"): a 1x1 convolution mixes channels at
each pixel and costs C_in * C_out, nothing spatial::

    x ─┬─ 1x1 ───────────────┐
       ├─ 1x1 reduce ─ 3x3 ──┤
       ├─ 1x1 reduce ─ 3x3* ─┼─ concat (channels)
       └─ 3x3 max pool ─ 1x1 ┘

(*) The paper's third branch is 5x5; torchvision's weights (ported from TensorFlow) use 3x3
there, a known discrepancy (pytorch/vision#906). We keep 3x3 so that those weights load;
``fifth_branch_kernel=5`` gives the paper's version.

Nine modules (3a, 3b, 4a-4e, 5a, 5b) with max pools in between; at the end global average
pooling replaces the large dense layers of AlexNet/VGG, so the whole net has 6.6M parameters
against VGG-16's 138M. Two *auxiliary classifiers* (on 4a and 4d) add their loss (weighted
0.3 in the paper) during training to push gradient into the middle of the network; they are
used only in training mode and are dropped for inference (``aux_logits=False`` leaves them
out). In training mode with ``aux_logits`` the model returns
``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``, otherwise the logits.

Every convolution here is ``BasicConv2d``: conv (no bias) + batch norm (eps 0.001) + ReLU,
the batch-normalised form torchvision uses.

Shapes at 224x224: conv1 7x7/2 -> 112, pools -> 56 -> 28 (3a: 256 ch, 3b: 480) -> 14
(4a-4e: 512 ... 832) -> 7 (5a: 832, 5b: 1024) -> global average -> dropout -> fc.

Size options: ``width`` (multiplier on every channel count; the aux heads' 128/1024 too),
``num_classes``, ``in_channels``, ``aux_logits``, ``dropout``.

``transform_input``: torchvision's pretrained GoogLeNet weights were ported from TensorFlow's,
which were trained on images scaled to [-1, 1], not on ImageNet-normalised ones. Rather than
ask for another preprocessing, the model undoes the normalisation in ``forward``: channel c
becomes ``x_c * std_c / 0.5 + (mean_c - 0.5) / 0.5`` (ImageNet's mean and std), i.e. back to
[0, 1] and then to [-1, 1]. torchvision's builder forces it whenever weights are given
(pytorch/vision#4136), so the reference configuration sets it: with it, torchvision's weights
give torchvision's outputs here. Without it the same weights load with ``strict=True`` and give
quite different logits, which is why it matters that the reference config sets it.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import torch
from torch import nn

from opskit.models.registry import register_model

# ImageNet's per-channel mean and std (what the pretrained weights' users normalise with)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) of each module: table 1 of the paper.
INCEPTION_TABLE = {
    "inception3a": (192, 64, 96, 128, 16, 32, 32),
    "inception3b": (256, 128, 128, 192, 32, 96, 64),
    "inception4a": (480, 192, 96, 208, 16, 48, 64),
    "inception4b": (512, 160, 112, 224, 24, 64, 64),
    "inception4c": (512, 128, 128, 256, 24, 64, 64),
    "inception4d": (512, 112, 144, 288, 32, 64, 64),
    "inception4e": (528, 256, 160, 320, 32, 128, 128),
    "inception5a": (832, 256, 160, 320, 32, 128, 128),
    "inception5b": (832, 384, 192, 384, 48, 128, 128),
}


class GoogLeNetOutputs(NamedTuple):
    logits: torch.Tensor
    aux_logits2: torch.Tensor | None
    aux_logits1: torch.Tensor | None


class BasicConv2d(nn.Sequential):
    """Convolution without bias, batch norm, ReLU (named ``conv``, ``bn``, ``relu``)."""

    def __init__(self, in_ch: int, out_ch: int, **conv_kwargs):
        super().__init__(OrderedDict(
            conv=nn.Conv2d(in_ch, out_ch, bias=False, **conv_kwargs),
            bn=nn.BatchNorm2d(out_ch, eps=0.001),
            relu=nn.ReLU(inplace=True),
        ))


class Inception(nn.Module):
    """Four parallel branches, concatenated: out channels = ch1x1 + ch3x3 + ch5x5 + proj."""

    def __init__(self, in_ch: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int,
                 ch5x5: int, pool_proj: int, fifth_kernel: int = 3):
        super().__init__()
        self.branch1 = BasicConv2d(in_ch, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_ch, ch3x3red, kernel_size=1),  # reduce first: cheap
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_ch, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=fifth_kernel, padding=fifth_kernel // 2),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_ch, pool_proj, kernel_size=1),  # "pool proj"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.branch1, self.branch2, self.branch3, self.branch4)
        return torch.cat([b(x) for b in branches], 1)  # N x sum(out) x H x W

    def shape_flow(self, x, t):
        return t.concat([t(b, x) for b in (self.branch1, self.branch2, self.branch3,
                                             self.branch4)])


class InceptionAux(nn.Module):
    """Auxiliary classifier: 4x4 average pool, 1x1 conv to 128, fc 1024, dropout 0.7, fc."""

    def __init__(self, in_ch: int, num_classes: int, width: float = 1.0, dropout: float = 0.7):
        super().__init__()
        ch, hidden = _scale(128, width), _scale(1024, width)
        self.pool = nn.AdaptiveAvgPool2d((4, 4))
        self.conv = BasicConv2d(in_ch, ch, kernel_size=1)
        self.fc1 = nn.Linear(ch * 16, hidden)
        self.relu = nn.ReLU(inplace=True)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.pool(x))  # N x 128 x 4 x 4
        x = self.dropout(self.relu(self.fc1(torch.flatten(x, 1))))  # N x 1024
        return self.fc2(x)  # N x num_classes

    def shape_flow(self, x, t):
        x = t.flatten(t(self.conv, t(self.pool, x)))
        return t(self.fc2, t(self.dropout, t(self.relu, t(self.fc1, x))))


def _scale(ch: int, width: float) -> int:
    return max(1, round(ch * width))


class GoogLeNet(nn.Module):
    def __init__(self, num_classes: int = 1000, in_channels: int = 3, aux_logits: bool = True,
                 width: float = 1.0, dropout: float = 0.2, fifth_branch_kernel: int = 3,
                 transform_input: bool = False):
        super().__init__()
        if transform_input and in_channels != 3:
            raise ValueError(f"transform_input needs in_channels=3 (RGB), not {in_channels}")
        self.aux_logits = aux_logits
        self.transform_input = transform_input
        s = _scale  # every channel count below goes through the width multiplier
        self.conv1 = BasicConv2d(in_channels, s(64, width), kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(s(64, width), s(64, width), kernel_size=1)
        self.conv3 = BasicConv2d(s(64, width), s(192, width), kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        ch = s(192, width)
        aux_in = {}
        for name, (_, *chs) in INCEPTION_TABLE.items():
            # A module's input is the concatenation of the previous module's four branches.
            setattr(self, name, Inception(ch, *(s(c, width) for c in chs),
                                          fifth_kernel=fifth_branch_kernel))
            ch = sum(s(c, width) for c in (chs[0], chs[2], chs[4], chs[5]))
            aux_in[name] = ch
            if name == "inception3b":
                self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            elif name == "inception4e":
                self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.aux1: InceptionAux | None = None
        self.aux2: InceptionAux | None = None
        if aux_logits:
            self.aux1 = InceptionAux(aux_in["inception4a"], num_classes, width)
            self.aux2 = InceptionAux(aux_in["inception4d"], num_classes, width)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(ch, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """Truncated normal (std 0.01, cut at 2 std) for weights, as torchvision does."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-0.02, b=0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _up_to_4a(self) -> tuple[nn.Module, ...]:
        """The layers before the first auxiliary head, in order."""
        return (self.conv1, self.maxpool1, self.conv2, self.conv3, self.maxpool2,
                self.inception3a, self.inception3b, self.maxpool3, self.inception4a)

    def _transform_input(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet-normalised input -> [-1, 1], as TensorFlow's weights expect (see above)."""
        if not self.transform_input:
            return x
        chans = [x[:, c : c + 1] * (IMAGENET_STD[c] / 0.5) + (IMAGENET_MEAN[c] - 0.5) / 0.5
                 for c in range(3)]  # fmt: skip
        return torch.cat(chans, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        x = self._transform_input(x)
        for layer in self._up_to_4a():
            x = layer(x)  # N x 512 x 14 x 14 after inception4a (at 224x224)
        use_aux = self.training and self.aux1 is not None
        aux1 = self.aux1(x) if use_aux else None
        x = self.inception4d(self.inception4c(self.inception4b(x)))  # N x 528 x 14 x 14
        aux2 = self.aux2(x) if use_aux else None
        x = self.maxpool4(self.inception4e(x))  # N x 832 x 7 x 7
        x = self.inception5b(self.inception5a(x))  # N x 1024 x 7 x 7
        x = self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))  # N x num_classes
        if use_aux:
            return GoogLeNetOutputs(x, aux2, aux1)
        return x

    def shape_flow(self, x, t):
        """Shapes in training mode: the auxiliary heads are included when present."""
        for layer in self._up_to_4a():
            x = t(layer, x)
        t(self.aux1, x)
        x = t(self.inception4d, t(self.inception4c, t(self.inception4b, x)))
        t(self.aux2, x)
        x = t(self.maxpool4, t(self.inception4e, x))
        x = t(self.inception5b, t(self.inception5a, x))
        return t(self.fc, t(self.dropout, t.flatten(t(self.avgpool, x))))


@register_model("googlenet")
def googlenet(**cfg) -> GoogLeNet:
    return GoogLeNet(**cfg)
