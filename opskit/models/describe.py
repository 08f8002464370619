"""What ``opskit models show`` shows of a model, as data (torch; no forward pass)."""

from __future__ import annotations

from collections.abc import Sequence

from opskit.models.summary import (
    InputShapeError,
    NoShapeRuleError,
    build_for_summary,
    parameter_summary,
    summarize,
)

__all__ = ["InputShapeError", "describe"]


def describe(name: str, *, small: bool = False, input_shape: Sequence[int] | None = None) -> dict:
    """What ``opskit models show`` shows: the summary of model ``name`` (reference or small
    configuration) at ``input_shape`` (default: the configuration's own), as a dict with
    ``shapes`` (False when only parameters are known, with a ``note`` saying why) and
    ``config``. Raises InputShapeError for an input the layers cannot take."""
    model, default_shape = build_for_summary(name, small=small)
    shape = tuple(input_shape or default_shape)
    config = {"config": "small" if small else "reference"}
    if len(shape) != 3:
        return {**parameter_summary(model, name).to_dict(), "shapes": False, **config,
                "note": "this model takes no CxHxW image input: parameters only"}
    try:
        return {**summarize(model, shape, name=name).to_dict(), "shapes": True, **config}
    except NoShapeRuleError as exc:
        return {**parameter_summary(model, name).to_dict(), "shapes": False, **config,
                "note": str(exc)}
