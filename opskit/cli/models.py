"""``opskit models list|show``: the model zoo, its layer shapes and parameter counts.

``list`` prints every registered model with its family, task and the parameter count of its
reference (paper) configuration. ``show NAME`` prints, layer by layer, the output shape (per
sample, worked out with the convolution/pooling formulas, no forward pass) and the parameter
count, then the total. Models are built on PyTorch's ``meta`` device: no memory, no weights.

JSON keys (stable). list: ``models`` -> [{``name``, ``family``, ``task``, ``description``,
``parameters``, ``input_shape``, ``small_input_shape``}]. show: ``model``, ``config``
("reference" | "small"), ``input_shape``, ``output_shape``, ``layers`` -> [{``name``,
``kind``, ``depth``, ``input_shape``, ``output_shape``, ``params``, ``is_block``}],
``total_params``, ``trainable_params``, ``shapes`` (false when only parameters are known).
"""

from __future__ import annotations

from typing import Any

import click

from opskit.cli.common import json_option, traceback_option


@click.group("models")
def models() -> None:
    """The model zoo: list models, show layer shapes and parameters."""


def _info(name: str) -> Any:
    from opskit.errors import UsageError
    from opskit.models.registry import UnknownModelError, get_model_info

    try:
        return get_model_info(name)
    except UnknownModelError as exc:
        raise UsageError(
            f"unknown model {name!r}",
            f"known models: {', '.join(exc.known)} (see 'opskit models list')",
        ) from None


@models.command("list")
@json_option
@traceback_option
def list_models(as_json: bool) -> None:
    """Every model with family, task and parameters of its reference configuration.

    Reads the torch-free catalogue: works without the [train] extra."""
    from opskit.cli import render
    from opskit.models.catalogue import CATALOGUE, model_names

    rows = []
    for name in model_names():
        e = CATALOGUE[name]
        rows.append({
            "name": name, "family": e.family, "task": e.task, "description": e.description,
            "parameters": e.parameters, "input_shape": list(e.input_shape),
            "small_input_shape": list(e.small_input_shape),
        })
    if as_json:
        render.print_json({"models": rows})
        return
    render.print_table(
        ["NAME", "FAMILY", "TASK", "PARAMETERS", "INPUT", "SMALL INPUT"],
        [[r["name"], r["family"], r["task"], f"{r['parameters']:,}",
          _fmt(r["input_shape"]), _fmt(r["small_input_shape"])] for r in rows],
        justify={"PARAMETERS": "right"},
    )


def _parse_input(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    from opskit.models.summary import parse_input_shape

    try:
        return parse_input_shape(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


@models.command("show")
@click.argument("name")
@click.option("--input", "input_shape", metavar="CxHxW", callback=_parse_input,
              help="One sample's shape, e.g. 3x224x224 (default: the model's own).")
@click.option("--small", is_flag=True, help="The small variant (fast on a CPU) instead of "
              "the reference configuration.")
@click.option("--depth", type=click.IntRange(min=0), default=None,
              help="Show rows nested at most this deep (0: top-level blocks only).")
@json_option
@traceback_option
def show(name: str, input_shape: tuple | None, small: bool, depth: int | None,
         as_json: bool) -> None:
    """Per layer: output shape and parameters, then the total (no forward pass)."""
    from opskit.cli import render
    from opskit.errors import UsageError
    from opskit.models.describe import InputShapeError, describe

    info = _info(name)
    try:
        data = describe(info.name, small=small, input_shape=input_shape)
    except InputShapeError as exc:
        other = f" or --small (input {_fmt(info.small_input_shape)})" if info.small_input_shape else ""
        raise UsageError(str(exc), f"give a larger --input (default {_fmt(info.input_shape)}){other}") from None
    if as_json:
        render.print_json(data)
        return
    _print_summary(data, depth)


def _fmt(shape: Any) -> str:
    return "x".join(map(str, shape)) if shape else "-"


def _print_summary(data: dict, depth: int | None) -> None:
    from opskit.cli import render

    rows = [r for r in data["layers"] if depth is None or r["depth"] <= depth]
    columns = ["LAYER", "TYPE", "OUTPUT", "PARAMS"] if data["shapes"] else [
        "LAYER", "TYPE", "PARAMS"]
    table = []
    for r in rows:
        label = "  " * r["depth"] + r["name"]
        params = f"{r['params']:,}"
        cells = [label, r["kind"], _fmt(r["output_shape"]), params] if data["shapes"] else [
            label, r["kind"], params]
        table.append(cells)
    title = f"{data['model']} ({data['config']})"
    if data["shapes"]:
        title += f", input {_fmt(data['input_shape'])}"
    render.print_table(columns, table, title=title, justify={"PARAMS": "right"})
    if data["shapes"]:
        render.print_line(f"output: {_fmt_output(data['output_shape'])}")
    else:
        render.print_line(f"output shapes: not available ({data['note']})")
    render.print_line(f"total parameters: {data['total_params']:,} "
                      f"(trainable {data['trainable_params']:,})")


def _fmt_output(shape: Any) -> str:
    if isinstance(shape, dict):
        return ", ".join(f"{k} {_fmt(v)}" for k, v in shape.items())
    if shape and isinstance(shape[0], list):
        return ", ".join(_fmt(s) for s in shape)
    return _fmt(shape)
