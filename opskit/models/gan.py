"""DCGAN (Radford, Metz & Chintala, 2015): a generator and a discriminator, both convolutional.

The paper's guidelines, followed here layer by layer:

* no pooling: the discriminator downsamples with strided convolutions (4x4, stride 2), the
  generator upsamples with fractionally-strided (transposed) convolutions (4x4, stride 2);
* batch normalisation in both networks, except the generator's output layer and the
  discriminator's input layer;
* no fully connected hidden layers: the latent vector ``z`` (``nz`` numbers, as a ``nz x 1 x 1``
  map) is projected to ``4 x 4`` by the first transposed convolution, and the discriminator's
  last ``4 x 4`` map is reduced to one logit by a ``4 x 4`` convolution;
* ReLU in the generator with ``tanh`` on the output (images in [-1, 1]), LeakyReLU (0.2) in
  the discriminator;
* weights from N(0, 0.02), BatchNorm scales from N(1, 0.02); Adam with lr 2e-4, beta1 0.5.

Sizes: an image of side ``S = 4 * 2**k`` needs ``k`` up/down-sampling steps; channels double
at every step away from the image (``ngf``/``ndf`` at the image end). The reference is the
paper's 64x64 RGB configuration with ``nz = 100`` and 64 base channels.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from opskit.models.registry import register_model


def _steps(image_size: int) -> int:
    k = math.log2(image_size / 4)
    if image_size < 8 or k != int(k):
        raise ValueError(f"DCGAN image_size must be 4 * 2**k (8, 16, 32, 64...), got {image_size}")
    return int(k)


class Generator(nn.Module):
    """``z (N, nz, 1, 1)`` -> image ``(N, channels, S, S)`` in [-1, 1]."""

    def __init__(self, nz: int = 100, ngf: int = 64, channels: int = 3, image_size: int = 64):
        super().__init__()
        k = _steps(image_size)
        c = ngf * 2 ** (k - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(nz, c, 4, 1, 0, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU(True),
        ]
        for _ in range(k - 1):
            layers += [
                nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c // 2),
                nn.ReLU(True),
            ]
            c //= 2
        layers += [nn.ConvTranspose2d(c, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)

    def shape_flow(self, x, t):  # for opskit.models.summary
        return t(self.main, x)


class Discriminator(nn.Module):
    """Image ``(N, channels, S, S)`` -> one real/fake logit per image, ``(N,)``."""

    def __init__(self, ndf: int = 64, channels: int = 3, image_size: int = 64):
        super().__init__()
        k = _steps(image_size)
        layers: list[nn.Module] = [
            nn.Conv2d(channels, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        c = ndf
        for _ in range(k - 1):
            layers += [
                nn.Conv2d(c, c * 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            c *= 2
        layers.append(nn.Conv2d(c, 1, 4, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.main(images).flatten()

    def shape_flow(self, x, t):  # for opskit.models.summary
        return t(self.main, x)


def dcgan_init(module: nn.Module) -> None:
    """The paper's initialisation: conv weights N(0, 0.02); BatchNorm N(1, 0.02), bias 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class DCGAN(nn.Module):
    """Both networks in one module; ``forward(z)`` is the generator (the model one samples),
    ``forward(images, part="discriminator")`` the discriminator.

    Training alternates two optimizers (see ``opskit.train.tasks.generative``): the
    discriminator learns ``real -> 1, G(z) -> 0``; the generator learns to make the
    discriminator say 1 for ``G(z)`` (the non-saturating loss of the GAN paper).
    """

    def __init__(
        self, nz: int = 100, ngf: int = 64, ndf: int = 64, channels: int = 3, image_size: int = 64
    ):
        super().__init__()
        self.nz = nz
        self.image_size = image_size
        self.channels = channels
        self.generator = Generator(nz, ngf, channels, image_size)
        self.discriminator = Discriminator(ndf, channels, image_size)
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor, part: str = "generator") -> torch.Tensor:
        """``part="generator"``: images from ``z``; ``"discriminator"``: logits of images.

        One entry point for both networks, so that a DDP wrapper sees every pass.
        """
        if part == "generator":
            return self.generator(x)
        if part == "discriminator":
            return self.discriminator(x)
        raise ValueError(f"part must be 'generator' or 'discriminator', not {part!r}")

    def shape_flow(self, x, t):
        """For opskit.models.summary: the generator, then the discriminator on its output."""
        images = t(self.generator, x)
        t(self.discriminator, images)
        return images

    def latent(self, n: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.nz, 1, 1, device=device, generator=generator)

    @torch.no_grad()
    def sample(self, n: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` generated images in [-1, 1]."""
        return self.generator(self.latent(n, device, generator))


@register_model("dcgan")
def dcgan(**cfg) -> DCGAN:
    """DCGAN: convolutional generator and discriminator trained adversarially."""
    return DCGAN(**cfg)
