"""The classification and FCN families: faithful to torchvision, and small variants that run.

Reference configurations are built on the ``meta`` device (no memory, no init time): their
parameter counts must equal torchvision's, and their ``state_dict`` keys and shapes must equal
the listing in ``data/torchvision_state_dict_keys.json``, generated with torchvision 0.29.1 as
``{k: list(v.shape) for k, v in model.state_dict().items()}`` (so torchvision's pretrained
weights load with ``strict=True``). Forward passes use the small variants.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from opskit.models import get_model, get_model_info, list_models

KEYS_FILE = Path(__file__).parent / "data" / "torchvision_state_dict_keys.json"

# name -> (builder kwargs, torchvision's parameter count)
REFERENCE_COUNTS = {
    "alexnet": ({}, 61_100_840),
    "vgg11": ({}, 132_863_336),
    "vgg16": ({}, 138_357_544),
    "vgg16_bn": ({}, 138_365_992),
    "googlenet": ({"aux_logits": False}, 6_624_904),
    "googlenet+aux": ({"aux_logits": True}, 13_004_888),
    "resnet18": ({}, 11_689_512),
    "resnet34": ({}, 21_797_672),
    "resnet50": ({}, 25_557_032),
    "fcn_resnet50": ({"aux_loss": False}, 32_957_013),
    "fcn_resnet50+aux": ({"aux_loss": True}, 35_322_218),
}
# entries of the key file -> entries above
KEY_FILE_NAMES = {
    "alexnet": "alexnet", "vgg11": "vgg11", "vgg16": "vgg16", "vgg16_bn": "vgg16_bn",
    "googlenet": "googlenet+aux", "googlenet_noaux": "googlenet", "resnet18": "resnet18",
    "resnet34": "resnet34", "resnet50": "resnet50", "fcn_resnet50": "fcn_resnet50",
    "fcn_resnet50_aux": "fcn_resnet50+aux",
}
CLASSIFIERS = ["lenet", "alexnet", "vgg11", "vgg16", "vgg16_bn", "googlenet", "resnet18",
               "resnet34", "resnet50"]
SEGMENTERS = ["fcn", "fcn_resnet50"]


@functools.cache
def reference(entry: str) -> nn.Module:
    """A reference model (paper configuration) on the meta device (shared: do not modify)."""
    name = entry.split("+")[0]
    cfg = {**get_model_info(name).reference, **REFERENCE_COUNTS[entry][0]}
    with torch.device("meta"):
        return get_model(name, **cfg)


def small(name: str, **overrides) -> tuple[nn.Module, tuple]:
    info = get_model_info(name)
    torch.manual_seed(0)
    return get_model(name, **{**info.small, **overrides}), tuple(info.small_input_shape)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/conftest.py


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("entry", list(REFERENCE_COUNTS))
def test_reference_parameter_count_equals_torchvision(entry: str) -> None:
    assert n_params(reference(entry)) == REFERENCE_COUNTS[entry][1]


@pytest.fixture(scope="module")
def torchvision_keys() -> dict:
    data = json.loads(KEYS_FILE.read_text())
    return {k: v for k, v in data.items() if not k.startswith("_")}


@pytest.mark.parametrize("file_entry", list(KEY_FILE_NAMES))
def test_state_dict_keys_and_shapes_equal_torchvision(torchvision_keys, file_entry) -> None:
    model = reference(KEY_FILE_NAMES[file_entry])
    mine = [f"{k}:{'x'.join(map(str, v.shape))}" for k, v in model.state_dict().items()]
    expected = torchvision_keys[file_entry]
    assert sorted(set(expected) - set(mine)) == []  # missing
    assert sorted(set(mine) - set(expected)) == []  # unexpected
    assert len(mine) == len(expected)


@pytest.mark.parametrize("entry,key,shape", [
    ("alexnet", "features.0.weight", (64, 3, 11, 11)),
    ("alexnet", "classifier.6.weight", (1000, 4096)),
    ("vgg16", "features.28.weight", (512, 512, 3, 3)),
    ("vgg16", "classifier.0.weight", (4096, 25088)),
    ("vgg16_bn", "features.1.running_var", (64,)),
    ("resnet18", "layer1.0.conv1.weight", (64, 64, 3, 3)),
    ("resnet18", "layer2.0.downsample.1.running_mean", (128,)),
    ("resnet50", "layer1.0.downsample.1.running_mean", (256,)),
    ("resnet50", "layer4.2.conv3.weight", (2048, 512, 1, 1)),
    ("resnet50", "fc.weight", (1000, 2048)),
    ("googlenet+aux", "inception3a.branch2.1.conv.weight", (128, 96, 3, 3)),
    ("googlenet+aux", "inception5b.branch3.1.conv.weight", (128, 48, 3, 3)),
    ("googlenet+aux", "aux1.fc2.weight", (1000, 1024)),
    ("googlenet+aux", "aux2.conv.conv.weight", (128, 528, 1, 1)),
    ("fcn_resnet50", "backbone.layer4.2.conv3.weight", (2048, 512, 1, 1)),
    ("fcn_resnet50", "classifier.4.weight", (21, 512, 1, 1)),
    ("fcn_resnet50+aux", "aux_classifier.4.bias", (21,)),
])
def test_important_keys(entry: str, key: str, shape: tuple) -> None:
    assert tuple(reference(entry).state_dict()[key].shape) == shape


def test_resnet_downsample_only_where_shape_changes() -> None:
    r18, r50 = reference("resnet18"), reference("resnet50")
    assert r18.layer1[0].downsample is None  # 64 -> 64, stride 1: identity shortcut
    assert r18.layer2[0].downsample[0].stride == (2, 2)
    assert all(b.downsample is None for b in r18.layer2[1:])
    assert r50.layer1[0].downsample[0].stride == (1, 1)  # 64 -> 256 channels, same size
    assert r50.layer2[0].conv2.stride == (2, 2)  # stride on the 3x3 (v1.5)


def test_fcn_resnet50_dilates_layer3_and_layer4() -> None:
    bb = reference("fcn_resnet50").backbone
    assert bb.layer3[0].conv2.stride == (1, 1) and bb.layer3[0].conv2.dilation == (1, 1)
    assert bb.layer3[1].conv2.dilation == (2, 2)
    assert bb.layer4[0].conv2.dilation == (2, 2) and bb.layer4[1].conv2.dilation == (4, 4)
    assert not hasattr(bb, "fc")


def test_registry_entries() -> None:
    names = set(list_models())
    assert set(CLASSIFIERS + SEGMENTERS) <= names
    for name in CLASSIFIERS:
        assert get_model_info(name).task == "classification"
    for name in SEGMENTERS:
        assert get_model_info(name).task == "segmentation"


@pytest.mark.parametrize("name", CLASSIFIERS + SEGMENTERS)
def test_small_variant_is_small(name: str) -> None:
    with torch.device("meta"):
        model = get_model(name, **get_model_info(name).small)
    assert n_params(model) < 1_000_000


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_small_classifier_forward_backward(name: str) -> None:
    model, shape = small(name, num_classes=5)
    model.eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        y = model(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 5)
    model.train()
    out = model(x)
    outs = [out] if isinstance(out, torch.Tensor) else list(out)
    sum(o.sum() for o in outs).backward()  # GoogLeNet: the auxiliary heads too
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_googlenet_aux_heads_only_in_training() -> None:
    model, shape = small("googlenet", num_classes=4)
    x = torch.randn(2, *shape)
    out = model.train()(x)
    assert out.logits.shape == out.aux_logits1.shape == out.aux_logits2.shape == (2, 4)
    assert isinstance(model.eval()(x), torch.Tensor)
    plain, _ = small("googlenet", num_classes=4, aux_logits=False)
    assert plain.aux1 is None and isinstance(plain.train()(x), torch.Tensor)
    assert not any(k.startswith("aux") for k in plain.state_dict())


def test_size_options_change_the_network() -> None:
    with torch.device("meta"):
        m = get_model("resnet18", widths=(8, 16, 32, 64), in_channels=1, num_classes=7)
    assert m.conv1.weight.shape == (8, 1, 7, 7) and m.fc.weight.shape == (7, 64)
    with torch.device("meta"):
        v = get_model("vgg11", width=0.25, hidden=32, pool_size=1, num_classes=3)
    assert v.features[0].weight.shape == (16, 3, 3, 3) and v.classifier[6].weight.shape == (3, 32)
    lenet = get_model("lenet", input_size=28, in_channels=3)
    assert lenet(torch.randn(1, 3, 28, 28)).shape == (1, 10)


@pytest.mark.parametrize("size", [(32, 32), (37, 29), (17, 50), (8, 8)])
def test_fcn_any_input_size(size: tuple) -> None:
    model, shape = small("fcn", num_classes=3)
    out = model.eval()(torch.randn(1, shape[0], *size))
    assert set(out) == {"out"} and out["out"].shape == (1, 3, *size)


def test_fcn_resnet50_small_with_aux_any_size() -> None:
    model, shape = small("fcn_resnet50", num_classes=3, aux_loss=True)
    out = model.train()(torch.randn(2, shape[0], 33, 45))
    assert list(out) == ["out", "aux"]
    assert out["out"].shape == out["aux"].shape == (2, 3, 33, 45)


def test_fcn_upsampling_is_transposed_convolution_started_bilinear() -> None:
    model, _ = small("fcn", num_classes=2)
    ups = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(ups) == 3
    # Bilinear weights: a constant map stays constant away from the borders.
    up = ups[-1]
    y = up(torch.ones(1, 2, 6, 6))
    assert y.shape == (1, 2, 24, 24)
    assert torch.allclose(y[:, :, 4:-4, 4:-4], torch.ones_like(y[:, :, 4:-4, 4:-4]))


def learnable_batch(name: str, shape: tuple, n: int = 16, k: int = 4) -> tuple:
    """A small task with signal: a class pattern (or per-region colour) plus noise."""
    g = torch.Generator().manual_seed(0)
    if name in SEGMENTERS:
        c, h, w = shape
        blocks = torch.randint(0, k, (n, 1, (h + 7) // 8, (w + 7) // 8), generator=g)
        y = nn.functional.interpolate(blocks.float(), scale_factor=8.0)[:, 0, :h, :w].long()
        colours = torch.randn(k, c, generator=g)
        return colours[y].permute(0, 3, 1, 2) + 0.5 * torch.randn(n, c, h, w, generator=g), y
    y = torch.arange(n) % k
    patterns = torch.randn(k, *shape, generator=g)
    return patterns[y] + torch.randn(n, *shape, generator=g), y


# Plain (no batch norm) deep stacks want a smaller step, as in the papers.
FIT_LR = {"alexnet": 1e-3, "vgg11": 1e-3, "vgg16": 1e-3}



@pytest.mark.parametrize("name", CLASSIFIERS + SEGMENTERS)
def test_small_variant_learns_a_batch(name: str) -> None:
    """30 Adam steps on 16 learnable samples must cut the loss to well under half."""
    torch.manual_seed(1)
    model, shape = small(name, num_classes=4)
    x, y = learnable_batch(name, shape)
    opt = torch.optim.Adam(model.parameters(), lr=FIT_LR.get(name, 3e-3))
    model.train()
    losses = []
    for _ in range(30):
        out = model(x)
        logits = out["out"] if name in SEGMENTERS else (
            out if isinstance(out, torch.Tensor) else out[0])
        loss = nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.4 * losses[0], losses
