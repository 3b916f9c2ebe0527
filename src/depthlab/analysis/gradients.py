"""Gradient and signal diagnostics for any zoo model, measured on one batch.

One forward and one backward pass of the cross-entropy loss (mean over the batch, main logits only — a
GoogLeNet's aux heads are left out) give, for the model as it stands (at init or after training):

* **Weighted layers** (every ``nn.Conv2d`` and ``nn.Linear`` that ran, in execution order, 1-based
  ``index``): ``grad_norm`` = ‖∂L/∂W‖₂ (Frobenius norm of the weight's gradient, bias excluded),
  ``weight_norm`` = ‖W‖₂, and ``activation_std`` = the std over all elements of the layer's *unit* output —
  the output of the enclosing ``ConvNormAct`` (conv → norm → act) or ``NormActConv``, else of the
  conv/linear itself.
* **Blocks** (residual and plain blocks: modules with ``.branch`` and a class attribute ``residual``;
  for families without such blocks, the children of each stage): ``output_grad_norm`` = ‖∂L/∂y‖₂ for
  the block output ``y``; ``output_std``; ``output_norm`` = ‖y‖₂ (the forward signal); ``output_numel`` =
  the number of elements of ``y`` (batch × C × H × W); and for residual blocks ``branch_ratio`` =
  ‖F(x)‖ / ‖s(x)‖,
  where ``F(x)`` is the branch output before the addition and ``s(x)`` the shortcut output it is added to
  (``x`` itself for identity shortcuts). Norms are Frobenius norms over the whole batch tensor, so the
  ratio is sqrt(Σᵢ‖F(xᵢ)‖² / Σᵢ‖s(xᵢ)‖²).
* **Per element** (``BlockStat.grad_rms``, ``BlockStat.signal_rms``): a Frobenius norm grows with the
  square root of the tensor's size, and the blocks of one net differ in size (a CIFAR ResNet's first stage
  outputs 16×28×28 per image, its last 64×7×7: a factor 2 in √size), so every comparison *across blocks*
  uses the root mean square ‖·‖₂/√numel instead: :meth:`Diagnostics.block_grad_ratio`,
  :meth:`Diagnostics.forward_growth`, :meth:`Diagnostics.block_grad_rms`.
* **Output gradients under several losses** (:func:`output_gradients`): ‖∂L/∂y‖₂ at the outputs ``y`` of
  named modules, for several losses computed from *one* forward pass over the model's full output (e.g. a
  GoogLeNet's main and auxiliary losses), so the contribution of each loss is isolated with the same
  dropout masks and batch statistics.
* **Responses** (the ResNet paper's Fig. 7): for every 3×3 convolution, the std over all elements of its
  response after BN and before the nonlinearity or the addition — the output of ``ConvNormAct.norm``.
  In a pre-activation unit (``NormActConv``) nothing follows the conv before the addition, so the conv
  output is used. Without BN (``norm=None``) the "after BN" output is the conv output.

``mode="train"`` runs the pass with batch norm on batch statistics (what the optimiser sees); BN running
statistics are restored afterwards. ``mode="eval"`` uses running statistics (the paper measures Fig. 7
this way, on test images). The model's mode flags and its parameters' ``.grad`` are left untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from depthlab.errors import UsageError
from depthlab.io import read_number
from depthlab.layers import ConvNormAct, NormActConv
from depthlab.models.base import main_logits
from depthlab.registry import create_model

__all__ = [
    "LayerStat",
    "BlockStat",
    "ResponseStat",
    "Diagnostics",
    "diagnose",
    "find_blocks",
    "ModelFlow",
    "gradient_flow",
    "gradflow_json",
    "OutputGradients",
    "output_gradients",
]

MODES = ("train", "eval")


@dataclass(frozen=True)
class LayerStat:
    name: str  # qualified name of the conv/linear module
    index: int  # 1-based position in execution order among weighted layers
    kind: str  # "conv" or "linear"
    kernel_size: tuple[int, int] | None  # None for linear layers
    grad_norm: float  # ‖∂L/∂W‖₂
    weight_norm: float  # ‖W‖₂
    activation_std: float  # std of the enclosing unit's output (see module docstring)


@dataclass(frozen=True)
class BlockStat:
    name: str
    index: int  # 1-based, execution order
    residual: bool
    output_grad_norm: float  # ‖∂L/∂y‖₂ for the block output y
    output_std: float
    branch_ratio: float | None  # ‖F(x)‖ / ‖s(x)‖; None for plain blocks
    output_norm: float = float("nan")  # ‖y‖₂ over the batch (nan in files written before it was recorded)
    output_numel: int = 0  # elements of y over the batch (0 in files written before it was recorded)

    @property
    def grad_rms(self) -> float:
        """‖∂L/∂y‖₂ / √numel: the gradient per element (NaN when the size was not recorded)."""
        return self.output_grad_norm / self.output_numel**0.5 if self.output_numel > 0 else float("nan")

    @property
    def signal_rms(self) -> float:
        """‖y‖₂ / √numel: the forward signal per element (NaN when the size was not recorded)."""
        return self.output_norm / self.output_numel**0.5 if self.output_numel > 0 else float("nan")


@dataclass(frozen=True)
class ResponseStat:
    name: str  # qualified name of the unit (ConvNormAct / NormActConv) holding the 3×3 conv
    index: int  # 1-based among 3×3 layers, execution order
    std: float


@dataclass(frozen=True)
class Diagnostics:
    mode: str
    batch_size: int
    loss: float
    layers: tuple[LayerStat, ...]
    blocks: tuple[BlockStat, ...]
    responses: tuple[ResponseStat, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Diagnostics:
        # Measured numbers through read_number: a non-finite one (an overflowing net) was written as null and
        # is NaN here, "unknown". branch_ratio keeps its None (a plain block has no branch ratio).
        def numbers(d: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
            return {**d, **{k: read_number(d[k]) for k in keys if k in d}}

        def layer(d: dict[str, Any]) -> LayerStat:
            ks = d.get("kernel_size")
            d = numbers(d, ("grad_norm", "weight_norm", "activation_std"))
            return LayerStat(**{**d, "kernel_size": tuple(ks) if ks is not None else None})

        def block(d: dict[str, Any]) -> BlockStat:
            d = numbers(d, ("output_grad_norm", "output_std", "output_norm"))
            ratio = d.get("branch_ratio")
            return BlockStat(**{**d, "branch_ratio": read_number(ratio) if d["residual"] else None})

        return cls(
            mode=data["mode"],
            batch_size=int(data["batch_size"]),
            loss=read_number(data["loss"]),
            layers=tuple(layer(d) for d in data["layers"]),
            blocks=tuple(block(d) for d in data["blocks"]),
            responses=tuple(ResponseStat(**numbers(d, ("std",))) for d in data["responses"]),
        )

    def block_grad_rms(self) -> tuple[float, ...]:
        """The per-element gradient ‖∂L/∂y‖/√numel at each block's output, first block first."""
        return tuple(b.grad_rms for b in self.blocks)

    def block_grad_ratio(self) -> float:
        """The per-element gradient at the first block's output over that at the last block's (≪ 1: the
        backward signal shrinks toward the input). NaN without blocks, sizes, or a zero last gradient."""
        if not self.blocks or not self.blocks[-1].grad_rms > 0:
            return float("nan")
        return self.blocks[0].grad_rms / self.blocks[-1].grad_rms

    def forward_growth(self) -> float:
        """The per-element signal (RMS) at the last block's output over that at the first block's (≫ 1: the
        forward signal grows with depth)."""
        if not self.blocks or not self.blocks[0].signal_rms > 0:
            return float("nan")
        return self.blocks[-1].signal_rms / self.blocks[0].signal_rms

    def stage_steps(self) -> dict[str, float]:
        """The effective step size of each part: ‖∂L/∂W‖ / ‖W‖ over all conv/linear weights of the stem,
        of each stage (``stages.0``, ``stages.1``, …) and of the head (norms over the concatenated
        weights). Under batch norm a layer's output does not depend on the scale of its weights, so this
        ratio, not ‖∂L/∂W‖ alone, says how far one SGD step moves the layer."""
        grads: dict[str, float] = {}
        weights: dict[str, float] = {}
        for s in self.layers:
            parts = s.name.split(".")
            part = ".".join(parts[:2]) if parts[0] == "stages" and len(parts) > 1 else parts[0]
            grads[part] = grads.get(part, 0.0) + s.grad_norm**2
            weights[part] = weights.get(part, 0.0) + s.weight_norm**2
        return {k: (grads[k] ** 0.5 / weights[k] ** 0.5 if weights[k] > 0 else float("nan")) for k in grads}

    def grad_norm_ratio(self) -> float:
        """‖∂L/∂W‖ of the first weighted layer over that of the last (≪ 1: gradients vanish toward the input)."""
        if not self.layers or self.layers[-1].grad_norm == 0:
            return float("nan")
        return self.layers[0].grad_norm / self.layers[-1].grad_norm


