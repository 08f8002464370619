"""Registries, not name lookups: ``@register_model``, ``get_model(name)``, ``list_models()``.

Each model family lives in its own module (listed in ``FAMILY_MODULES``) and registers its
builders with ``@register_model``. The registry imports those modules on first use, so
``import opskit.models`` stays cheap and does no work at import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

# Modules that hold @register_model builders, imported on first registry use.
FAMILY_MODULES = (
    "opskit.models.lenet",
    "opskit.models.alexnet",
    "opskit.models.vgg",
    "opskit.models.googlenet",
    "opskit.models.resnet",
    "opskit.models.fcn",
    "opskit.models.detection",
    "opskit.models.rnn",
    "opskit.models.gan",
    "opskit.models.vae",
)

TASKS = ("classification", "segmentation", "detection", "language_model", "gan", "vae")


class UnknownModelError(KeyError):
    """Raised by get_model for a name that is not registered (lists the known ones)."""

    def __init__(self, name: str, known: list[str]):
        super().__init__(name)
        self.name = name
        self.known = known

    def __str__(self) -> str:
        return f"unknown model {self.name!r}; known models: {', '.join(self.known)}"


@dataclass(frozen=True)
class ModelInfo:
    """What the zoo knows about one model."""

    name: str
    builder: Callable[..., Any]
    family: str
    task: str
    description: str = ""
    # Keyword arguments that give the paper's configuration (e.g. num_classes=1000).
    reference: dict = field(default_factory=dict)
    # Keyword arguments for a small variant that trains quickly on a CPU.
    small: dict = field(default_factory=dict)
    # Input shape (C, H, W) for the reference configuration; () for sequence models.
    input_shape: tuple = ()
    # Input shape for the small variant.
    small_input_shape: tuple = ()

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "family": self.family,
            "task": self.task,
            "description": self.description,
            "reference": dict(self.reference),
            "small": dict(self.small),
            "input_shape": list(self.input_shape),
            "small_input_shape": list(self.small_input_shape),
        }


_REGISTRY: dict[str, ModelInfo] = {}
_loaded = False


def register_model(
    name: str | None = None,
    *,
    family: str,
    task: str,
    description: str = "",
    reference: dict | None = None,
    small: dict | None = None,
    input_shape: tuple = (),
    small_input_shape: tuple = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register a builder ``fn(**cfg) -> nn.Module`` under ``name``."""
    if task not in TASKS:
        raise ValueError(f"task {task!r} is not one of {TASKS}")

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        key = name or fn.__name__
        if key in _REGISTRY and _REGISTRY[key].builder is not fn:
            raise ValueError(f"model {key!r} is registered twice")
        doc_lines = (fn.__doc__ or "").strip().splitlines()
        _REGISTRY[key] = ModelInfo(
            name=key,
            builder=fn,
            family=family,
            task=task,
            description=description or (doc_lines[0] if doc_lines else ""),
            reference=dict(reference or {}),
            small=dict(small or {}),
            input_shape=tuple(input_shape),
            small_input_shape=tuple(small_input_shape or input_shape),
        )
        return fn

    return deco


def import_present(modules: Iterable[str]) -> None:
    """Import each module that exists (registering what it defines); a module that is not
    there is skipped, an import error inside one that is there is raised."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a real import error inside the module
                raise


def _load_all() -> None:
    global _loaded
    if _loaded:
        return
    import_present(FAMILY_MODULES)
    _loaded = True


def list_models(task: str | None = None) -> list[str]:
    _load_all()
    return sorted(n for n, i in _REGISTRY.items() if task is None or i.task == task)


def get_model_info(name: str) -> ModelInfo:
    _load_all()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(name, sorted(_REGISTRY)) from None


def get_model(name: str, **cfg: Any) -> Any:
    """Build model ``name`` with ``cfg`` overriding the builder's defaults."""
    return get_model_info(name).builder(**cfg)
