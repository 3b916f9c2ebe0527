"""Receptive fields: computed analytically over the traced forward graph, and measured from gradients.

Conventions:
* The receptive field *size* of a unit is the side, in input pixels, of the window of the input it can
  depend on (padding included, so it may exceed the image); the *jump* is the distance in input pixels
  between horizontally (or vertically) adjacent units of the same map — the map's total stride.
* A k×k layer with stride s and dilation d maps (size r, jump j) to (r + (k − 1)·d·j, j·s). Pointwise
  layers (BN, ReLU, LRN, dropout, 1×1 convs) keep r and j.
* Where paths meet — the branches of an Inception module (concatenated) or a residual block's branch and
  shortcut (added) — the field is the largest of them: for an Inception module the widest branch, for a
  residual block its branch, since the shortcut sees less. A ResNet and its plain twin therefore have the
  same receptive field.
* Once pooling or flattening removes the spatial axes the map is *global*: every unit sees
  r + (H − 1)·j pixels, H being the side of the map that was collapsed.

:func:`propagate` is the per-op rule :func:`depthlab.analysis.summarize` applies to every tensor operation
of a traced forward pass (so functional ops between modules count too). :func:`measure_receptive_field` is
the independent check: the input gradient of one central output unit, taken with every weight set positive
so that no pixel inside the field can get a zero gradient by cancellation.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from depthlab.errors import UsageError

__all__ = [
    "RF",
    "stacked_receptive_field",
    "propagate",
    "MeasuredRF",
    "measure_receptive_field",
    "default_feature_module",
]

aten = torch.ops.aten


@dataclass(frozen=True)
class RF:
    """Receptive field of every unit of one activation tensor, per spatial axis (height, width).

    ``depth`` counts the conv and linear layers on the longest path from the input to this tensor.
    ``spatial`` is False once the spatial axes have been pooled or flattened away; ``known`` is False
    after an operation whose effect on the field is not modelled (sizes and jumps are then meaningless).
    """

    size: tuple[int, int] = (1, 1)
    jump: tuple[int, int] = (1, 1)
    depth: int = 0
    spatial: bool = True
    known: bool = True

    @property
    def side(self) -> int | None:
        """The larger of the two sizes (the two are equal for square kernels), None if unknown."""
        return max(self.size) if self.known else None

    @property
    def stride(self) -> int | None:
        """The larger of the two jumps, None if unknown."""
        return max(self.jump) if self.known else None


def stacked_receptive_field(layers: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """(size, jump) after a chain of square layers given as (kernel, stride); e.g. two 3×3/1 → (5, 1)."""
    size, jump = 1, 1
    for kernel, stride in layers:
        if kernel < 1 or stride < 1:
            raise UsageError(f"kernel and stride must be positive, got ({kernel}, {stride})")
        size += (kernel - 1) * jump
        jump *= stride
    return size, jump


def merge(records: Sequence[RF]) -> RF:
    """Where paths meet (add, concatenate, any elementwise op): the largest field on each axis."""
    return RF(
        size=(max(r.size[0] for r in records), max(r.size[1] for r in records)),
        jump=(max(r.jump[0] for r in records), max(r.jump[1] for r in records)),
        depth=max(r.depth for r in records),
        spatial=all(r.spatial for r in records),
        known=all(r.known for r in records),
    )


def _pair(value: Any, default: tuple[int, int] | None = None) -> tuple[int, int]:
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        if default is None:
            raise ValueError("missing kernel size")
        return default
    if isinstance(value, int):
        return (value, value)
    values = tuple(int(v) for v in value)
    return (values[0], values[0]) if len(values) == 1 else (values[0], values[1])


def _window(rf: RF, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple[int, int]) -> RF:
    size = tuple(rf.size[a] + (kernel[a] - 1) * dilation[a] * rf.jump[a] for a in range(2))
    jump = tuple(rf.jump[a] * stride[a] for a in range(2))
    return replace(rf, size=size, jump=jump)  # type: ignore[arg-type]


def _collapse(rf: RF, extent: Sequence[int], axes: Sequence[int] = (0, 1)) -> RF:
    """The spatial ``axes`` (0 = height, 1 = width) of a map of side ``extent`` pooled to one unit."""
    size = list(rf.size)
    for a in axes:
        size[a] = rf.size[a] + (int(extent[a]) - 1) * rf.jump[a]
    return replace(rf, size=(size[0], size[1]), spatial=False)


def _spatial_dims(dims: Any, ndim: int) -> set[int]:
    if dims is None:
        return {0, 1}
    dims = [dims] if isinstance(dims, int) else list(dims)
    if not dims:  # an empty dim list reduces over everything
        return {0, 1}
    return {d % ndim - 2 for d in dims if d % ndim >= 2}


_POOLS_WITH_DILATION = {aten.max_pool2d_with_indices.default, aten.max_pool2d.default}
_POOLS = _POOLS_WITH_DILATION | {aten.avg_pool2d.default}
_ADAPTIVE_POOLS = {aten._adaptive_avg_pool2d.default, aten.adaptive_max_pool2d.default}
_REDUCTIONS = {aten.mean.dim, aten.sum.dim_IntList, aten.amax.default, aten.max.dim}
_RESHAPES = {aten.view.default, aten._unsafe_view.default, aten.reshape.default, aten._reshape_alias.default}
_MATMULS = {aten.mm.default, aten.addmm.default, aten.bmm.default, aten.baddbmm.default}


def propagate(
    func: Any, args: Sequence[Any], out: torch.Tensor, lookup: Callable[[Any], RF | None]
) -> RF | None:
    """The receptive field of ``out = func(*args)`` from those of its inputs (``lookup`` gives them).

    Returns None when no input is an activation (e.g. ops on weights only).
    """
    tensors = [a for a in _flat(args) if isinstance(a, torch.Tensor)]
    recorded = [(t, r) for t in tensors if (r := lookup(t)) is not None]
    if not recorded:
        return None
    x, rf = recorded[0]
    first = args[0] if args else None
    if isinstance(first, torch.Tensor) and lookup(first) is not None:
        x, rf = first, lookup(first)  # type: ignore[assignment]

    if func is aten.convolution.default:
        weight, stride, dilation, transposed = args[1], args[3], args[5], args[6]
        if transposed or x.dim() != 4:
            return replace(rf, known=False, depth=rf.depth + 1)
        out_rf = _window(rf, (weight.shape[2], weight.shape[3]), _pair(stride), _pair(dilation))
        return replace(out_rf, depth=rf.depth + 1)
    if func in _POOLS:
        kernel = _pair(args[1])
        stride = _pair(args[2] if len(args) > 2 else None, kernel)
        dilation = _pair(args[4]) if func in _POOLS_WITH_DILATION and len(args) > 4 else (1, 1)
        return _window(rf, kernel, stride, dilation)
    if func in _ADAPTIVE_POOLS:
        in_hw, out_hw = x.shape[-2:], out.shape[-2:]
        # Adaptive windows are ⌈in/out⌉ wide at most, about in/out apart.
        kernel = tuple(math.ceil(i / o) for i, o in zip(in_hw, out_hw, strict=True))
        stride = tuple(max(1, i // o) for i, o in zip(in_hw, out_hw, strict=True))
        out_rf = _window(rf, kernel, stride, (1, 1))  # type: ignore[arg-type]
        if tuple(out_hw) == (1, 1) and tuple(in_hw) != (1, 1):
            out_rf = replace(out_rf, spatial=False)
        return out_rf
    if func in _REDUCTIONS and rf.spatial and x.dim() == 4:
        axes = _spatial_dims(args[1] if len(args) > 1 else None, x.dim())
        if not axes:
            return rf
        return _collapse(rf, x.shape[-2:], sorted(axes))
    if func in _RESHAPES:
        if not rf.spatial or (out.dim() == 4 and x.dim() == 4 and out.shape[-2:] == x.shape[-2:]):
            return rf
        if x.dim() == 4 and out.dim() < 4:  # flatten: every later unit sees the whole map
            return _collapse(rf, x.shape[-2:])
        return replace(rf, known=False)
    if func is aten.slice.Tensor and rf.spatial and x.dim() == 4:
        dim = (args[1] if len(args) > 1 else 0) % 4
        step = args[4] if len(args) > 4 else 1
        if dim >= 2 and step > 1:  # x[..., ::s]: subsampling multiplies the jump
            jump = list(rf.jump)
            jump[dim - 2] *= step
            return replace(rf, jump=(jump[0], jump[1]))
        return rf
    if func is aten.constant_pad_nd.default:
        return rf  # padding moves no unit's window
    if func in _MATMULS:  # linear layers (after flatten, the field is already global)
        merged = merge([r for _, r in recorded])
        return replace(merged, depth=merged.depth + 1)
    if func in (aten.cat.default, aten.stack.default):
        return merge([r for _, r in recorded])
    # Anything else: pointwise if every activation input has the output's spatial shape.
    records = [r for _, r in recorded]
    merged = merge(records)
    if not merged.spatial:
        return merged
    same = all(t.dim() == 4 for t, _ in recorded) and out.dim() == 4
    if same and all(t.shape[-2:] == out.shape[-2:] for t, _ in recorded):
        return merged
    return replace(merged, known=False)


def _flat(args: Any) -> list[Any]:
    items: list[Any] = []
    for a in args:
        if isinstance(a, (list, tuple)):
            items.extend(_flat(a))
        else:
            items.append(a)
    return items


# ------------------------------------------------------------------------------------ empirical check
@dataclass(frozen=True)
class MeasuredRF:
    """The receptive field of one central unit, measured as the extent of its nonzero input gradient.

    ``size`` is (height, width) in pixels; ``unit`` the (row, col) of the unit in the module's output map.
    ``clipped`` means the field reaches the image border, so ``size`` is only a lower bound: use a larger
    input to measure it fully.
    """

    module: str
    input_shape: tuple[int, int, int]
    unit: tuple[int, int]
    size: tuple[int, int]
    clipped: bool

    @property
    def side(self) -> int:
        return max(self.size)


class _MaxToAvgPool(TorchFunctionMode):
    """Max-pooling passes the gradient to one pixel per window (the first of equal maxima on a constant
    input), hiding the others; an average pool of the same geometry has the same field and passes it to all.
    """

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = dict(kwargs or {})
        if func is F.max_pool2d:
            names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
            bound = dict(zip(names, args, strict=False)) | kwargs
            if _pair(bound.get("dilation", 1)) != (1, 1) or bound.get("return_indices", False):
                raise UsageError(
                    "measure_receptive_field: dilated or index-returning max-pooling is not supported"
                )
            return F.avg_pool2d(
                bound["input"],
                bound["kernel_size"],
                bound.get("stride") or None,
                bound.get("padding", 0),
                bound.get("ceil_mode", False),
                count_include_pad=True,
            )
        return func(*args, **kwargs)


def default_feature_module(model: nn.Module) -> str:
    """The module whose output is the model's last feature map: the last stage of a zoo model."""
    stages = getattr(model, "stages", None)
    if isinstance(stages, nn.Sequential) and len(stages) > 0:
        return f"stages.{len(stages) - 1}"
    raise UsageError(
        f"{type(model).__name__} has no .stages; name the module whose output to measure (module=...)"
    )


