"""Shapes and parameter counts, worked out on paper (analytically), layer by layer.

No forward pass is run: every layer's output shape comes from the textbook formulas, so a
summary of ResNet-50 at 224x224 costs a few milliseconds and an input that is too small for a
network is caught *before* training, with the layer at fault named.

Formulas (per spatial dimension; ``k`` kernel, ``s`` stride, ``p`` padding, ``d`` dilation)::

    convolution, pooling   H_out = floor((H_in + 2p - d(k - 1) - 1) / s) + 1
                           (ceil instead of floor for pooling with ceil_mode=True, where the
                           last window must still start inside the padded input)
    transposed convolution H_out = (H_in - 1) s - 2p + d(k - 1) + output_padding + 1
    adaptive pooling       H_out = the requested output size

    parameters  convolution  k_h * k_w * C_in * C_out / groups  (+ C_out for the bias)
                linear       F_in * F_out  (+ F_out)
                batch norm   2 * C  (scale and shift; running mean/var are buffers)

How the walk knows the data flow: ``nn.Sequential`` applies its children in order. A block
whose forward does more (a residual addition, parallel branches, auxiliary heads) has a
``shape_flow(self, x, t)`` method that repeats its forward on shapes, calling ``t(child, x)``
for each child and ``t.add``/``t.concat``/``t.flatten``/``t.op`` for functional steps.
Shapes are per sample, without the batch dimension: ``(C, H, W)`` or ``(F,)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

Shape = tuple[int, ...]

# Modules that keep the shape of their input.
_ELEMENTWISE = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
    nn.Hardswish, nn.Dropout, nn.Dropout2d, nn.Identity, nn.LocalResponseNorm, nn.Softmax,
    nn.LogSoftmax,
)


class InputShapeError(ValueError):
    """An input shape a network cannot take; ``layer`` names the layer at fault."""

    def __init__(self, message: str, *, layer: str, layer_type: str, layer_input: Shape):
        super().__init__(message)
        self.layer = layer
        self.layer_type = layer_type
        self.layer_input = tuple(layer_input)


class InputTooSmallError(InputShapeError):
    """The input shrinks to nothing somewhere in the network (e.g. AlexNet on 16x16)."""

    def __init__(self, message: str, *, layer: str, layer_type: str, layer_input: Shape,
                 min_size: int | None = None):
        super().__init__(message, layer=layer, layer_type=layer_type, layer_input=layer_input)
        self.min_size = min_size


class NoShapeRuleError(TypeError):
    """A module whose output shape this walk cannot work out (e.g. a recurrent layer)."""


@dataclass
class LayerRow:
    """One line of a summary: a layer (leaf module), a block, or a functional step."""

    name: str
    kind: str  # the module's class name, or the functional step ("add", "concat", ...)
    depth: int
    input_shape: Shape
    output_shape: Shape
    params: int
    is_block: bool = False

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"] = list(self.input_shape)
        d["output_shape"] = list(self.output_shape)
        return d


@dataclass
class ModelSummary:
    model: str
    input_shape: Shape
    output_shape: Any
    rows: list[LayerRow] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0

    def to_dict(self) -> dict:
        return {
            "model": self.model,
            "input_shape": list(self.input_shape),
            "output_shape": _jsonable(self.output_shape),
            "layers": [r.to_dict() for r in self.rows],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
        }


def _jsonable(shape: Any) -> Any:
    if isinstance(shape, dict):
        return {k: _jsonable(v) for k, v in shape.items()}
    if isinstance(shape, (tuple, list)) and shape and isinstance(shape[0], (tuple, list)):
        return [_jsonable(s) for s in shape]
    return list(shape)


def fmt_shape(shape: Shape) -> str:
    return "x".join(str(d) for d in shape)


# --------------------------------------------------------------------------- the formulas
def _pair(v: Any) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def conv_out(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1,
             ceil_mode: bool = False) -> int:
    """Output length of a convolution or pooling window sliding over ``size``.

    Floor division rounds towards minus infinity, as PyTorch's does, so a kernel larger than
    the padded input gives a length <= 0 (too small).
    """
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1  # ceil
    if (out - 1) * stride >= size + padding:
        out -= 1  # the last window would start in the right padding: PyTorch drops it
    return out


def conv_transpose_out(size: int, kernel: int, stride: int = 1, padding: int = 0,
                       dilation: int = 1, output_padding: int = 0) -> int:
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def conv_params(m: nn.Conv2d | nn.ConvTranspose2d) -> int:
    kh, kw = _pair(m.kernel_size)
    weight = kh * kw * m.in_channels * m.out_channels // m.groups
    return weight + (m.out_channels if m.bias is not None else 0)


def leaf_params(m: nn.Module) -> int:
    """Parameters of one layer from the formulas (the tests compare with ``numel``)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        return conv_params(m)
    if isinstance(m, nn.Linear):
        return m.in_features * m.out_features + (m.out_features if m.bias is not None else 0)
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return 2 * m.num_features if m.affine else 0
    # Anything else: count what it holds (no formula needed for a PReLU's slope).
    return sum(p.numel() for p in m.parameters(recurse=False))


