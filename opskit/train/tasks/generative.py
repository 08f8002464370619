"""Generative models: the DCGAN's two-player step and the VAE's ELBO.

Both train on the four-mode images of ``opskit.train.data.generative`` (``--data shapes``).

**How a GAN is judged here.** A GAN has no likelihood to report, and a low generator loss
can mean a weak discriminator rather than good samples. ``judge_samples`` therefore uses the
real data itself, with its mode labels, as the judge: every generated image is matched to its
nearest real image (a 1-nearest-neighbour classifier trained on real data). It is *good* if
that distance is small (RMSE <= ``tolerance`` on a 0..1 scale: it looks like a real member of
some mode), and it is assigned to that real image's mode. Then

* ``precision``: the fraction of good samples (quality; noise or blur fails it);
* ``mode_balance``: ``K * (count of the rarest mode) / (good samples)`` - 1.0 when every
  mode gets its share, 0.0 when one is never produced (mode collapse fails it);
* ``score = precision * mode_balance``, the task's metric.

The trained discriminator's accuracy at telling real from generated images is reported too
(``d_accuracy``; 0.5 means it cannot tell them apart).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from opskit.models.vae import elbo_terms
from opskit.train.data.generative import MODES, mode_datasets
from opskit.train.errors import DataError
from opskit.train.tasks.base import StepContext, Task, register_task, unwrap_model


def judge_samples(
    fake: torch.Tensor,
    real: torch.Tensor,
    real_labels: torch.Tensor,
    num_modes: int = len(MODES),
    tolerance: float = 0.2,
) -> dict:
    """Quality and mode coverage of ``fake`` images against labelled ``real`` ones (0..1)."""
    f = fake.flatten(1).float()
    r = real.flatten(1).float().to(f.device)
    rmse = torch.cdist(f, r) / math.sqrt(f.shape[1])
    nearest, idx = rmse.min(1)
    good = nearest <= tolerance
    modes = real_labels.to(f.device)[idx][good]
    histogram = torch.bincount(modes, minlength=num_modes)
    n_good = int(good.sum())
    precision = n_good / max(f.shape[0], 1)
    balance = float(histogram.min()) * num_modes / n_good if n_good else 0.0
    return {
        "precision": precision,
        "mode_balance": min(balance, 1.0),
        "modes_covered": int((histogram > 0).sum()),
        "nearest_rmse": float(nearest.median()),
        "histogram": histogram.tolist(),
        "score": precision * min(balance, 1.0),
    }


class ModeImages(Task):
    """Shared data handling: the mode images at the model's size and channels."""

    def image_spec(self) -> tuple[int, int]:
        return int(self.model_cfg.get("channels", 1)), int(self.model_cfg.get("image_size", 16))

    def datasets(self, seed: int):
        source = getattr(self.args, "data", None) or "shapes"
        if source != "shapes":
            raise DataError(
                f"{self.info.name} trains on generated mode images only, not {source!r}",
                "use --data shapes (the default)",
            )
        channels, size = self.image_spec()
        train, val = mode_datasets(
            seed,
            getattr(self.args, "train_samples", 4096),
            getattr(self.args, "val_samples", 512),
            size,
        )
        if channels != 1:
            for ds in (train, val):
                ds.tensors = (ds.tensors[0].repeat(1, channels, 1, 1), ds.tensors[1])
        self._mean_image = train.tensors[0].mean(0)
        return train, val


