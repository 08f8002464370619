"""The model catalogue: what the zoo holds, as plain data. Imports nothing but the stdlib.

Everything a command needs to know about a model without building it lives here: the module
that holds its builder, family, task, a one-line description, the keyword arguments of the
reference (paper) and small configurations, input shapes, and the reference configuration's
parameter count. ``opskit models list`` and everything ``run-remote``, ``ship`` and ``jobs``
need read this, so an ops-only install (``pip install opskit``, no ``[train]`` extra) works
without torch. The builders register themselves with ``@register_model(NAME)`` in their
modules, which the registry imports lazily, one module per model asked for.

``PARAMETERS`` are counted by building each reference model (on PyTorch's meta device);
``tests/unit/test_models_catalogue.py`` checks them and every entry against the builders.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TASKS = ("classification", "segmentation", "detection", "language_model", "gan", "vae")


class UnknownModelError(KeyError):
    """A name that is not in the catalogue (lists the known ones)."""

    def __init__(self, name: str, known: list[str]):
        super().__init__(name)
        self.name = name
        self.known = known

    def __str__(self) -> str:
        return f"unknown model {self.name!r}; known models: {', '.join(self.known)}"


@dataclass(frozen=True)
class CatalogueEntry:
    """What the zoo knows about one model without building it."""

    name: str
    module: str  # the module whose @register_model(name) defines the builder
    family: str
    task: str
    description: str
    parameters: int  # of the reference configuration
    reference: dict = field(default_factory=dict)
    small: dict = field(default_factory=dict)
    input_shape: tuple = ()  # (C, H, W) of the reference configuration; () for sequences
    small_input_shape: tuple = ()

    def to_dict(self) -> dict:
        return {
            "name": self.name, "family": self.family, "task": self.task,
            "description": self.description, "parameters": self.parameters,
            "reference": dict(self.reference), "small": dict(self.small),
            "input_shape": list(self.input_shape),
            "small_input_shape": list(self.small_input_shape),
        }


_CLS_REF = {"num_classes": 1000, "in_channels": 3}
_RESNET_SMALLER = {"widths": (8, 16, 32, 64), "num_classes": 10}
_VGG_SMALL = {"width": 0.125, "hidden": 128, "pool_size": 1, "num_classes": 10, "dropout": 0.0,
              "head_init_std": None}
_SEQ_REF = {"vocab_size": 128, "embed_dim": 64, "hidden_size": 256, "num_layers": 2,
            "dropout": 0.2}
_SEQ_SMALL = {"vocab_size": 32, "embed_dim": 16, "hidden_size": 64, "num_layers": 1}
_IMAGENET = (3, 224, 224)
_SMALL32 = (3, 32, 32)
# YOLOv2's VOC anchors (in grid cells of 32 px), as pixels.
VOC_ANCHORS = tuple(
    (round(w * 32, 1), round(h * 32, 1))
    for w, h in (
        (1.3221, 1.73145),
        (3.19275, 4.00944),
        (5.05587, 8.09892),
        (9.47112, 4.84053),
        (11.2364, 10.0071),
    )
)

_ENTRIES = (
    CatalogueEntry(
        "lenet", "opskit.models.lenet", "lenet", "classification",
        "LeNet-5: two 5x5 convolutions with pooling, three dense layers (61.7K).", 61_706,
        {"num_classes": 10, "in_channels": 1, "input_size": 32},
        {"num_classes": 10, "in_channels": 3, "input_size": 32, "widths": (16, 32),
         "hidden": (120, 84)},
        (1, 32, 32), _SMALL32),
    CatalogueEntry(
        "alexnet", "opskit.models.alexnet", "alexnet", "classification",
        "AlexNet: 11x11/4 first convolution, ReLU, dropout (61.1M parameters).", 61_100_840,
        _CLS_REF,
        {"widths": (16, 32, 64, 64, 64), "hidden": 128, "pool_size": 1, "num_classes": 10,
         "dropout": 0.0},
        _IMAGENET, (3, 64, 64)),
    CatalogueEntry(
        "vgg11", "opskit.models.vgg", "vgg", "classification",
        "VGG-11 (configuration A): 8 convolutions 3x3, 3 dense (132.9M parameters).",
        132_863_336, _CLS_REF, _VGG_SMALL, _IMAGENET, _SMALL32),
    CatalogueEntry(
        "vgg16", "opskit.models.vgg", "vgg", "classification",
        "VGG-16 (configuration D): 13 convolutions 3x3, 3 dense (138.4M parameters).",
        138_357_544, _CLS_REF, _VGG_SMALL, _IMAGENET, _SMALL32),
    CatalogueEntry(
        "vgg16_bn", "opskit.models.vgg", "vgg", "classification",
        "VGG-16 with batch normalization after every convolution (138.4M).",
        138_365_992, _CLS_REF, _VGG_SMALL, _IMAGENET, _SMALL32),
    CatalogueEntry(
        "googlenet", "opskit.models.googlenet", "googlenet", "classification",
        "GoogLeNet (Inception v1): inception modules with 1x1 reductions, aux heads.",
        13_004_888,
        {"num_classes": 1000, "in_channels": 3, "aux_logits": True, "transform_input": True},
        {"width": 0.25, "num_classes": 10, "dropout": 0.0, "aux_logits": True},
        _IMAGENET, _SMALL32),
    CatalogueEntry(
        "resnet18", "opskit.models.resnet", "resnet", "classification",
        "ResNet-18: BasicBlocks [2, 2, 2, 2] (11.7M parameters).", 11_689_512,
        _CLS_REF, {"widths": (16, 32, 64, 128), "num_classes": 10}, _IMAGENET, _SMALL32),
    CatalogueEntry(
        "resnet34", "opskit.models.resnet", "resnet", "classification",
        "ResNet-34: BasicBlocks [3, 4, 6, 3] (21.8M parameters).", 21_797_672,
        _CLS_REF, _RESNET_SMALLER, _IMAGENET, _SMALL32),
    CatalogueEntry(
        "resnet50", "opskit.models.resnet", "resnet", "classification",
        "ResNet-50: Bottlenecks [3, 4, 6, 3] (25.6M parameters).", 25_557_032,
        _CLS_REF, _RESNET_SMALLER, _IMAGENET, _SMALL32),
    CatalogueEntry(
        "fcn", "opskit.models.fcn", "fcn", "segmentation",
        "Compact FCN-8s: conv head, transposed-conv upsampling, skips; any input size.",
        10_528_479, {"num_classes": 21, "in_channels": 3},
        {"widths": (8, 16, 32, 32), "head_width": 64, "num_classes": 4, "dropout": 0.0},
        _IMAGENET, _SMALL32),
    CatalogueEntry(
        "fcn_resnet50", "opskit.models.fcn", "fcn", "segmentation",
        "FCN with a dilated ResNet-50 backbone and aux head (torchvision's fcn_resnet50, 35.3M).",
        35_322_218, {"num_classes": 21, "in_channels": 3, "aux_loss": True},
        {"widths": (8, 16, 32, 64), "layers": (1, 1, 1, 1), "num_classes": 4},
        (3, 520, 520), _SMALL32),
    CatalogueEntry(
        "yolo", "opskit.models.detection.yolo", "detection", "detection",
        "One-stage YOLO-style detector: grid cells x anchors predict box, objectness, class",
        6_354_333, {"num_classes": 20, "width": 32, "stages": 5, "anchors": VOC_ANCHORS},
        {"num_classes": 3, "width": 16, "stages": 3, "anchors": ((12.0, 12.0), (20.0, 20.0))},
        (3, 416, 416), (3, 48, 48)),
    CatalogueEntry(
        "faster_rcnn", "opskit.models.detection.faster_rcnn", "detection", "detection",
        "Two-stage detector: region proposal network, RoIAlign, classification head",
        33_143_510,
        {"num_classes": 20, "width": 64, "stages": 4, "anchor_sizes": (128, 256, 512),
         "aspect_ratios": (0.5, 1.0, 2.0), "pool_size": 7, "hidden": 1024},
        {"num_classes": 3, "width": 16, "stages": 2, "anchor_sizes": (10, 16, 24),
         "aspect_ratios": (1.0,), "pool_size": 4, "hidden": 128, "proposals": (200, 32)},
        (3, 600, 600), (3, 48, 48)),
    CatalogueEntry(
        "rnn", "opskit.models.rnn", "sequence", "language_model",
        "Character-level language model with an Elman RNN (tanh) cell.", 255_104,
        _SEQ_REF, _SEQ_SMALL),
    CatalogueEntry(
        "lstm", "opskit.models.rnn", "sequence", "language_model",
        "Character-level language model with an LSTM cell (input, forget, output gates).",
        897_152, _SEQ_REF, _SEQ_SMALL),
    CatalogueEntry(
        "gru", "opskit.models.rnn", "sequence", "language_model",
        "Character-level language model with a GRU cell (reset and update gates).", 683_136,
        _SEQ_REF, _SEQ_SMALL),
    CatalogueEntry(
        "dcgan", "opskit.models.gan", "generative", "gan",
        "DCGAN: convolutional generator and discriminator trained adversarially", 6_342_272,
        {"nz": 100, "ngf": 64, "ndf": 64, "channels": 3, "image_size": 64},
        {"nz": 16, "ngf": 32, "ndf": 16, "channels": 1, "image_size": 16},
        (100, 1, 1), (16, 1, 1)),
    CatalogueEntry(
        "vae", "opskit.models.vae", "generative", "vae",
        "Variational autoencoder: Gaussian encoder, reparameterization, Bernoulli decoder",
        652_824, {"channels": 1, "image_size": 28, "hidden": 400, "latent": 20},
        {"channels": 1, "image_size": 16, "hidden": 128, "latent": 8},
        (1, 28, 28), (1, 16, 16)),
)

CATALOGUE: dict[str, CatalogueEntry] = {e.name: e for e in _ENTRIES}


def model_names(task: str | None = None) -> list[str]:
    """Sorted model names, optionally of one task."""
    return sorted(n for n, e in CATALOGUE.items() if task is None or e.task == task)


def entry(name: str) -> CatalogueEntry:
    """The catalogue entry of ``name``; UnknownModelError (naming the known ones) otherwise."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise UnknownModelError(name, model_names()) from None
