"""The analytic summary: formulas against PyTorch, every layer's shape against a real forward."""

from __future__ import annotations

from collections import defaultdict

import pytest
import torch
from torch import nn

from opskit.models import get_model, get_model_info
from opskit.models.summary import (
    InputShapeError,
    InputTooSmallError,
    NoShapeRuleError,
    check_input,
    conv_out,
    conv_transpose_out,
    count_parameters,
    leaf_params,
    parameter_summary,
    parse_input_shape,
    summarize,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/conftest.py


# ------------------------------------------------------------------ the formulas themselves
@pytest.mark.parametrize("k,s,p,d", [(3, 1, 1, 1), (11, 4, 2, 1), (5, 2, 0, 1), (3, 2, 1, 2),
                                     (7, 2, 3, 1), (1, 1, 0, 1), (3, 1, 2, 2)])
def test_conv_formula_matches_pytorch(k: int, s: int, p: int, d: int) -> None:
    conv = nn.Conv2d(1, 1, k, stride=s, padding=p, dilation=d)
    for size in range(1, 40):
        expected = conv_out(size, k, s, p, d)
        if expected <= 0:
            with pytest.raises(RuntimeError):
                conv(torch.zeros(1, 1, size, size))
        else:
            assert conv(torch.zeros(1, 1, size, size)).shape[-1] == expected, size


@pytest.mark.parametrize("k,s,p,ceil", [(3, 2, 0, False), (3, 2, 0, True), (2, 2, 0, True),
                                        (3, 2, 1, False), (3, 1, 1, True), (2, 2, 0, False),
                                        (3, 2, 1, True)])
def test_pool_formula_matches_pytorch(k: int, s: int, p: int, ceil: bool) -> None:
    pool = nn.MaxPool2d(k, stride=s, padding=p, ceil_mode=ceil)
    for size in range(1, 40):
        expected = conv_out(size, k, s, p, 1, ceil)
        if expected <= 0:
            with pytest.raises(RuntimeError):
                pool(torch.zeros(1, 1, size, size))
        else:
            assert pool(torch.zeros(1, 1, size, size)).shape[-1] == expected, size


def test_transposed_conv_formula_matches_pytorch() -> None:
    for k, s, p, op in [(4, 2, 1, 0), (8, 4, 2, 0), (3, 2, 1, 1), (2, 2, 0, 0)]:
        up = nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=op)
        for size in range(1, 12):
            out = up(torch.zeros(1, 1, size, size)).shape[-1]
            assert conv_transpose_out(size, k, s, p, 1, op) == out


def test_parameter_formulas() -> None:
    assert leaf_params(nn.Conv2d(3, 64, 11)) == 11 * 11 * 3 * 64 + 64
    assert leaf_params(nn.Conv2d(64, 64, 3, bias=False)) == 3 * 3 * 64 * 64
    assert leaf_params(nn.Conv2d(32, 64, 3, groups=4)) == 3 * 3 * 32 * 64 // 4 + 64
    assert leaf_params(nn.Linear(9216, 4096)) == 9216 * 4096 + 4096
    assert leaf_params(nn.BatchNorm2d(256)) == 512
    assert leaf_params(nn.ConvTranspose2d(21, 21, 4, bias=False)) == 4 * 4 * 21 * 21
    assert leaf_params(nn.MaxPool2d(2)) == 0


def test_count_parameters_counts_a_shared_tensor_once() -> None:
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    b.weight = a.weight  # tied weights
    b.bias.requires_grad_(False)
    model = nn.Sequential(a, b)
    assert count_parameters(model) == 16 + 4 + 4
    assert count_parameters(model, trainable_only=True) == 16 + 4


# ------------------------------------------------------------------ against real forwards
def real_shapes(model: nn.Module, x: torch.Tensor) -> dict[str, list[tuple]]:
    """Output shape (without batch) of every leaf module call, by name, in call order."""
    seen: dict[str, list[tuple]] = defaultdict(list)
    hooks = []
    for name, m in model.named_modules():
        if name and not any(True for _ in m.children()):
            hooks.append(m.register_forward_hook(
                lambda mod, inp, out, name=name: seen[name].append(tuple(out.shape[1:]))))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return seen


CASES = [
    ("lenet", (3, 32, 32)), ("alexnet", (3, 64, 64)), ("alexnet", (3, 100, 77)),
    ("vgg11", (3, 32, 32)), ("vgg16_bn", (3, 48, 40)), ("googlenet", (3, 32, 32)),
    ("googlenet", (3, 61, 45)), ("resnet18", (3, 32, 32)), ("resnet34", (3, 33, 47)),
    ("resnet50", (3, 40, 40)), ("fcn", (3, 32, 32)), ("fcn", (3, 37, 23)),
    ("fcn_resnet50", (3, 35, 29)),
]