# --------------------------------------------------------------------------- the walk
class Tracer:
    """Walks a model on shapes, recording one row per layer call."""

    def __init__(self, model: nn.Module, model_name: str, model_input: Shape):
        self.model = model
        self.names = {id(m): n for n, m in model.named_modules()}
        self.model_name = model_name
        self.model_input = model_input
        self.rows: list[LayerRow] = []
        self._depth = 0
        self._scope = [""]

    def __call__(self, module: nn.Module | None, shape: Shape) -> Shape:
        """Apply ``module`` to ``shape``: a formula for a layer, its flow for a block."""
        if module is None:
            return shape
        flow = getattr(module, "shape_flow", None)
        if callable(flow):
            return self.sub(module, shape, flow)
        if isinstance(module, nn.Sequential):
            return self.sub(module, shape, lambda x, t: self._chain(module, x))
        name = self._name(module)
        row = LayerRow(name, type(module).__name__, self._depth, tuple(shape), (), 0)
        self.rows.append(row)
        row.output_shape = self._leaf(module, name, tuple(shape))
        row.params = leaf_params(module)
        return row.output_shape

    def sub(self, module: nn.Module, shape: Shape, flow: Callable[[Shape, Tracer], Any]) -> Any:
        """Record ``module`` as a block whose children ``flow(shape, tracer)`` applies.

        ``flow`` may return a shape or, for a backbone, several (e.g. one per stage).
        """
        name = self._name(module)
        top = module is self.model
        row = LayerRow(name, type(module).__name__, self._depth, tuple(shape), (), 0, True)
        start = len(self.rows)
        if not top:
            self.rows.append(row)
            self._depth += 1
        self._scope.append("" if top else name)
        try:
            out = flow(tuple(shape), self)
        finally:
            self._scope.pop()
            self._depth -= 0 if top else 1
        last = out[-1] if isinstance(out, list) else out
        row.output_shape = tuple(last) if isinstance(last, tuple) else ()
        row.params = sum(r.params for r in self.rows[start:] if not r.is_block)
        return out

    def _chain(self, seq: nn.Sequential, x: Shape) -> Shape:
        for child in seq:
            x = self(child, x)
        return x

    def _name(self, module: nn.Module) -> str:
        return self.names.get(id(module)) or type(module).__name__

    # Functional steps a shape_flow may use -------------------------------------------
    def op(self, kind: str, shape: Shape, input_shape: Shape = ()) -> Shape:
        """Record a step with no module (e.g. interpolate) and its output shape."""
        where = f"{self._scope[-1]}.{kind}" if self._scope[-1] else kind
        self.rows.append(LayerRow(where, kind, self._depth, tuple(input_shape), tuple(shape), 0))
        return tuple(shape)

    def flatten(self, shape: Shape) -> Shape:
        return self.op("flatten", (math.prod(shape),), shape)

    def add(self, a: Shape, b: Shape) -> Shape:
        if tuple(a) != tuple(b):
            self._fail_shape("add", a, f"cannot add {fmt_shape(a)} and {fmt_shape(b)}")
        return self.op("add", a, a)

    def concat(self, shapes: Sequence[Shape]) -> Shape:
        """Concatenate along channels; the spatial sizes must agree."""
        if len({tuple(s[1:]) for s in shapes}) != 1:
            got = ", ".join(fmt_shape(s) for s in shapes)
            self._fail_shape("concat", shapes[0], f"branches disagree in size: {got}")
        out = (sum(s[0] for s in shapes), *shapes[0][1:])
        return self.op("concat", out, shapes[0])

    def _fail_shape(self, kind: str, shape: Shape, why: str) -> None:
        where = f"{self._scope[-1]}.{kind}" if self._scope[-1] else kind
        raise InputShapeError(
            f"{self.model_name}: input {fmt_shape(self.model_input)} does not fit at "
            f"{where}: {why}", layer=where, layer_type=kind, layer_input=shape)

    # Leaf layers ---------------------------------------------------------------------
    def _leaf(self, m: nn.Module, name: str, x: Shape) -> Shape:
        rule = _rule_for(m)
        if rule is None:
            if isinstance(m, _ELEMENTWISE):
                return x
            if any(True for _ in m.children()):
                why = (f"block {name} ({type(m).__name__}) has no shape_flow() method, so "
                       "the order of its layers is unknown")
            else:
                why = f"no shape rule for layer {name} ({type(m).__name__})"
            raise NoShapeRuleError(
                f"{self.model_name}: {why}; shape summaries cover convolutional networks")
        try:
            out = rule(m, x)
        except _Mismatch as exc:
            raise InputShapeError(
                f"{self.model_name}: layer {name} ({type(m).__name__}) {exc} (input shape "
                f"{fmt_shape(x)}; model input {fmt_shape(self.model_input)})",
                layer=name, layer_type=type(m).__name__, layer_input=x) from None
        if any(d <= 0 for d in out):
            raise InputTooSmallError(
                f"{self.model_name}: input {fmt_shape(self.model_input)} is too small: layer "
                f"{name} ({_describe(m)}) gets {fmt_shape(x)} and would output "
                f"{fmt_shape(out)}", layer=name, layer_type=type(m).__name__, layer_input=x)
        return out


