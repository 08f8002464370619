"""The model zoo. Depends on torch and the standard library only.

Importing this package imports nothing heavy; model modules are imported by the registry
when a model is first asked for (``get_model``/``list_models``).
"""

from opskit.models.registry import (
    ModelInfo,
    get_model,
    get_model_info,
    list_models,
    register_model,
)

__all__ = ["ModelInfo", "get_model", "get_model_info", "list_models", "register_model"]
