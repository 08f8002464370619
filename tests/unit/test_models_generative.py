"""DCGAN and VAE: sizes as in the references, the ELBO's terms, and the GAN judge."""

import pytest
import torch

from opskit.models.registry import get_model, get_model_info
from opskit.models.vae import elbo_terms
from opskit.train.data.generative import MODES, make_modes
from opskit.train.tasks.generative import independent_pixels_loglik, judge_samples


def test_dcgan_reference_matches_pytorch_example_sizes():
    model = get_model("dcgan", **get_model_info("dcgan").reference)
    # The PyTorch DCGAN example (nz=100, ngf=ndf=64, 3x64x64) prints these counts.
    assert sum(p.numel() for p in model.generator.parameters()) == 3_576_704
    assert sum(p.numel() for p in model.discriminator.parameters()) == 2_765_568
    z = model.latent(2)
    images = model(z)
    assert images.shape == (2, 3, 64, 64) and images.abs().max() <= 1
    assert model(images, part="discriminator").shape == (2,)


def test_dcgan_small_and_bad_size():
    model = get_model("dcgan", **get_model_info("dcgan").small)
    assert model.sample(3).shape == (3, 1, 16, 16)
    with pytest.raises(ValueError, match="image_size"):
        get_model("dcgan", image_size=24)
    with pytest.raises(ValueError, match="part"):
        model(torch.zeros(1, 16, 1, 1), part="critic")


def test_vae_reference_size_and_outputs():
    model = get_model("vae", **get_model_info("vae").reference)
    # Kingma & Welling's MNIST MLP as in the PyTorch example: 784-400-20(x2)-400-784.
    assert sum(p.numel() for p in model.parameters()) == 652_824
    logits, mu, logvar = model(torch.rand(5, 1, 28, 28))
    assert logits.shape == (5, 1, 28, 28) and mu.shape == logvar.shape == (5, 20)
    assert model.sample(2).shape == (2, 1, 28, 28)


def test_elbo_terms_closed_form():
    x = torch.tensor([[1.0, 0.0]])
    logits = torch.zeros(1, 2)  # p = 0.5 per pixel
    mu, logvar = torch.zeros(1, 3), torch.zeros(1, 3)  # q = prior: KL 0
    terms = elbo_terms(x, logits, mu, logvar)
    assert terms["reconstruction"].item() == pytest.approx(2 * torch.log(torch.tensor(0.5)).item())
    assert terms["kl"].item() == pytest.approx(0.0)
    # KL(N(1, e^0) || N(0, 1)) = 1/2 per dimension.
    assert elbo_terms(x, logits, torch.ones(1, 3), logvar)["kl"].item() == pytest.approx(1.5)


def test_reparameterization_lets_gradients_reach_the_encoder():
    torch.manual_seed(0)
    model = get_model("vae", **get_model_info("vae").small)
    x = make_modes(8, 0)[0]
    (-model.elbo(x)["elbo"].mean()).backward()
    assert model.enc_mu.weight.grad.abs().sum() > 0 and model.enc_logvar.weight.grad.abs().sum() > 0


def test_modes_data():
    images, labels = make_modes(64, seed=1)
    assert images.shape == (64, 1, 16, 16) and set(images.unique().tolist()) <= {0.0, 1.0}
    assert set(labels.tolist()) == set(range(len(MODES)))
    again = make_modes(64, seed=1)
    assert torch.equal(again[0], images) and torch.equal(again[1], labels)


def test_judge_tells_good_collapsed_blurred_and_noise_apart():
    real, labels = make_modes(512, seed=2)
    other, _ = make_modes(512, seed=3)
    good = judge_samples(other, real, labels)
    assert good["precision"] == 1.0 and good["mode_balance"] > 0.8 and good["modes_covered"] == 4
    collapsed = judge_samples(real[labels == 1][:1].expand(512, -1, -1, -1), real, labels)
    assert collapsed["precision"] == 1.0 and collapsed["mode_balance"] == 0.0
    assert collapsed["score"] == 0.0
    noise = judge_samples(torch.rand(512, 1, 16, 16), real, labels)
    assert noise["precision"] == 0.0 and noise["score"] == 0.0
    mean = judge_samples(real.mean(0, keepdim=True).expand(512, -1, -1, -1), real, labels)
    assert mean["score"] == 0.0  # one blurred average is one mode at best
    # The independent-pixel baseline: what a VAE whose decoder ignores z can reach.
    p = real.mean(0)
    assert independent_pixels_loglik(real, p).mean() < 0