def _describe(m: nn.Module) -> str:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d, nn.AvgPool2d)):
        k = _pair(m.kernel_size)
        s = _pair(m.stride)
        return f"{type(m).__name__} {k[0]}x{k[1]}/{s[0]}"
    return type(m).__name__


def _rule_for(m: nn.Module) -> Callable[[Any, Shape], Shape] | None:
    for cls, rule in _RULES:
        if isinstance(m, cls):
            return rule
    return None


def _spatial(x: Shape, m: Any, ceil: bool = False) -> tuple[int, ...]:
    k, s = _pair(m.kernel_size), _pair(m.stride if m.stride is not None else m.kernel_size)
    d = _pair(getattr(m, "dilation", 1))
    p = m.padding
    if p == "valid":
        p = (0, 0)
    if p == "same":
        return tuple(x[1:3])
    p = _pair(p)
    return tuple(conv_out(x[1 + i], k[i], s[i], p[i], d[i], ceil) for i in range(2))


class _Mismatch(Exception):
    """Raised by a rule when the input has the wrong number of channels or features."""


def _expect(got: int, want: int, what: str) -> None:
    if got != want:
        raise _Mismatch(f"expects {want} {what} but gets {got}")


def _conv(m: nn.Conv2d, x: Shape) -> Shape:
    if len(x) != 3:
        raise _Mismatch(f"expects a C x H x W input but gets {fmt_shape(x)}")
    _expect(x[0], m.in_channels, "input channels")
    return (m.out_channels, *_spatial(x, m))


def _conv_t(m: nn.ConvTranspose2d, x: Shape) -> Shape:
    _expect(x[0], m.in_channels, "input channels")
    k, s, p = _pair(m.kernel_size), _pair(m.stride), _pair(m.padding)
    d, op = _pair(m.dilation), _pair(m.output_padding)
    hw = tuple(conv_transpose_out(x[1 + i], k[i], s[i], p[i], d[i], op[i]) for i in range(2))
    return (m.out_channels, *hw)


def _pool(m: nn.MaxPool2d | nn.AvgPool2d, x: Shape) -> Shape:
    return (x[0], *_spatial(x, m, bool(m.ceil_mode)))


def _adaptive(m: nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d, x: Shape) -> Shape:
    size = _pair(m.output_size) if m.output_size is not None else x[1:3]
    return (x[0], *(x[1 + i] if size[i] is None else size[i] for i in range(2)))


def _linear(m: nn.Linear, x: Shape) -> Shape:
    _expect(x[-1], m.in_features, "input features")
    return (*x[:-1], m.out_features)


def _batchnorm(m: nn.modules.batchnorm._BatchNorm, x: Shape) -> Shape:
    _expect(x[0], m.num_features, "channels")
    return tuple(x)


def _flatten(m: nn.Flatten, x: Shape) -> Shape:
    # Per-sample shapes have no batch dimension: torch's dim 1 is our dim 0.
    start = m.start_dim - 1 if m.start_dim > 0 else len(x) + m.start_dim
    end = m.end_dim - 1 if m.end_dim > 0 else len(x) + m.end_dim
    return (*x[:start], math.prod(x[start:end + 1]), *x[end + 1:])


def _upsample(m: nn.Upsample, x: Shape) -> Shape:
    if m.size is not None:
        return (x[0], *_pair(m.size))
    f = m.scale_factor if isinstance(m.scale_factor, tuple) else (m.scale_factor,) * 2
    return (x[0], *(math.floor(x[1 + i] * f[i]) for i in range(2)))


_RULES: list[tuple[type, Callable[[Any, Shape], Shape]]] = [
    (nn.ConvTranspose2d, _conv_t),
    (nn.Conv2d, _conv),
    (nn.MaxPool2d, _pool),
    (nn.AvgPool2d, _pool),
    (nn.AdaptiveAvgPool2d, _adaptive),
    (nn.AdaptiveMaxPool2d, _adaptive),
    (nn.Linear, _linear),
    (nn.modules.batchnorm._BatchNorm, _batchnorm),
    (nn.Flatten, _flatten),
    (nn.Upsample, _upsample),
]