@pytest.mark.parametrize("name,shape", CASES)
def test_every_layer_shape_and_params_match_a_forward_pass(name: str, shape: tuple) -> None:
    info = get_model_info(name)
    cfg = {**info.small, **({"aux_loss": True} if name == "fcn_resnet50" else {})}
    torch.manual_seed(0)
    model = get_model(name, **cfg).train()  # training mode: GoogLeNet's aux heads run too
    summary = summarize(model, shape, name=name)
    real = real_shapes(model, torch.randn(2, *shape))
    analytic: dict[str, list[tuple]] = defaultdict(list)
    modules = dict(model.named_modules())
    for row in summary.rows:
        if row.name in modules and not row.is_block:
            analytic[row.name].append(row.output_shape)
            own = sum(p.numel() for p in modules[row.name].parameters(recurse=False))
            assert row.params == own, row.name
    assert dict(analytic) == dict(real)
    assert summary.total_params == sum(p.numel() for p in model.parameters())
    out = model.eval()(torch.randn(1, *shape))
    out = out["out"] if isinstance(out, dict) else out
    assert tuple(out.shape[1:]) == summary.output_shape


def test_reference_summaries_on_the_meta_device() -> None:
    s = summarize("resnet50")
    assert s.input_shape == (3, 224, 224) and s.output_shape == (1000,)
    assert s.total_params == 25_557_032
    assert sum(r.params for r in s.rows if not r.is_block) == s.total_params
    by_name = {r.name: r for r in s.rows}
    assert by_name["layer4"].output_shape == (2048, 7, 7)
    assert by_name["maxpool"].output_shape == (64, 56, 56)
    fcn = summarize("fcn_resnet50")
    assert {r.name: r for r in fcn.rows}["backbone.layer4"].output_shape == (2048, 65, 65)
    assert fcn.output_shape == (21, 520, 520)
    alex = {r.name: r for r in summarize("alexnet").rows}
    assert alex["features.0"].output_shape == (64, 55, 55)
    assert alex["features.12"].output_shape == (256, 6, 6)


# ------------------------------------------------------------------ errors before training
def test_alexnet_on_16x16_names_the_layer() -> None:
    with pytest.raises(InputTooSmallError) as info:
        check_input("alexnet", (3, 16, 16))
    err = info.value
    assert isinstance(err, ValueError)
    assert err.layer == "features.5" and err.layer_type == "MaxPool2d"
    assert err.layer_input == (192, 1, 1)
    assert "features.5" in str(err) and "3x16x16" in str(err)
    assert err.min_size == 63 and "3x63x63" in str(err)


def test_smallest_size_is_the_real_boundary() -> None:
    """63x63 goes through AlexNet's layers, 62x62 does not (a real forward, small widths)."""
    model = get_model("alexnet", **get_model_info("alexnet").small).eval()
    check_input(model, (3, 63, 63))
    model(torch.zeros(1, 3, 63, 63))
    with pytest.raises(InputTooSmallError):
        check_input(model, (3, 62, 62))
    with pytest.raises(RuntimeError):
        model(torch.zeros(1, 3, 62, 62))


def test_too_small_for_resnet_and_vgg_by_instance() -> None:
    with pytest.raises(InputTooSmallError) as info:
        check_input("vgg16", (3, 16, 16))
    assert info.value.layer == "features.30"  # the fifth 2x2 pool gets 1x1
    model = get_model("resnet18", **get_model_info("resnet18").small)
    check_input(model, (3, 1, 1))  # padding keeps ResNet going down to 1x1


def test_wrong_channels_names_the_first_layer() -> None:
    with pytest.raises(InputShapeError) as info:
        check_input("resnet18", (1, 224, 224))
    assert not isinstance(info.value, InputTooSmallError)
    assert info.value.layer == "conv1" and "expects 3 input channels" in str(info.value)
    with pytest.raises(InputShapeError, match="classifier.0"):
        check_input("lenet", (1, 28, 28))  # its dense layer was sized for 32x32


def test_fcn_takes_any_size_down_to_one_pixel() -> None:
    for size in [(1, 1), (2, 3), (15, 16), (97, 31)]:
        assert summarize("fcn", (3, *size), small=True).output_shape == (4, *size)


def test_parameter_summary_for_models_without_shape_rules() -> None:
    model = nn.Sequential(nn.Embedding(10, 4), nn.LSTM(4, 8), nn.Linear(8, 2))
    with pytest.raises(NoShapeRuleError, match="Embedding"):
        summarize(model, (3, 4, 4))
    ps = parameter_summary(model, "toy")
    assert ps.total_params == sum(p.numel() for p in model.parameters())
    assert [r.name for r in ps.rows] == ["0", "1", "2"]


def test_parse_input_shape() -> None:
    assert parse_input_shape("3x224x224") == (3, 224, 224)
    assert parse_input_shape("1,28,28") == (1, 28, 28)
    for bad in ["3x224", "3x0x5", "axbxc", "", "3x-1x4", "3x2x2x2"]:
        with pytest.raises(ValueError, match="CxHxW"):
            parse_input_shape(bad)