def _is_block(module: nn.Module) -> bool:
    return isinstance(getattr(type(module), "residual", None), bool) and hasattr(module, "branch")


def find_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Residual/plain blocks of ``model`` (registration order); without any, the children of each stage."""
    blocks = [(name, m) for name, m in model.named_modules() if _is_block(m)]
    if blocks:
        # Keep outermost blocks only (a block never nests another in the zoo, but be safe).
        names = [n for n, _ in blocks]
        return [(n, m) for n, m in blocks if not any(n.startswith(o + ".") for o in names if o != n)]
    stages = getattr(model, "stages", None)
    if not isinstance(stages, nn.Module):
        return []
    out: list[tuple[str, nn.Module]] = []
    for sname, stage in stages.named_children():
        children = list(stage.named_children()) if isinstance(stage, nn.Sequential) else []
        if children:
            out += [(f"stages.{sname}.{cname}", child) for cname, child in children]
        else:
            out.append((f"stages.{sname}", stage))
    return out


def _units(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for name, m in model.named_modules():
        if isinstance(m, (ConvNormAct, NormActConv)):
            yield name, m


def _check_batch(mode: str, images: torch.Tensor, labels: torch.Tensor) -> None:
    """Refuse an unknown mode, or images and labels that are not one (N, C, H, W) batch and its N labels."""
    if mode not in MODES:
        raise UsageError(f"mode must be one of {MODES}, got {mode!r}")
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise UsageError(f"images must be a 4-D tensor (N, C, H, W), got {shape}")
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or labels.shape[0] != images.shape[0]:
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise UsageError(f"labels must be a 1-D tensor of {images.shape[0]} class indices, got {shape}")


def _std(t: torch.Tensor) -> torch.Tensor:
    """Std over all elements, detached, in fp32."""
    return t.detach().float().std()


def _norm(t: torch.Tensor) -> torch.Tensor:
    """Frobenius norm over all elements, detached, in fp32."""
    return torch.linalg.vector_norm(t.detach().float())


def _float(t: torch.Tensor | None) -> float:
    """A recorded 0-d tensor as a float; ``None`` (no gradient reached it) as 0."""
    return 0.0 if t is None else float(t)


@dataclass
class _Records:
    """What :func:`diagnose`'s forward hooks record in its one pass. Everything but ``block_out`` is computed
    immediately (detached), so later in-place ops cannot alter it."""

    weighted: dict[int, tuple[str, nn.Module]]  # id -> (name, module) of every trainable conv/linear
    layer_order: list[int] = field(default_factory=list)  # ids of weighted modules in execution order
    unit_std: dict[str, torch.Tensor] = field(default_factory=dict)
    own_std: dict[int, torch.Tensor] = field(default_factory=dict)
    responses: list[tuple[str, torch.Tensor]] = field(default_factory=list)
    block_out: dict[str, torch.Tensor] = field(default_factory=dict)  # live outputs (for autograd.grad)
    block_std: dict[str, torch.Tensor] = field(default_factory=dict)
    block_norm: dict[str, torch.Tensor] = field(default_factory=dict)
    block_numel: dict[str, int] = field(default_factory=dict)
    branch_norm: dict[str, torch.Tensor] = field(default_factory=dict)
    shortcut_norm: dict[str, torch.Tensor] = field(default_factory=dict)
    block_input_norm: dict[str, torch.Tensor] = field(default_factory=dict)
    block_order: list[str] = field(default_factory=list)

    def live_outputs(self) -> list[str]:
        """Blocks, in execution order, whose output is on the autograd graph."""
        return [n for n in self.block_order if self.block_out[n].requires_grad]


_Handles = list[torch.utils.hooks.RemovableHandle]


def _hook_layers(model: nn.Module, rec: _Records) -> _Handles:
    """Hooks on every weighted layer (its output std) and every conv unit (its output std; for 3×3 convs
    the Fig. 7 response)."""
    handles: _Handles = []

    def on_weighted(m: nn.Module, _inp: Any, out: torch.Tensor) -> None:
        if id(m) not in rec.own_std:  # a module called twice (weight sharing) is listed once
            rec.layer_order.append(id(m))
        rec.own_std[id(m)] = _std(out)

    for _, m in rec.weighted.values():
        handles.append(m.register_forward_hook(on_weighted))

    for uname, unit in _units(model):
        handles.append(
            unit.register_forward_hook(lambda m, i, o, n=uname: rec.unit_std.__setitem__(n, _std(o)))
        )
        if unit.conv.kernel_size == (3, 3):
            # ConvNormAct: the norm output (after BN, before ReLU); NormActConv: the conv output.
            probe = unit.norm if isinstance(unit, ConvNormAct) else unit.conv
            handles.append(
                probe.register_forward_hook(lambda m, i, o, n=uname: rec.responses.append((n, _std(o))))
            )
    return handles


def _hook_blocks(blocks: Sequence[tuple[str, nn.Module]], rec: _Records) -> _Handles:
    """Hooks on every block (its live output, std, norm, size and input norm) and, in residual blocks, on
    the branch and the shortcut (their output norms)."""
    handles: _Handles = []
    for bname, block in blocks:

        def on_block(m: nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor, n: str = bname) -> None:
            if n not in rec.block_out:
                rec.block_order.append(n)
            rec.block_out[n] = out
            rec.block_std[n] = _std(out)
            rec.block_norm[n] = _norm(out)
            rec.block_numel[n] = int(out.numel())
            if inp and isinstance(inp[0], torch.Tensor):
                rec.block_input_norm[n] = _norm(inp[0])

        handles.append(block.register_forward_hook(on_block))
        if _is_block(block) and block.residual:
            handles.append(
                block.branch.register_forward_hook(
                    lambda m, i, o, n=bname: rec.branch_norm.__setitem__(n, _norm(o))
                )
            )
            shortcut = getattr(block, "shortcut", None)
            if isinstance(shortcut, nn.Module):
                handles.append(
                    shortcut.register_forward_hook(
                        lambda m, i, o, n=bname: rec.shortcut_norm.__setitem__(n, _norm(o))
                    )
                )
    return handles


def _forward_backward(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    mode: str,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    rec: _Records,
) -> tuple[torch.Tensor, Sequence[torch.Tensor | None], Sequence[torch.Tensor | None]]:
    """The loss and its gradients w.r.t. the weights (``rec.layer_order``) and the live block outputs, from
    one pass in ``mode``; the model's mode flags and buffers (BN running statistics) are restored after."""
    was_training = {m: m.training for m in model.modules()}
    saved_buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
    try:
        model.train(mode == "train")
        with torch.enable_grad():
            logits = main_logits(model(images))
            loss = loss_fn(logits, labels)
            params = [rec.weighted[i][1].weight for i in rec.layer_order]
            outs = [rec.block_out[n] for n in rec.live_outputs()]
            grads = torch.autograd.grad(loss, params + outs, allow_unused=True)
    finally:
        for m, flag in was_training.items():
            m.training = flag
        with torch.no_grad():
            for k, b in model.named_buffers():
                if k in saved_buffers:
                    b.copy_(saved_buffers[k])
    return loss, grads[: len(params)], grads[len(params) :]