# --------------------------------------------------------------------------- public API
def build_for_summary(name: str, *, small: bool = False, **overrides: Any) -> tuple[nn.Module, Shape]:
    """Build a registered model on the ``meta`` device (no memory, no init time).

    Returns the model and its default input shape (the reference's, or the small variant's).
    """
    import torch

    from opskit.models.registry import get_model_info

    info = get_model_info(name)
    cfg = {**(info.small if small else info.reference), **overrides}
    with torch.device("meta"):
        model = info.builder(**cfg)
    return model, tuple(info.small_input_shape if small else info.input_shape)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Parameters of ``model``; a tensor shared by two layers counts once (as
    ``model.parameters()`` yields it once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _walk(model: nn.Module, name: str, input_shape: Shape) -> ModelSummary:
    tracer = Tracer(model, name, tuple(input_shape))
    out = tracer(model, tuple(input_shape))
    return ModelSummary(
        model=name,
        input_shape=tuple(input_shape),
        output_shape=out,
        rows=tracer.rows,
        total_params=count_parameters(model),
        trainable_params=count_parameters(model, trainable_only=True),
    )


def parameter_summary(model: nn.Module, name: str | None = None) -> ModelSummary:
    """Parameters per layer without shapes, for models the walk cannot follow (e.g. RNNs)."""
    rows = []
    for mod_name, m in model.named_modules():
        if mod_name and not any(True for _ in m.children()):
            depth = mod_name.count(".")
            rows.append(LayerRow(mod_name, type(m).__name__, depth, (), (), leaf_params(m)))
    return ModelSummary(
        model=name or type(model).__name__, input_shape=(), output_shape=(), rows=rows,
        total_params=count_parameters(model),
        trainable_params=count_parameters(model, trainable_only=True),
    )


def _fits(model: nn.Module, name: str, shape: Shape) -> bool:
    try:
        _walk(model, name, shape)
    except InputTooSmallError:
        return False
    return True


def smallest_square_input(model: nn.Module, channels: int, name: str = "model",
                          limit: int = 4096) -> int | None:
    """The smallest S for which ``channels x S x S`` fits (binary search), or None."""
    if not _fits(model, name, (channels, limit, limit)):
        return None
    lo, hi = 1, limit  # invariant: hi fits
    while lo < hi:
        mid = (lo + hi) // 2
        if _fits(model, name, (channels, mid, mid)):
            hi = mid
        else:
            lo = mid + 1
    return hi


def summarize(model: nn.Module | str, input_shape: Sequence[int] | None = None, *,
              small: bool = False, name: str | None = None) -> ModelSummary:
    """Per-layer output shapes and parameter counts of ``model`` for one input sample.

    ``model`` is a module or a registered name (built on the meta device; ``small`` picks the
    small variant). ``input_shape`` is ``(C, H, W)`` without the batch dimension; by default
    the registered input shape. Raises ``InputTooSmallError`` (naming the layer, with the
    smallest square input that fits) or ``InputShapeError``.
    """
    if isinstance(model, str):
        name = name or model
        model, default_shape = build_for_summary(model, small=small)
        input_shape = tuple(input_shape or default_shape)
    name = name or type(model).__name__
    if not input_shape:
        raise ValueError(f"{name}: an input shape (C, H, W) is needed")
    shape = tuple(int(d) for d in input_shape)
    if any(d <= 0 for d in shape):
        raise InputShapeError(f"{name}: input shape {fmt_shape(shape)} has a dimension <= 0",
                              layer="(input)", layer_type="input", layer_input=shape)
    try:
        return _walk(model, name, shape)
    except InputTooSmallError as exc:
        exc.min_size = smallest_square_input(model, shape[0], name)
        if exc.min_size is not None:
            fix = f"; the smallest square input that fits is {shape[0]}x{exc.min_size}x{exc.min_size}"
            exc.args = (exc.args[0] + fix,)
        raise


def check_input(model: nn.Module | str, input_shape: Sequence[int], *,
                small: bool = False) -> ModelSummary:
    """Check, before any training, that ``input_shape`` (C, H, W) goes through ``model``.

    Returns the summary when it does; raises ``InputTooSmallError`` (a ``ValueError`` that
    names the layer) or ``InputShapeError`` when it does not.
    """
    return summarize(model, input_shape, small=small)


def parse_input_shape(text: str) -> Shape:
    """``"3x224x224"`` (or ``3,224,224``) -> ``(3, 224, 224)``; ValueError if malformed."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or any(d <= 0 for d in shape):
        raise ValueError(f"malformed input shape {text!r}: expected CxHxW with positive "
                         "integers, e.g. 3x224x224")
    return shape
