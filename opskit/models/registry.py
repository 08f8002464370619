"""Registries, not name lookups: ``@register_model``, ``get_model(name)``, ``list_models()``.

What a model is (family, task, configurations, input shapes, parameter count) is torch-free
data in :mod:`opskit.models.catalogue`; each model family's module registers its builders with
``@register_model(NAME)``. Asking for a model imports only the module that holds its builder,
so ``import opskit.models`` and ``list_models()`` stay cheap and need no torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from opskit.models.catalogue import TASKS, UnknownModelError, entry, model_names

__all__ = ["TASKS", "ModelInfo", "UnknownModelError", "get_model", "get_model_info",
           "import_present", "list_models", "register_model"]


@dataclass(frozen=True)
class ModelInfo:
    """What the zoo knows about one model: its catalogue entry and its builder."""

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
    parameters: int = 0  # of the reference configuration

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


_BUILDERS: dict[str, Callable[..., Any]] = {}


def register_model(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register a builder ``fn(**cfg) -> nn.Module`` for the catalogue's ``name``.

    The name must be in the catalogue, with this module as its module: the catalogue is what
    commands read without importing the builders, so the two may not drift apart.
    """
    cat = entry(name)

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if fn.__module__ != cat.module:
            raise ValueError(f"model {name!r} is registered in {fn.__module__}, but the "
                             f"catalogue says {cat.module}")
        if name in _BUILDERS and _BUILDERS[name] is not fn:
            raise ValueError(f"model {name!r} is registered twice")
        _BUILDERS[name] = fn
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


def list_models(task: str | None = None) -> list[str]:
    """Sorted model names (from the catalogue: imports no model module)."""
    return model_names(task)


def get_model_info(name: str) -> ModelInfo:
    """The model's catalogue entry with its builder (imports the builder's module, so torch)."""
    cat = entry(name)
    if name not in _BUILDERS:
        importlib.import_module(cat.module)
    if name not in _BUILDERS:
        raise LookupError(f"{cat.module} does not register model {name!r}")
    return ModelInfo(
        name=name, builder=_BUILDERS[name], family=cat.family, task=cat.task,
        description=cat.description, reference=dict(cat.reference), small=dict(cat.small),
        input_shape=tuple(cat.input_shape),
        small_input_shape=tuple(cat.small_input_shape or cat.input_shape),
        parameters=cat.parameters,
    )


def get_model(name: str, **cfg: Any) -> Any:
    """Build model ``name`` with ``cfg`` overriding the builder's defaults."""
    return get_model_info(name).builder(**cfg)
