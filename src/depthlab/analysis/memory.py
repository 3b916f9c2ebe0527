"""Activation memory of a forward pass and of a training step, per layer and in total.

Conventions (bytes, for ``batch_size`` images, in the model's parameter dtype as traced — float32 unless
the model was converted):
* ``forward_bytes``: every tensor the forward pass allocates from the input — layer outputs and
  intermediates such as concatenations — as if none were freed (the usual "forward pass size").
* ``saved_bytes``: the tensors autograd keeps for the backward pass of a training step (inputs of convs
  and linear layers, ReLU outputs, max-pool indices, ...), counted once per storage, weights excluded.
  Measured in eval mode: batch-norm batch statistics, dropout masks and GoogLeNet's aux heads are left out.
* ``param_bytes``: the weights; a training step also holds their gradients (as much again) and the
  optimiser's state, which are not activations and are not included in ``saved_bytes``.
Per-layer numbers are for leaf modules (a layer's bytes are attributed to the innermost module running).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from depthlab.analysis.complexity import trace
from depthlab.errors import UsageError

__all__ = ["LayerMemory", "ActivationMemory", "activation_memory"]


@dataclass(frozen=True)
class LayerMemory:
    name: str
    type: str
    forward_bytes: int
    saved_bytes: int


@dataclass(frozen=True)
class ActivationMemory:
    """Activation memory of ``model`` on ``batch_size`` inputs of ``input_shape``; see the module docstring."""

    input_shape: tuple[int, int, int]
    batch_size: int
    layers: tuple[LayerMemory, ...]
    forward_bytes: int
    saved_bytes: int
    param_bytes: int

    def largest(self, n: int = 5, key: str = "saved_bytes") -> tuple[LayerMemory, ...]:
        """The ``n`` leaf layers holding the most ``key`` ("saved_bytes" or "forward_bytes")."""
        if key not in ("saved_bytes", "forward_bytes"):
            raise UsageError(f"key must be 'saved_bytes' or 'forward_bytes', got {key!r}")
        return tuple(sorted(self.layers, key=lambda m: getattr(m, key), reverse=True)[:n])


def activation_memory(model: nn.Module, input_shape: Sequence[int], batch_size: int = 1) -> ActivationMemory:
    """Forward and training-step activation bytes of ``model``, per leaf layer and in total.

    Traced on the meta device (no memory is used and nothing is computed); the model is not modified.
    """
    t = trace(model, input_shape, batch_size)
    layers = tuple(
        LayerMemory(name, type(m).__name__, t.activation_bytes.get(name, 0), t.saved_bytes.get(name, 0))
        for name, m in model.named_modules()
        if name and next(m.children(), None) is None
    )
    seen: set[int] = set()
    param_bytes = 0
    for p in list(model.parameters()):
        if id(p) not in seen:
            seen.add(id(p))
            param_bytes += p.numel() * p.element_size()
    return ActivationMemory(
        input_shape=t.input_shape,  # type: ignore[arg-type]
        batch_size=batch_size,
        layers=layers,
        forward_bytes=t.activation_bytes.get("", 0),
        saved_bytes=t.saved_bytes.get("", 0),
        param_bytes=param_bytes,
    )