def _layer_stats(
    model: nn.Module, rec: _Records, wgrads: Sequence[torch.Tensor | None]
) -> tuple[LayerStat, ...]:
    """One :class:`LayerStat` per weighted layer on the loss path, in execution order."""
    unit_of = {id(unit.conv): uname for uname, unit in _units(model)}  # id(conv) -> name of its unit
    # Layers that ran but are off the loss path (e.g. a GoogLeNet aux head in training mode) are left out.
    on_path = [(mid, g) for mid, g in zip(rec.layer_order, wgrads, strict=True) if g is not None]
    layer_stats = []
    for k, (mid, wgrad) in enumerate(on_path, start=1):
        name, m = rec.weighted[mid]
        unit = unit_of.get(mid)
        act_std = rec.unit_std[unit] if unit is not None and unit in rec.unit_std else rec.own_std[mid]
        layer_stats.append(
            LayerStat(
                name=name,
                index=k,
                kind="conv" if isinstance(m, nn.Conv2d) else "linear",
                kernel_size=tuple(m.kernel_size) if isinstance(m, nn.Conv2d) else None,  # type: ignore[arg-type]
                grad_norm=_float(_norm(wgrad)),
                weight_norm=_float(_norm(m.weight)),
                activation_std=_float(act_std),
            )
        )
    return tuple(layer_stats)


