"""Golden outputs of torchvision's pretrained-weight configurations, and how they were made.

torchvision cannot be installed beside the project's CPU torch, so the equivalence tests
compare with numbers stored in ``torchvision_outputs.json``, made once by this file's ``main``
in a side virtual environment (``pip install torch==2.14.1 torchvision==0.29.1``; not part of
the project's set-up)::

    SIDE_VENV/bin/python tests/unit/data/tvgolden.py tests/unit/data/torchvision_outputs.json

Each model is built as torchvision's builder builds it *when weights are given* (GoogLeNet:
``transform_input=True, aux_logits=True``; FCN-ResNet50: ``aux_loss=True``), its state dict
is filled by ``seeded_state`` (each entry from its own generator, seeded by the key's name, so
the values do not depend on the order in which a model registers its modules), and its eval
outputs on ``probe_input`` are summarised by ``summarize``. The tests load the same state dict
with ``strict=True`` into opskit's *reference* configuration and compare. No pretrained
weights are fetched or stored. Only torch is imported at module level (the tests import this).
"""

from __future__ import annotations

import json
import math
import sys
import zlib

import torch

HEAD = 24  # leading values of each output kept verbatim


def _gen(key: str) -> torch.Generator:
    return torch.Generator().manual_seed(zlib.crc32(key.encode()))


def seeded_state(state: dict) -> dict:
    """Deterministic values for every entry: He-normal weights, BN near identity."""
    out = {}
    for key in sorted(state):
        ref = state[key]
        g = _gen(key)
        if not ref.is_floating_point():
            out[key] = torch.zeros(ref.shape, dtype=ref.dtype)
        elif ref.dim() > 1:
            fan_in = ref[0].numel()
            out[key] = torch.randn(ref.shape, generator=g) * math.sqrt(2.0 / fan_in)
        elif key.endswith("running_var"):
            out[key] = 1.0 + 0.1 * torch.rand(ref.shape, generator=g)
        elif key.endswith(".weight"):  # batch-norm scale
            out[key] = 1.0 + 0.1 * torch.randn(ref.shape, generator=g)
        else:  # biases, running means
            out[key] = 0.1 * torch.randn(ref.shape, generator=g)
    return out


def probe_input(shape: tuple) -> torch.Tensor:
    """An ImageNet-normalised-looking batch (standard normal values)."""
    return torch.randn(shape, generator=_gen("input"))


def summarize(t: torch.Tensor) -> dict:
    flat = t.detach().double().flatten()
    return {
        "shape": list(t.shape),
        "head": [round(float(v), 6) for v in flat[:HEAD]],
        "sum": float(flat.sum()),
        "abs_sum": float(flat.abs().sum()),
        "max_abs": float(flat.abs().max()),
        "argmax_rows": t.detach().flatten(1).argmax(1).tolist() if t.dim() > 1 else [],
    }


CASES = {
    # name: (torchvision builder path, kwargs as with weights, input shape)
    "googlenet": ("torchvision.models:googlenet",
                  {"aux_logits": True, "transform_input": True, "init_weights": False},
                  (2, 3, 64, 64)),
    "fcn_resnet50": ("torchvision.models.segmentation:fcn_resnet50",
                     {"num_classes": 21, "aux_loss": True, "weights_backbone": None},
                     (1, 3, 64, 64)),
}  # fmt: skip


def outputs(model: torch.nn.Module, x: torch.Tensor) -> dict:
    model.eval()
    with torch.no_grad():
        y = model(x)
    return {k: summarize(v) for k, v in y.items()} if isinstance(y, dict) else {"out": summarize(y)}


def main(path: str) -> None:  # pragma: no cover - run by hand in the side venv
    import importlib

    import torchvision

    torch.set_num_threads(1)
    data = {"_source": f"torchvision {torchvision.__version__}, torch {torch.__version__}: "
            "tests/unit/data/tvgolden.py main()"}  # fmt: skip
    for name, (where, kwargs, shape) in CASES.items():
        module, func = where.split(":")
        model = getattr(importlib.import_module(module), func)(weights=None, **kwargs)
        model.load_state_dict(seeded_state(model.state_dict()), strict=True)
        x = probe_input(shape)
        data[name] = {"kwargs": kwargs, "input_sum": float(x.double().sum()),
                      "outputs": outputs(model, x)}  # fmt: skip
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.write("\n")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1])
