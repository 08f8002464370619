"""Reference configurations give torchvision's outputs for torchvision's pretrained layouts.

torchvision's builders change the model when weights are given: GoogLeNet gets
``transform_input=True`` (its weights expect [-1, 1] input; field case images-train/11) and
fcn_resnet50 gets ``aux_loss=True`` (its state dict carries ``aux_classifier.*``; field case
images-train/12). opskit's *reference* configurations must load such a state dict with
``strict=True`` as they are, and give the same outputs. The torchvision side is stored in
``data/torchvision_outputs.json`` (made once with torchvision 0.29.1 by ``data/tvgolden.py``,
which also defines the seeded state dict and input used on both sides).

Cost: about 10 s on one thread (a 13M and a 35M model built, one small forward pass each).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from opskit.models import get_model, get_model_info

DATA = Path(__file__).parent / "data"
GOLDEN = json.loads((DATA / "torchvision_outputs.json").read_text())
_spec = importlib.util.spec_from_file_location("tvgolden", DATA / "tvgolden.py")
tvgolden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tvgolden)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/unit/conftest.py


def reference_outputs(name: str, **overrides) -> dict:
    """The reference configuration, loaded strictly with the seeded torchvision-layout state."""
    case = GOLDEN[name]
    torch.manual_seed(0)
    model = get_model(name, **{**get_model_info(name).reference, **overrides})
    model.load_state_dict(tvgolden.seeded_state(model.state_dict()), strict=True)
    x = tvgolden.probe_input(tuple(tvgolden.CASES[name][2]))
    assert float(x.double().sum()) == pytest.approx(case["input_sum"], rel=1e-9)  # same input
    return tvgolden.outputs(model, x)


def assert_same(mine: dict, theirs: dict) -> None:
    assert mine["shape"] == theirs["shape"]
    scale = theirs["max_abs"]
    assert mine["head"] == pytest.approx(theirs["head"], abs=1e-4 * scale)
    assert mine["sum"] == pytest.approx(theirs["sum"], abs=1e-5 * theirs["abs_sum"])
    assert mine["abs_sum"] == pytest.approx(theirs["abs_sum"], rel=1e-5)
    assert mine["argmax_rows"] == theirs["argmax_rows"]


@pytest.mark.parametrize("name", ["googlenet", "fcn_resnet50"])
def test_reference_config_is_torchvisions_pretrained_config(name: str) -> None:
    ref = get_model_info(name).reference
    for key, value in GOLDEN[name]["kwargs"].items():
        if key in ("aux_logits", "transform_input", "aux_loss", "num_classes"):
            assert ref.get(key) == value, key


@pytest.mark.parametrize("name", ["googlenet", "fcn_resnet50"])
def test_reference_config_loads_strictly_and_gives_torchvisions_outputs(name: str) -> None:
    mine = reference_outputs(name)
    theirs = GOLDEN[name]["outputs"]
    assert sorted(mine) == sorted(theirs)  # fcn_resnet50: "out" and "aux"
    for key in theirs:
        assert_same(mine[key], theirs[key])


def test_googlenet_without_transform_input_differs_from_torchvision() -> None:
    """The comparison above can fail: torchvision's weights without the transform (case 11)."""
    mine = reference_outputs("googlenet", transform_input=False)["out"]
    theirs = GOLDEN["googlenet"]["outputs"]["out"]
    gap = max(abs(a - b) for a, b in zip(mine["head"], theirs["head"], strict=True))
    assert gap > 0.05 * theirs["max_abs"]


def test_googlenet_transform_input_maps_imagenet_normalised_input_to_tensorflows_range() -> None:
    """A [0, 1] image normalised with ImageNet's mean/std comes back as 2 * image - 1."""
    model = get_model("googlenet", width=0.25, num_classes=10, transform_input=True)
    image = torch.rand(1, 3, 8, 8)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    assert torch.allclose(model._transform_input((image - mean) / std), 2 * image - 1, atol=1e-6)
    with pytest.raises(ValueError, match="in_channels=3"):
        get_model("googlenet", in_channels=1, transform_input=True)