def _block_stats(
    blocks: Sequence[tuple[str, nn.Module]], rec: _Records, ograds: Sequence[torch.Tensor | None]
) -> tuple[BlockStat, ...]:
    """One :class:`BlockStat` per block that ran, in execution order."""
    out_grad = dict(zip(rec.live_outputs(), ograds, strict=True))
    residual_of = dict((n, _is_block(b) and bool(b.residual)) for n, b in blocks)
    block_stats = []
    for k, n in enumerate(rec.block_order, start=1):
        ratio = None
        if residual_of[n] and n in rec.branch_norm:
            denom = rec.shortcut_norm.get(n, rec.block_input_norm.get(n))
            ratio = (
                _float(rec.branch_norm[n] / denom) if denom is not None and float(denom) > 0 else float("inf")
            )
        g = out_grad.get(n)
        block_stats.append(
            BlockStat(
                name=n,
                index=k,
                residual=residual_of[n],
                output_grad_norm=_float(None if g is None else _norm(g)),
                output_std=_float(rec.block_std[n]),
                branch_ratio=ratio,
                output_norm=_float(rec.block_norm[n]),
                output_numel=rec.block_numel[n],
            )
        )
    return tuple(block_stats)


def diagnose(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    mode: Literal["train", "eval"] = "train",
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> Diagnostics:
    """Gradient norms, activation stds, Fig. 7 responses and branch ratios of ``model`` on one batch.

    ``images``: (N, C, H, W) float, already normalised, on the model's device; ``labels``: (N,) int64.
    ``loss_fn(logits, labels)`` defaults to mean cross-entropy.
    """
    _check_batch(mode, images, labels)
    weighted = {
        id(m): (name, m)
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.requires_grad
    }
    blocks = find_blocks(model)
    rec = _Records(weighted)
    handles = _hook_layers(model, rec) + _hook_blocks(blocks, rec)
    try:
        loss, wgrads, ograds = _forward_backward(model, images, labels, mode, loss_fn or F.cross_entropy, rec)
    finally:
        for h in handles:
            h.remove()
    responses = tuple(
        ResponseStat(name=n, index=k, std=_float(s)) for k, (n, s) in enumerate(rec.responses, 1)
    )
    return Diagnostics(
        mode=mode,
        batch_size=int(images.shape[0]),
        loss=float(loss.detach()),
        layers=_layer_stats(model, rec, wgrads),
        blocks=_block_stats(blocks, rec, ograds),
        responses=responses,
    )


# ------------------------------------------------------------------------------------ across models
@dataclass(frozen=True)
class ModelFlow:
    """One model's diagnostics at initialisation, as built for :func:`gradient_flow`."""

    name: str
    norm: str | None  # "batch" or None (built without batch norm)
    diagnostics: Diagnostics


def gradient_flow(
    names: Sequence[str],
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_classes: int,
    norm: str | None = "batch",
    seed: int = 0,
) -> tuple[ModelFlow, ...]:
    """:func:`diagnose` (training mode) for each freshly initialised model in ``names``.

    Each model is built with ``torch.manual_seed(seed)`` for ``num_classes`` classes and the images'
    channel count; ``norm=None`` builds it without batch norm (models that take a ``norm`` argument only).
    """

    if norm not in ("batch", None):
        raise UsageError(f"norm must be 'batch' or None, got {norm!r}")
    if not names:
        raise UsageError("gradient_flow needs at least one model name")
    flows = []
    for name in names:
        torch.manual_seed(seed)
        kwargs: dict[str, Any] = {} if norm == "batch" else {"norm": None}
        model = create_model(name, num_classes=num_classes, in_channels=int(images.shape[1]), **kwargs)
        model = model.to(images.device)
        flows.append(ModelFlow(name, norm, diagnose(model, images, labels, mode="train")))
    return tuple(flows)


def gradflow_json(flows: Sequence[ModelFlow]) -> dict[str, Any]:
    """``{"models": [{"name", "layers": [{"name", "index", "grad_norm", "activation_std"}]}]}``."""
    return {
        "models": [
            {
                "name": f.name,
                "layers": [
                    {
                        "name": s.name,
                        "index": s.index,
                        "grad_norm": s.grad_norm,
                        "activation_std": s.activation_std,
                    }
                    for s in f.diagnostics.layers
                ],
            }
            for f in flows
        ]
    }


# ----------------------------------------------------------------------- several losses, one forward pass
OutputLoss = Callable[[Any, torch.Tensor], torch.Tensor]  # (full model output, labels) -> scalar loss


@dataclass(frozen=True)
class OutputGradients:
    """``grad[loss][module]`` = ‖∂L/∂y‖₂ at ``module``'s output (0.0 where the loss does not depend on it);
    ``loss[name]`` = the value of each loss; ``modules`` in the order given."""

    mode: str
    batch_size: int
    modules: tuple[str, ...]
    loss: dict[str, float]
    grad: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OutputGradients:
        # null (a non-finite number when written) → NaN, "unknown"
        return cls(data["mode"], int(data["batch_size"]), tuple(data["modules"]),
                   {k: read_number(v) for k, v in data["loss"].items()},
                   {k: {m: read_number(g) for m, g in v.items()} for k, v in data["grad"].items()})  # fmt: skip


def output_gradients(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    modules: Sequence[str],
    losses: dict[str, OutputLoss],
    *,
    mode: Literal["train", "eval"] = "train",
) -> OutputGradients:
    """‖∂L/∂y‖ at the outputs of ``modules`` (qualified names) for each loss of ``losses``.

    One forward pass in ``mode`` (BN running statistics restored afterwards; mode flags kept); each loss is a
    function of the model's *full* output (for a GoogLeNet in training mode a ``GoogLeNetOutputs``) and the
    labels, and gets its own backward pass through the same graph. A module that runs more than once keeps
    its last output. Parameters' ``.grad`` are left untouched.
    """
    if mode not in MODES:
        raise UsageError(f"mode must be one of {MODES}, got {mode!r}")
    if not losses:
        raise UsageError("output_gradients needs at least one loss")
    named = dict(model.named_modules())
    missing = [m for m in modules if m not in named]
    if missing:
        raise UsageError(f"no module named {missing[0]!r} in {type(model).__name__}")
    outs: dict[str, torch.Tensor] = {}
    handles = [named[m].register_forward_hook(lambda _m, _i, o, n=m: outs.__setitem__(n, o)) for m in modules]
    was_training = {m: m.training for m in model.modules()}
    saved_buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
    values: dict[str, float] = {}
    grads: dict[str, dict[str, float]] = {}
    try:
        model.train(mode == "train")
        with torch.enable_grad():
            output = model(images)
            live = [m for m in modules if m in outs and outs[m].requires_grad]
            for name, fn in losses.items():
                loss = fn(output, labels)
                values[name] = float(loss.detach())
                gs = torch.autograd.grad(loss, [outs[m] for m in live], retain_graph=True, allow_unused=True)
                by = dict(zip(live, gs, strict=True))
                grads[name] = {
                    m: 0.0 if by.get(m) is None else float(torch.linalg.vector_norm(by[m].float()))
                    for m in modules
                }
    finally:
        for h in handles:
            h.remove()
        for m, flag in was_training.items():
            m.training = flag
        with torch.no_grad():
            for k, b in model.named_buffers():
                if k in saved_buffers:
                    b.copy_(saved_buffers[k])
    return OutputGradients(mode, int(images.shape[0]), tuple(modules), values, grads)
