"""Variational autoencoder (Kingma & Welling, 2013), the paper's MLP form.

* **Encoder** ``q(z | x)``: an MLP maps an image to the mean ``mu`` and log-variance
  ``log sigma^2`` of a diagonal Gaussian over the latent ``z`` (``latent`` numbers).
* **Reparameterization trick**: ``z = mu + sigma * eps`` with ``eps ~ N(0, I)``. The
  randomness is an input, so gradients flow through ``mu`` and ``sigma`` to the encoder.
* **Decoder** ``p(x | z)``: an MLP maps ``z`` to one Bernoulli logit per pixel.
* **ELBO** (evidence lower bound, to be maximised; its negative is the loss):
  ``ELBO = E_q[log p(x | z)] - KL(q(z | x) || N(0, I))``, the reconstruction term estimated
  with one sample of ``z`` and the KL term in closed form,
  ``KL = -1/2 * sum(1 + log sigma^2 - mu^2 - sigma^2)``. Both are summed over pixels / latent
  dimensions, in nats per image; ``ELBO <= log p(x)``.

The reference is the paper's MNIST model (784 -> 400 -> 20, tanh replaced by ReLU as in the
PyTorch example).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from opskit.models.registry import register_model


class VAE(nn.Module):
    """``forward(x) -> (logits, mu, logvar)``; ``elbo(x)`` per image; ``sample(n)``."""

    def __init__(
        self, channels: int = 1, image_size: int = 28, hidden: int = 400, latent: int = 20
    ):
        super().__init__()
        self.shape = (channels, image_size, image_size)
        pixels = channels * image_size * image_size
        self.latent = latent
        self.enc = nn.Linear(pixels, hidden)
        self.enc_mu = nn.Linear(hidden, latent)
        self.enc_logvar = nn.Linear(hidden, latent)
        self.dec = nn.Linear(latent, hidden)
        self.dec_out = nn.Linear(hidden, pixels)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.enc(x.flatten(1)))
        return self.enc_mu(h), self.enc_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Bernoulli logits ``(N, C, H, W)``; ``sigmoid`` gives pixel probabilities."""
        return self.dec_out(F.relu(self.dec(z))).view(-1, *self.shape)

    def shape_flow(self, x, t):
        """For opskit.models.summary: encoder, sampled z, decoder (the logits' shape)."""
        h = t(self.enc, t.flatten(x))
        t(self.enc_logvar, h)
        z = t.op("reparameterize", t(self.enc_mu, h), (self.latent,))
        out = t(self.dec_out, t(self.dec, z))
        return t.op("view", self.shape, out)

    @staticmethod
    def reparameterize(mu, logvar, generator: torch.Generator | None = None) -> torch.Tensor:
        eps = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)
        return mu + torch.exp(0.5 * logvar) * eps

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar, generator)), mu, logvar

    def elbo(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict:
        """Per-image ``elbo``, ``reconstruction`` (log-likelihood) and ``kl``, in nats."""
        logits, mu, logvar = self(x, generator)
        return elbo_terms(x, logits.float(), mu.float(), logvar.float())

    @torch.no_grad()
    def sample(self, n: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, self.latent, device=device, generator=generator)
        return torch.sigmoid(self.decode(z))


def elbo_terms(
    x: torch.Tensor, logits: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> dict:
    """The ELBO's two terms per image, for targets ``x`` in [0, 1]."""
    recon = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
    return {"elbo": recon - kl, "reconstruction": recon, "kl": kl}


@register_model("vae")
def vae(**cfg) -> VAE:
    """Variational autoencoder: Gaussian encoder, reparameterization, Bernoulli decoder."""
    return VAE(**cfg)
