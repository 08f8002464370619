"""FCN: fully convolutional networks for semantic segmentation (a class for every pixel).

Long, Shelhamer and Darrell, "Fully Convolutional Networks for Semantic Segmentation"
(CVPR 2015).

The lesson
----------
A classifier's dense layers want a fixed-size input and throw away *where* things are. But a
dense layer over a C x k x k map is the same computation as a k x k convolution with that
many output channels: replace the dense head by convolutions and the network slides over an
image of *any size*, giving a coarse map of class scores (one per output stride, e.g. every
32 or 16 pixels) instead of one vector. Three more ideas make that map fine again:

* upsampling *inside* the network with a transposed convolution ("deconvolution") that is
  initialised to bilinear interpolation and can then be learnt;
* skip connections: coarse, semantic scores are upsampled and added to scores predicted from
  earlier, finer layers (FCN-32s -> 16s -> 8s), so the output keeps both what and where;
* a crop after every upsampling, so that sizes line up for inputs of any size.

Two models:

``fcn`` (``FCN``)
    A compact FCN-8s built to be read and trained on a CPU: four VGG-style blocks (3x3
    convolutions + batch norm + ReLU, then a 2x2 max pool: output strides 2, 4, 8, 16), a
    convolutional "fc6/fc7" head, class scores at stride 16, two fusions with scores from the
    pool3 (stride 8) and pool2 (stride 4) maps, and a final 4x transposed convolution. Pools
    use ``ceil_mode`` so the coarse maps always cover the whole input; crops are taken from
    the top-left, where the strided grids are aligned.

``fcn_resnet50`` (``FCNResNet``)
    torchvision's FCN: a ResNet-50 backbone whose layer3 and layer4 *dilate* their 3x3
    convolutions instead of striding (output stride 8, the receptive field still grows), an
    ``FCNHead`` (3x3 conv to in/4 channels, BN, ReLU, dropout, 1x1 conv to the classes) and
    bilinear upsampling to the input size. ``aux_loss=True`` adds an auxiliary head on
    layer3; the reference configuration has it, because torchvision's builder forces
    ``aux_loss=True`` whenever weights are given (pytorch/vision#2086), so its pretrained
    state dicts carry ``aux_classifier.*`` and load here with ``strict=True``. Key names match torchvision's ``fcn_resnet50`` (``backbone.layer4.2.conv3.weight``,
    ``classifier.4.weight``, ``aux_classifier.4.bias``).

Both return a dict ``{"out": N x num_classes x H x W}`` (plus ``"aux"`` with the auxiliary
head), like torchvision's segmentation models, at the size of the input.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from opskit.models.registry import register_model
from opskit.models.resnet import Bottleneck, ResNet


def bilinear_kernel(channels: int, kernel_size: int) -> torch.Tensor:
    """Weights that make a transposed convolution do bilinear upsampling, channel by channel.

    Shape ``(channels, channels, k, k)``: channel i maps to channel i only.
    """
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float32)
    filt1d = 1 - (og - center).abs() / factor
    filt = filt1d[:, None] * filt1d[None, :]
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = filt
    return weight


def upsampler(channels: int, factor: int) -> nn.ConvTranspose2d:
    """A transposed convolution that multiplies the size by exactly ``factor``.

    kernel 2f, stride f, padding f/2: H_out = (H - 1) f - f + 2f - 1 + 1 = f * H.
    """
    up = nn.ConvTranspose2d(channels, channels, 2 * factor, stride=factor,
                            padding=factor // 2, bias=False)
    with torch.no_grad():
        up.weight.copy_(bilinear_kernel(channels, 2 * factor))
    return up


def crop_to(x: torch.Tensor, like: torch.Tensor | tuple[int, int]) -> torch.Tensor:
    """Top-left crop of ``x`` to the spatial size of ``like``."""
    h, w = like.shape[-2:] if isinstance(like, torch.Tensor) else like
    return x[..., :h, :w]


def conv_block(in_ch: int, out_ch: int, convs: int, batch_norm: bool) -> nn.Sequential:
    """``convs`` x (3x3 conv, [BN], ReLU), then a 2x2 max pool (stride 2, ceil mode)."""
    layers: list[nn.Module] = []
    for i in range(convs):
        layers.append(nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, 3, padding=1,
                                bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(nn.ReLU(inplace=True))
    layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
    return nn.Sequential(*layers)


class FCN(nn.Module):
    """A compact FCN-8s: VGG-style blocks, convolutional head, transposed-conv upsampling."""

    def __init__(
        self,
        num_classes: int = 21,
        in_channels: int = 3,
        widths: Sequence[int] = (64, 128, 256, 512),
        head_width: int = 1024,
        convs_per_block: int = 2,
        batch_norm: bool = True,
        dropout: float = 0.5,
    ):
        super().__init__()
        c1, c2, c3, c4 = widths
        k = num_classes
        self.block1 = conv_block(in_channels, c1, convs_per_block, batch_norm)  # stride 2
        self.block2 = conv_block(c1, c2, convs_per_block, batch_norm)  # stride 4 ("pool2")
        self.block3 = conv_block(c2, c3, convs_per_block, batch_norm)  # stride 8 ("pool3")
        self.block4 = conv_block(c3, c4, convs_per_block, batch_norm)  # stride 16
        # The dense layers fc6/fc7 of a classifier, as convolutions: any input size works.
        self.head = nn.Sequential(
            nn.Conv2d(c4, head_width, 3, padding=1),  # "fc6"
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(head_width, head_width, 1),  # "fc7"
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(head_width, k, 1),  # class scores at stride 16
        )
        self.score_pool3 = nn.Conv2d(c3, k, 1)  # finer scores from stride 8
        self.score_pool2 = nn.Conv2d(c2, k, 1)  # and from stride 4
        self.up16to8 = upsampler(k, 2)
        self.up8to4 = upsampler(k, 2)
        self.up4to1 = upsampler(k, 4)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for score in (self.head[-1], self.score_pool3, self.score_pool2):
            nn.init.zeros_(score.weight)  # the paper starts score layers at zero

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        size = x.shape[-2:]
        pool2 = self.block2(self.block1(x))  # N x c2 x H/4 x W/4 (rounded up)
        pool3 = self.block3(pool2)  # N x c3 x H/8 x W/8
        score = self.head(self.block4(pool3))  # N x K x H/16 x W/16
        score = self.score_pool3(pool3) + crop_to(self.up16to8(score), pool3)  # stride 8
        score = self.score_pool2(pool2) + crop_to(self.up8to4(score), pool2)  # stride 4
        return {"out": crop_to(self.up4to1(score), size)}  # N x K x H x W

    def shape_flow(self, x, t):
        size = x[1:]
        pool2 = t(self.block2, t(self.block1, x))
        pool3 = t(self.block3, pool2)
        score = t(self.head, t(self.block4, pool3))
        up = t(self.up16to8, score)
        score = t.add(t(self.score_pool3, pool3), t.op("crop", (up[0], *pool3[1:]), up))
        up = t(self.up8to4, score)
        score = t.add(t(self.score_pool2, pool2), t.op("crop", (up[0], *pool2[1:]), up))
        up = t(self.up4to1, score)
        return t.op("crop", (up[0], *size), up)


class FCNHead(nn.Sequential):
    """3x3 conv to in/4 channels, BN, ReLU, dropout 0.1, 1x1 conv to the classes."""

    def __init__(self, in_ch: int, num_classes: int):
        inter = in_ch // 4
        super().__init__(
            nn.Conv2d(in_ch, inter, 3, padding=1, bias=False),  # 0
            nn.BatchNorm2d(inter),  # 1
            nn.ReLU(inplace=True),
            nn.Dropout(0.1),
            nn.Conv2d(inter, num_classes, 1),  # 4
        )


class FCNResNet(nn.Module):
    """ResNet backbone (dilated layer3/layer4), FCN head, bilinear upsampling."""

    def __init__(
        self,
        num_classes: int = 21,
        in_channels: int = 3,
        aux_loss: bool = False,
        widths: Sequence[int] = (64, 128, 256, 512),
        layers: Sequence[int] = (3, 4, 6, 3),
    ):
        super().__init__()
        self.backbone = ResNet(Bottleneck, layers, num_classes=None, in_channels=in_channels,
                               widths=widths, replace_stride_with_dilation=(False, True, True))
        out4 = self.backbone.out_channels  # 2048 for ResNet-50
        out3 = widths[2] * Bottleneck.expansion  # 1024
        self.classifier = FCNHead(out4, num_classes)
        self.aux_classifier = FCNHead(out3, num_classes) if aux_loss else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        size = x.shape[-2:]
        _, _, c3, c4 = self.backbone.forward_stages(x)  # both at H/8 x W/8 (dilation)
        result = OrderedDict()
        out = self.classifier(c4)  # N x K x H/8 x W/8
        result["out"] = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
        if self.aux_classifier is not None:
            aux = self.aux_classifier(c3)
            result["aux"] = F.interpolate(aux, size=size, mode="bilinear", align_corners=False)
        return result

    def shape_flow(self, x, t):
        size = x[1:]
        *_, c3, c4 = t.sub(self.backbone, x, self.backbone.stages_shape_flow)
        out = t(self.classifier, c4)
        out = t.op("upsample", (out[0], *size), out)
        if self.aux_classifier is not None:
            aux = t(self.aux_classifier, c3)
            t.op("upsample", (aux[0], *size), aux)
        return out


@register_model("fcn")
def fcn(**cfg) -> FCN:
    return FCN(**cfg)


@register_model("fcn_resnet50")
def fcn_resnet50(**cfg) -> FCNResNet:
    return FCNResNet(**cfg)