@register_task("gan")
class GAN(ModeImages):
    metric = "score"
    higher_is_better = True
    default_lr = 2e-4
    ddp_find_unused_parameters = True

    # Learning rate: the loop's warm-up + cosine schedule on both optimizers. The paper kept
    # it constant; decaying it settles the samples at the end of a short run.

    def optimizers(self, model):
        m = unwrap_model(model)
        betas = (0.5, 0.999)  # the DCGAN paper's Adam settings
        return [
            torch.optim.Adam(m.discriminator.parameters(), lr=self.lr(), betas=betas),
            torch.optim.Adam(m.generator.parameters(), lr=self.lr(), betas=betas),
        ]

    def train_step(self, model, batch, ctx: StepContext) -> dict:
        real = batch[0] * 2 - 1  # tanh range
        n = real.shape[0]
        z = unwrap_model(model).latent(n, real.device)
        ones, zeros = torch.ones(n, device=real.device), torch.zeros(n, device=real.device)
        # 1. Discriminator: real -> 1, generated -> 0 (the generator is not updated).
        with ctx.autocast():
            fake = model(z)
            d_real = model(real, part="discriminator").float()
            d_fake = model(fake.detach(), part="discriminator").float()
        loss_d = F.binary_cross_entropy_with_logits(
            d_real, ones
        ) + F.binary_cross_entropy_with_logits(d_fake, zeros)
        ctx.backward_step(loss_d, 0)
        # 2. Generator: make the (just updated) discriminator say "real" for generated images.
        with ctx.autocast():
            d_gen = model(fake, part="discriminator").float()
        loss_g = F.binary_cross_entropy_with_logits(d_gen, ones)
        ctx.backward_step(loss_g, 1)
        return {
            "loss": (loss_d + loss_g).detach(),
            "loss_d": loss_d.detach(),
            "loss_g": loss_g.detach(),
            "d_real": torch.sigmoid(d_real).mean().detach(),
            "d_fake": torch.sigmoid(d_fake).mean().detach(),
        }

    def evaluate(self, model, batches, ctx: StepContext) -> dict:
        real, labels = [], []
        for x, y in batches:
            real.append(x)
            labels.append(y)
        real, labels = torch.cat(real), torch.cat(labels)
        g = torch.Generator(device=ctx.device).manual_seed(1234)  # same latents every time
        fake = (model.sample(real.shape[0], ctx.device, g).float() + 1) / 2
        result = judge_samples(fake, real, labels)
        with ctx.autocast():
            d_real = model(real * 2 - 1, part="discriminator").float()
            d_fake = model(fake * 2 - 1, part="discriminator").float()
        result["d_accuracy"] = float(
            ((d_real > 0).float().mean() + (d_fake < 0).float().mean()) / 2
        )
        result.pop("histogram")
        return result


@register_task("vae")
class VAETask(ModeImages):
    metric = "elbo"
    higher_is_better = True
    default_lr = 2e-3
    weight_decay = 0.0

    def input_shape(self) -> tuple:
        channels, size = self.image_spec()
        return channels, size, size

    def train_step(self, model, batch, ctx: StepContext) -> dict:
        x = batch[0]
        with ctx.autocast():
            logits, mu, logvar = model(x)
        terms = elbo_terms(x, logits.float(), mu.float(), logvar.float())
        loss = -terms["elbo"].mean()  # maximise the ELBO
        ctx.backward_step(loss)
        return {
            "loss": loss.detach(),
            "reconstruction": terms["reconstruction"].mean().detach(),
            "kl": terms["kl"].mean().detach(),
        }

    def evaluate(self, model, batches, ctx: StepContext) -> dict:
        g = torch.Generator(device=ctx.device).manual_seed(1234)
        sums = {"elbo": 0.0, "reconstruction": 0.0, "kl": 0.0, "independent_pixels": 0.0}
        count = 0
        p = getattr(self, "_mean_image", None)
        for x, _ in batches:
            with ctx.autocast():
                logits, mu, logvar = model(x, g)
            terms = elbo_terms(x, logits.float(), mu.float(), logvar.float())
            for key in ("elbo", "reconstruction", "kl"):
                sums[key] += float(terms[key].sum())
            if p is not None:
                sums["independent_pixels"] += float(
                    independent_pixels_loglik(x, p.to(x.device)).sum()
                )
            count += x.shape[0]
        return {k: v / max(count, 1) for k, v in sums.items()}


def independent_pixels_loglik(x: torch.Tensor, mean_image: torch.Tensor) -> torch.Tensor:
    """Log-likelihood per image under independent Bernoulli pixels with the data's mean.

    The best any model can do that ignores what is in the particular image (a decoder that
    ignores ``z``, i.e. a collapsed posterior with KL 0): a VAE that learned something must
    have a higher ELBO than this.
    """
    p = mean_image.clamp(1e-4, 1 - 1e-4)
    ll = x * torch.log(p) + (1 - x) * torch.log1p(-p)
    return ll.flatten(1).sum(1)
