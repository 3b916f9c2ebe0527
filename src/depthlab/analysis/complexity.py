"""Per-layer parameters, MACs, receptive field and activation memory of any model, from one traced pass.

Conventions (every depthlab output that shows these numbers states them):
* **MACs** count the multiply-accumulates of Conv2d and Linear layers — at op level, ``aten.convolution``
  and the matrix products (``mm``, ``addmm``, ``bmm``, ``baddbmm``) — for one image (batch 1). Biases,
  batch norm, ReLU, pooling and additions are not counted. **FLOPs = 2 × MACs**, the convention of
  ``torch.utils.flop_counter.FlopCounterMode``, whose total these counts equal.
* **Params** of a layer include those of its children; the total counts shared parameters once.
* **Receptive field** (size and jump, in input pixels) of a layer's output: see
  :mod:`depthlab.analysis.receptive_field`. ``depth`` is the number of conv and linear layers on the
  longest path from the input ("weighted layers", as the papers count them).
* **Activation bytes** (batch 1): ``activation_bytes`` is the size of every tensor the forward pass
  allocates from the input (layer outputs, and intermediates such as concatenations), as if none were
  freed. ``saved_bytes`` is what a training step keeps for the backward pass: the distinct tensors autograd
  saves (inputs of convs, ReLU outputs, max-pool indices, ...), weights excluded. Both are taken in eval
  mode, so batch-norm statistics, dropout masks and GoogLeNet's aux heads are not included.

The pass runs on the meta device: no weights are read and no arithmetic is done, so a summary of
ResNet-152 at 224×224 takes well under a second, whatever device the model lives on.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from depthlab.analysis.receptive_field import RF, _check_shape, propagate
from depthlab.errors import UsageError
from depthlab.i18n import N_

__all__ = ["LayerRow", "ModelSummary", "Trace", "trace", "summarize", "CONVENTIONS"]

CONVENTIONS = N_("MACs count Conv2d and Linear (per image); FLOPs = 2 × MACs")  # shown as _(CONVENTIONS)

aten = torch.ops.aten
_EVAL_BATCH_NORMS = (aten.native_batch_norm.default, aten._native_batch_norm_legit_no_training.default)
# Layers that act on each pixel separately but whose op decomposition the tracer does not model
# (LRN reshapes to 5-D and pools over channels): their output keeps their input's receptive field.
_SPATIALLY_POINTWISE = (nn.LocalResponseNorm, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)


def op_macs(func: Any, args: Sequence[Any], out: Any) -> int:
    """Multiply-accumulates of one aten op (0 for anything but convolutions and matrix products)."""
    if func is aten.convolution.default:
        x, w, transposed = args[0], args[1], args[6]
        spatial = x.shape[2:] if transposed else out.shape[2:]
        return int(x.shape[0] * math.prod(spatial) * w.numel())
    if func is aten.mm.default:
        a, b = args
        return int(a.shape[0] * a.shape[1] * b.shape[1])
    if func is aten.addmm.default:
        a, b = args[1], args[2]
        return int(a.shape[0] * a.shape[1] * b.shape[1])
    if func is aten.bmm.default:
        a, b = args
        return int(a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2])
    if func is aten.baddbmm.default:
        a, b = args[1], args[2]
        return int(a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2])
    return 0


@dataclass
class Trace:
    """Raw per-module results of one traced forward pass (names are qualified module names; "" is the
    model). MACs and bytes of a module include everything that ran inside it."""

    input_shape: tuple[int, ...]
    macs: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    activation_bytes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    saved_bytes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    output_shape: dict[str, tuple[int, ...]] = field(default_factory=dict)
    rf: dict[str, RF] = field(default_factory=dict)
    feature_rf: RF | None = None  # the last map before the spatial axes are pooled or flattened away
    output_rf: RF | None = None


class _Tracer(TorchDispatchMode):
    """Sees every aten op of the forward pass: counts MACs and allocations for the modules running, and
    carries a receptive-field record along every activation tensor."""

    def __init__(self, result: Trace, weights: set[int]) -> None:
        super().__init__()
        self.result = result
        self.weights = weights  # storage ids of parameters and buffers
        self.records: dict[int, RF] = {}
        self.alive: list[torch.Tensor] = []  # keeps traced tensors alive, so their ids stay unique
        self.stack: list[str] = [""]
        self.saved: set[int] = set()
        self.stats: set[int] = set()  # storage ids of eval-mode batch-norm statistics (not saved bytes)
        self._owners: dict[str, tuple[str, ...]] = {}

    def owners(self) -> tuple[str, ...]:
        """The innermost running module and its ancestors in the module tree (not the call stack, which
        skips containers a model's forward bypasses, e.g. GoogLeNet calling its stages' children)."""
        inner = self.stack[-1]
        if inner not in self._owners:
            parts = inner.split(".") if inner else []
            self._owners[inner] = tuple(".".join(parts[:i]) for i in range(len(parts), -1, -1))
        return self._owners[inner]

    def lookup(self, t: Any) -> RF | None:
        return self.records.get(id(t)) if isinstance(t, torch.Tensor) else None

    def set(self, t: torch.Tensor, rf: RF) -> None:
        self.records[id(t)] = rf
        self.alive.append(t)

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        macs = op_macs(func, args, out)
        if macs:
            for name in self.owners():
                self.result.macs[name] += macs
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        if func in _EVAL_BATCH_NORMS and not (func is aten.native_batch_norm.default and args[5]):
            # Eval-mode BN: the meta kernel returns per-channel mean/invstd that the CPU and CUDA kernels
            # return empty; either way they are not activations (the module docstring leaves them out).
            self.stats.update(o.untyped_storage()._cdata for o in outs[1:] if isinstance(o, torch.Tensor))
        first = outs[0] if outs and isinstance(outs[0], torch.Tensor) else None
        if first is None:
            return out
        rf = propagate(func, list(args) + list(kwargs.values()), first, self.lookup)
        if rf is None:
            return out
        inputs = [a for a in args if isinstance(a, torch.Tensor) and self.lookup(a) is not None]
        if self.result.feature_rf is None and not rf.spatial and inputs and self.lookup(inputs[0]).spatial:
            self.result.feature_rf = self.lookup(inputs[0])
        # Fresh allocations only: views and in-place results alias an input. The first output is the
        # activation; extra outputs (max-pool indices, BN statistics) matter only if saved for backward.
        returns = func._schema.returns
        if returns and returns[0].alias_info is None:
            nbytes = first.numel() * first.element_size()
            for name in self.owners():
                self.result.activation_bytes[name] += nbytes
        for o in outs:
            if isinstance(o, torch.Tensor):
                self.set(o, rf)
        return out

    # --- autograd's saved tensors (training-step memory) -------------------------------------------
    def pack(self, t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        key = storage._cdata
        if key not in self.weights and key not in self.saved and key not in self.stats:
            self.saved.add(key)
            self.alive.append(t)
            for name in self.owners():
                self.result.saved_bytes[name] += storage.nbytes()
        return t


def _meta_like(t: torch.Tensor, requires_grad: bool) -> torch.Tensor:
    return torch.empty_like(t, device="meta").requires_grad_(requires_grad)


def trace(model: nn.Module, input_shape: Sequence[int], batch_size: int = 1) -> Trace:
    """Run ``model`` once on a meta input of shape (batch_size, *input_shape), in eval mode with autograd
    on, and record per module: MACs, output shape, receptive field, and allocated and saved bytes.

    The model's own weights, buffers and mode flags are untouched (it runs on meta copies).
    A model that cannot take the input raises ``ValueError`` naming the input.
    """
    shape = _check_shape(input_shape)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size must be a positive integer, got {batch_size!r}")
    # Every weight requires grad, so the training-step memory is that of training the whole model.
    state = {k: _meta_like(p, p.is_floating_point()) for k, p in model.named_parameters()}
    state |= {k: _meta_like(b, False) for k, b in model.named_buffers()}
    result = Trace(input_shape=shape)
    tracer = _Tracer(result, {t.untyped_storage()._cdata for t in state.values()})
    x = torch.zeros(batch_size, *shape, device="meta")
    tracer.set(x, RF())

    def pre_hook(name: str) -> Any:
        def hook(_m: nn.Module, _inp: Any) -> None:
            tracer.stack.append(name)

        return hook

    def post_hook(name: str) -> Any:
        def hook(module: nn.Module, inp: Any, output: Any) -> None:
            tracer.stack.pop()
            out = output[0] if isinstance(output, (tuple, list)) and output else output
            if not isinstance(out, torch.Tensor):
                return
            if isinstance(module, _SPATIALLY_POINTWISE) and inp and (rf := tracer.lookup(inp[0])):
                tracer.set(out, rf)
            result.output_shape[name] = tuple(out.shape)
            if (rf := tracer.lookup(out)) is not None:
                result.rf[name] = rf

        return hook

    handles = []
    for name, module in model.named_modules():
        if name:
            handles.append(module.register_forward_pre_hook(pre_hook(name)))
            handles.append(module.register_forward_hook(post_hook(name)))
    flags = {m: m.training for m in model.modules()}
    try:
        model.eval()
        with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(tracer.pack, lambda t: t), tracer:
            output = torch.func.functional_call(model, state, (x,))
    except RuntimeError as exc:  # shape errors deep inside a layer: name the input instead
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(
            f"{type(model).__name__} cannot run on a {'x'.join(map(str, shape))} input: {first}"
        ) from exc
    finally:
        for h in handles:
            h.remove()
        for m, flag in flags.items():
            m.train(flag)
    out = output[0] if isinstance(output, (tuple, list)) else output
    _fill_bypassed(model, result)
    result.output_shape[""] = tuple(out.shape)
    result.output_rf = tracer.lookup(out)
    if result.feature_rf is None:
        result.feature_rf = result.output_rf
    return result


def _fill_bypassed(module: nn.Module, result: Trace, prefix: str = "") -> bool:
    """A container the forward bypassed (calling its children directly) gets the output of its last child
    that ran. Returns whether ``module`` (or anything inside it) ran."""
    last: str | None = None
    for name, child in module.named_children():
        qualified = f"{prefix}.{name}" if prefix else name
        if _fill_bypassed(child, result, qualified):
            last = qualified
    if prefix and prefix not in result.output_shape and last is not None:
        result.output_shape[prefix] = result.output_shape[last]
        if last in result.rf:
            result.rf[prefix] = result.rf[last]
    return prefix in result.output_shape or last is not None


# ------------------------------------------------------------------------------------------- summary
@dataclass(frozen=True)
class LayerRow:
    """One module of the model. ``level`` is its nesting depth (0 = a child of the model); ``params``,
    ``macs`` and the byte counts include its children. ``output_shape`` is None if it did not run (e.g.
    aux heads in eval mode). ``receptive_field``/``rf_jump`` are None where not modelled."""

    name: str
    type: str
    level: int
    output_shape: tuple[int, ...] | None
    params: int
    macs: int
    receptive_field: int | None
    rf_jump: int | None
    activation_bytes: int
    saved_bytes: int
    is_leaf: bool

    @property
    def flops(self) -> int:
        return 2 * self.macs


@dataclass(frozen=True)
class ModelSummary:
    """A model's layers and totals for one input (batch 1). MACs count Conv2d and Linear; FLOPs = 2 × MACs.

    ``receptive_field``/``rf_jump``: of the last feature map (before global pooling or flattening).
    ``depth``: conv + linear layers on the longest path. ``activation_bytes``: all tensors the forward pass
    allocates; ``saved_bytes``: tensors kept for the backward pass of a training step (see the module
    docstring for both).
    """

    model: str
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, ...]
    layers: tuple[LayerRow, ...]
    params: int
    trainable_params: int
    macs: int
    depth: int
    receptive_field: int | None
    rf_jump: int | None
    activation_bytes: int
    saved_bytes: int

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def rows(self, depth: int | None = None) -> tuple[LayerRow, ...]:
        """Rows to show when collapsing to ``depth`` levels (1 = the model's children); None = all.

        A collapsed row's params and MACs include its hidden children, so the shown rows at any depth
        cover the whole model once.
        """
        if depth is None:
            return self.layers
        if not isinstance(depth, int) or depth < 1:
            raise UsageError(f"depth must be a positive integer (1 = top-level modules), got {depth!r}")
        return tuple(r for r in self.layers if r.level < depth)

    def row(self, name: str) -> LayerRow:
        for r in self.layers:
            if r.name == name:
                return r
        raise UsageError(f"no layer named {name!r} in {self.model}")

    def to_json(
        self, name: str | None = None, depth: int | None = None, layers: bool = True
    ) -> dict[str, Any]:
        """The stable JSON object of one model (see docs): totals, plus ``layers`` at ``depth``."""
        obj: dict[str, Any] = {
            "name": name or self.model,
            "input_shape": list(self.input_shape),
            "params": self.params,
            "macs": self.macs,
            "flops": self.flops,
            "depth": self.depth,
            "receptive_field": self.receptive_field,
            "activation_bytes": self.activation_bytes,
        }
        if layers:
            obj["layers"] = [
                {
                    "name": r.name,
                    "type": r.type,
                    "output_shape": list(r.output_shape) if r.output_shape is not None else None,
                    "params": r.params,
                    "macs": r.macs,
                    "receptive_field": r.receptive_field,
                }
                for r in self.rows(depth)
            ]
        return obj


def _param_count(module: nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


def summarize(model: nn.Module, input_shape: Sequence[int]) -> ModelSummary:
    """Per-layer and total parameters, MACs, receptive field and activation memory of ``model`` on one
    input of shape ``input_shape`` = (C, H, W), batch 1.

    MACs count Conv2d and Linear (op level); FLOPs = 2 × MACs, equal to ``torch.utils.flop_counter``'s
    count. Runs on meta copies of the weights (instant, no memory); the model is not modified.
    """
    t = trace(model, input_shape)
    rows = []
    for name, module in model.named_modules():
        if not name:
            continue
        rf = t.rf.get(name)
        known = rf is not None and rf.known
        rows.append(
            LayerRow(
                name=name,
                type=type(module).__name__,
                level=name.count("."),
                output_shape=t.output_shape.get(name),
                params=_param_count(module),
                macs=t.macs.get(name, 0),
                receptive_field=rf.side if known else None,  # type: ignore[union-attr]
                rf_jump=rf.stride if known else None,  # type: ignore[union-attr]
                activation_bytes=t.activation_bytes.get(name, 0),
                saved_bytes=t.saved_bytes.get(name, 0),
                is_leaf=next(module.children(), None) is None,
            )
        )
    feature = t.feature_rf
    return ModelSummary(
        model=type(model).__name__,
        input_shape=t.input_shape,  # type: ignore[arg-type]
        output_shape=t.output_shape[""],
        layers=tuple(rows),
        params=_param_count(model),
        trainable_params=_param_count(model, trainable=True),
        macs=t.macs.get("", 0),
        depth=t.output_rf.depth if t.output_rf is not None else 0,
        receptive_field=feature.side if feature is not None else None,
        rf_jump=feature.stride if feature is not None else None,
        activation_bytes=t.activation_bytes.get("", 0),
        saved_bytes=t.saved_bytes.get("", 0),
    )
