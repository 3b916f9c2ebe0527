"""What the inception-aux study measures on its diagnostics batch: the main loss's and the aux losses'
gradients at the output of the stem and of every inception module, as vectors.

At each tap y, one forward pass (training mode, dropout masks fixed by a reseed) and two backward passes
give g_main = ∂L_main/∂y and g_aux = ∂(L_aux1 + L_aux2)/∂y. Stored per tap: ‖g_main‖, ‖g_aux‖, their dot
product and the number of elements of y (batch included). From these:

* the aux share ‖w·g_aux‖ ÷ ‖g_main‖ — how large the aux losses' part of the training gradient
  g_train = g_main + w·g_aux is, next to the main loss's part, at the same tap (w = 0.3: the paper's weight).
  It detects an aux contribution in any direction; the norm ratio ‖g_train‖ ÷ ‖g_main‖ does not: with
  orthogonal gradients and a share of 0.3 it is √1.09 = 1.044;
* the cosine between g_aux and g_main — whether the aux losses push the layer the way the main loss does
  (> 0), against it (< 0) or in an unrelated direction (≈ 0);
* the per-element RMS ‖g‖ ÷ √elements — the only way to compare taps of different sizes.

The aux heads read inception 4a and 4d, so g_aux is zero at 4e, 5a and 5b (share 0, no cosine).
Gradients are taken in fp32 whatever the training precision.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from depthlab.io import read_number
from depthlab.models.base import aux_logits
from depthlab.train.step import training_loss

__all__ = ["TAPS", "LOWER_TAPS", "tap_label", "TapGradient", "AuxGradients", "aux_gradients", "probe"]

# The outputs where the gradient is measured: the stem, then every inception module (input → output).
TAPS: tuple[str, ...] = (
    "stem",
    "stages.0.inception3a",
    "stages.0.inception3b",
    *(f"stages.1.inception4{c}" for c in "abcde"),
    "stages.2.inception5a",
    "stages.2.inception5b",
)
LOWER_TAPS = TAPS[:3]  # stem, 3a, 3b: the lower layers the aux heads were meant to reach


def tap_label(tap: str) -> str:
    """``stem``, ``3a`` … ``5b``."""
    return "stem" if tap == "stem" else tap.rsplit("inception", 1)[-1]


@dataclass(frozen=True)
class TapGradient:
    """The two gradients at one tap: norms, dot product (``None`` without aux heads) and element count."""

    tap: str
    elements: int
    main: float
    aux: float | None = None
    dot: float | None = None

    def share(self, weight: float) -> float:
        """‖weight·g_aux‖ ÷ ‖g_main‖ (NaN without heads or without a main gradient)."""
        if self.aux is None or not self.main > 0:
            return math.nan
        return weight * self.aux / self.main

    @property
    def cosine(self) -> float:
        """cos(g_aux, g_main); NaN where either is zero (above the heads) or absent."""
        if self.aux is None or self.dot is None or not (self.aux > 0 and self.main > 0):
            return math.nan
        return self.dot / (self.aux * self.main)

    def train_norm(self, weight: float) -> float:
        """‖g_main + weight·g_aux‖ from the norms and the dot product."""
        if self.aux is None or self.dot is None:
            return self.main
        return math.sqrt(max(self.main**2 + 2 * weight * self.dot + (weight * self.aux) ** 2, 0.0))

    @property
    def main_rms(self) -> float:
        """‖g_main‖ ÷ √elements: comparable across taps of different sizes."""
        return self.main / math.sqrt(self.elements) if self.elements > 0 else math.nan


@dataclass(frozen=True)
class AuxGradients:
    """One probe: the training-mode losses on the diagnostics batch and the gradients at every tap."""

    batch_size: int
    losses: Mapping[str, float]  # "main", and with heads "aux1", "aux2"
    taps: tuple[TapGradient, ...]

    def at(self, tap: str) -> TapGradient | None:
        return next((t for t in self.taps if t.tap == tap), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "losses": dict(self.losses),
            "taps": [asdict(t) for t in self.taps],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuxGradients:
        taps = tuple(
            TapGradient(
                str(t["tap"]),
                int(t["elements"]),
                read_number(t["main"]),  # null: non-finite when written → NaN, unknown
                None if t.get("aux") is None else float(t["aux"]),
                None if t.get("dot") is None else float(t["dot"]),
            )  # fmt: skip
            for t in data["taps"]
        )
        return cls(int(data["batch_size"]), {k: read_number(v) for k, v in data["losses"].items()}, taps)


def aux_gradients(
    model: Any,
    images: Any,
    labels: Any,
    taps: Sequence[str] = TAPS,
    *,
    label_smoothing: float = 0.0,
    seed: int = 0,
) -> AuxGradients:
    """g_main and g_aux at ``taps`` from one training-mode forward pass (the RNG reseeded with ``seed`` just
    before it, so every condition and moment draws the same dropout masks); BN running statistics and module
    modes are restored, parameters' ``.grad`` untouched. A model without aux heads gives g_main only."""
    import torch
    import torch.nn.functional as F

    named = dict(model.named_modules())
    missing = [t for t in taps if t not in named]
    if missing:
        raise ValueError(f"no module named {missing[0]!r} in {type(model).__name__}")
    outs: dict[str, Any] = {}
    handles = [named[t].register_forward_hook(lambda _m, _i, o, n=t: outs.__setitem__(n, o)) for t in taps]
    modes = {m: m.training for m in model.modules()}
    buffers = {k: b.detach().clone() for k, b in model.named_buffers()}

    def ce(logits: Any) -> Any:  # one head's loss alone: training_loss adds the heads' to the main loss
        return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)

    try:
        model.train()
        with torch.enable_grad():
            torch.manual_seed(seed)
            output = model(images)
            ys = [outs[t] for t in taps]
            # L_main: the training objective without its aux terms (aux_weight 0).
            main = training_loss(output, labels, label_smoothing=label_smoothing)
            heads = aux_logits(output)
            losses = {"main": float(main.detach())}
            g_main = torch.autograd.grad(main, ys, retain_graph=bool(heads), allow_unused=True)
            g_aux: Sequence[Any] = [None] * len(taps)
            if heads:
                parts = [ce(a) for a in heads]
                losses.update({f"aux{k}": float(p.detach()) for k, p in enumerate(parts, 1)})
                # The aux loss of the paper's total loss: the heads' losses summed (each weighted by w).
                g_aux = torch.autograd.grad(sum(parts), ys, allow_unused=True)
    finally:
        for h in handles:
            h.remove()
        for m, flag in modes.items():
            m.training = flag
        with torch.no_grad():
            for k, b in model.named_buffers():
                if k in buffers:
                    b.copy_(buffers[k])
    readings = []
    for t, y, gm, ga in zip(taps, ys, g_main, g_aux, strict=True):
        m = torch.zeros_like(y) if gm is None else gm.double()
        if not heads:
            readings.append(TapGradient(t, y.numel(), float(m.norm())))
            continue
        a = torch.zeros_like(m) if ga is None else ga.double()
        readings.append(TapGradient(t, y.numel(), float(m.norm()), float(a.norm()), float((m * a).sum())))
    return AuxGradients(int(images.shape[0]), losses, tuple(readings))


def probe(ctx: Any) -> dict[str, Any]:
    """The engine's probe (a :class:`~depthlab.studies.engine.ProbeContext` in): :func:`aux_gradients` at
    :data:`TAPS`, stored under ``aux_grad``."""
    smoothing = float(ctx.spec.config.label_smoothing)
    g = aux_gradients(ctx.model, ctx.images, ctx.labels, TAPS, label_smoothing=smoothing)
    return {"aux_grad": g.to_dict()}