class _Reached(Exception):
    def __init__(self, output: torch.Tensor) -> None:
        super().__init__()
        self.output = output


def _positive_constants(model: nn.Module, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Weights 1/fan-in (every output a positive average), biases 0, batch norm the identity.

    Constants are expanded scalars, so even VGG's 100M-weight fc6 costs no memory.
    """
    values: dict[str, torch.Tensor] = {}

    def const(value: float, like: torch.Tensor) -> torch.Tensor:
        # On the CPU whatever the model's device: the measurement runs there (the input below is CPU).
        return torch.full((), value, dtype=dtype, device="cpu").expand(like.shape)

    for prefix, m in model.named_modules():
        dot = f"{prefix}." if prefix else ""
        for name, p in list(m.named_parameters(recurse=False)) + list(m.named_buffers(recurse=False)):
            key = dot + name
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)) and name == "weight":
                w = const(1.0 / max(1, p[0].numel()), p)
                # Convs get real (contiguous) weights: stride-0 weights send them down a slow path.
                values[key] = w if isinstance(m, nn.Linear) else w.contiguous()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm) and name in ("weight", "running_var"):
                values[key] = const(1.0, p)
            elif name in ("bias", "running_mean") or not p.is_floating_point():
                values[key] = p if not p.is_floating_point() else const(0.0, p)
            else:  # an unknown layer's parameter: keep its value (it cannot zero the gradient by sign)
                values[key] = p.detach().abs().to(device="cpu", dtype=dtype)
    return values


def measure_receptive_field(
    model: nn.Module,
    input_shape: Sequence[int],
    module: str | None = None,
    *,
    dtype: torch.dtype = torch.float64,
) -> MeasuredRF:
    """Measure the receptive field of the central unit of ``module``'s output (default: the last stage).

    Method: every conv/linear weight is set to 1/fan-in, biases to 0, batch norm to the identity (eval
    mode), and max-pools are replaced by average pools of the same geometry; the input is all ones. Then
    every activation is positive, every ReLU passes its gradient, and the gradient of the sum over channels
    of the central unit reaches exactly the pixels in its field (a zero can only come from outside it).
    float64 keeps the tiny gradients at the edge of a deep field from underflowing. The model's own weights
    and mode flags are left untouched; the forward pass stops at ``module``.
    """
    shape = _check_shape(input_shape)
    name = default_feature_module(model) if module is None else module
    modules = dict(model.named_modules())
    if name not in modules:
        close = difflib.get_close_matches(name, list(modules), n=5)
        raise UsageError(f"no module named {name!r} in {type(model).__name__}; closest: {', '.join(close)}")

    def stop(_m: nn.Module, _inp: Any, output: Any) -> None:
        raise _Reached(output[0] if isinstance(output, (tuple, list)) else output)

    handle = modules[name].register_forward_hook(stop)
    flags = {m: m.training for m in model.modules()}
    x = torch.ones(1, *shape, dtype=dtype, device="cpu", requires_grad=True)
    try:
        model.eval()
        with _MaxToAvgPool():
            torch.func.functional_call(model, _positive_constants(model, dtype), (x,))
        raise UsageError(f"module {name!r} did not run in {type(model).__name__}'s forward pass")
    except _Reached as reached:
        out = reached.output
    finally:
        handle.remove()
        for m, flag in flags.items():
            m.train(flag)
    if out.dim() == 4:
        unit = (out.shape[2] // 2, out.shape[3] // 2)
        target = out[0, :, unit[0], unit[1]].sum()
    else:
        unit, target = (0, 0), out[0].sum()
    (grad,) = torch.autograd.grad(target, x)
    seen = grad[0].abs().sum(0) > 0  # (H, W)
    rows = seen.any(1).nonzero().flatten()
    cols = seen.any(0).nonzero().flatten()
    if len(rows) == 0:
        raise UsageError(f"the gradient of {name!r} did not reach the input")
    size = (int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1))
    h, w = shape[1], shape[2]
    clipped = bool(rows[0] == 0 or rows[-1] == h - 1 or cols[0] == 0 or cols[-1] == w - 1)
    return MeasuredRF(name, shape, unit, size, clipped)


def _check_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(v, int) and v > 0 for v in shape):
        raise UsageError(f"input_shape must be three positive integers (C, H, W), got {input_shape!r}")
    return shape  # type: ignore[return-value]
