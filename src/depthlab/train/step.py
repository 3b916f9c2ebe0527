"""One training step: the loss every depthlab run minimises, and the update, eager or replayed from a CUDA
graph.

:func:`training_loss` is the one definition of the objective (the trainer, the study engine's step timing
and the Inception probe use it): cross-entropy of the main logits, computed in fp32 from possibly bf16
logits, plus ``aux_weight`` × the cross-entropy of each auxiliary head's logits (GoogLeNet, Szegedy et al.
2015 §5: 0.3).

:class:`TrainStep` runs forward, loss, backward, gradient clipping and the optimizer's update of one batch.
On a GPU, a small net's step is bound by the host launching a few hundred kernels one by one (ResNet-20 at
batch 128: ~10 ms eager, most of it launch overhead); with ``graph=True`` the forward and backward passes
are captured once into a CUDA graph (``torch.cuda.CUDAGraph``) and every later step copies its batch into
the graph's input tensors and replays it as one launch. The update (clipping, the optimizer's step with
this step's learning rate) stays eager: a few fused kernels, and the learning rate stays a Python number
that a checkpoint stores as it always did.

The graph follows PyTorch's whole-network recipe (CUDA semantics, "CUDA Graphs"): the first ``warmup``
steps run eagerly on a side stream (cudnn picks its algorithms, autograd allocates its buffers), then the
gradients are dropped and step ``warmup`` is captured and replayed. Every step is a real step: warm-up
steps update the weights like any other, so a graphed run trains the same sequence of batches as an eager
one, to rounding (cudnn's algorithm choice is not deterministic across runs on a GPU anyway). Captured
tensors must keep their storage: the gradients live in the graph's memory pool and are re-attached to the
parameters before every update, in case something set ``.grad`` to None in between (``zero_grad``);
anything that *replaces* a parameter or buffer tensor (``load_state_dict`` keeps storages and is fine)
would detach the graph from the model, which is why checkpoints are restored before the first step.

Graphs need a fixed batch shape and a single process: the trainer asks for them only on CUDA, for
in-memory data (every training batch has ``batch_size`` images) and without DDP.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from depthlab.models.base import aux_logits, main_logits
from depthlab.train.precision import autocast

__all__ = ["GRAPH_WARMUP", "TrainStep", "training_loss"]

GRAPH_WARMUP = 3  # eager steps before capture (PyTorch's recipe uses 3; cudnn.benchmark needs ≥ 1)


def training_loss(
    out: Any, labels: torch.Tensor, aux_weight: float = 0.0, label_smoothing: float = 0.0
) -> torch.Tensor:
    """The training objective of a model output ``out`` (a tensor, or GoogLeNet's outputs with auxiliary
    logits): fp32 cross-entropy of the main logits plus ``aux_weight`` × each auxiliary head's."""
    loss = F.cross_entropy(main_logits(out).float(), labels, label_smoothing=label_smoothing)
    if aux_weight > 0:
        for aux in aux_logits(out):
            loss = loss + aux_weight * F.cross_entropy(aux.float(), labels, label_smoothing=label_smoothing)
    return loss


class TrainStep:
    """``step(x, y) -> (loss, logits)``: one update of ``model`` on the batch (``x``, ``y``).

    ``net`` is what the forward pass calls (the model, or its compiled or DDP wrapper); ``model`` owns the
    parameters; ``optimizer``'s learning rate is set by the caller before each call. ``loss`` is the fp32
    training loss and ``logits`` the main head's logits (detached); with a graph both live in the graph's
    memory and are overwritten by the next step, so read them before calling again.
    """

    def __init__(
        self,
        net: nn.Module,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        precision: str,
        device: torch.device,
        aux_weight: float = 0.0,
        label_smoothing: float = 0.0,
        clip_grad: float | None = None,
        graph: bool = False,
        warmup: int = GRAPH_WARMUP,
    ) -> None:
        if graph and device.type != "cuda":
            raise ValueError(f"a CUDA graph needs a CUDA device, got {device}")
        self.net, self.model, self.optimizer = net, model, optimizer
        self.precision, self.device = precision, device
        self.aux_weight, self.label_smoothing, self.clip_grad = aux_weight, label_smoothing, clip_grad
        self.graph = graph
        self.warmup = max(1, warmup)
        self.calls = 0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static: dict[str, torch.Tensor] = {}
        self._grads: list[tuple[nn.Parameter, torch.Tensor]] = []
        self._side = torch.cuda.Stream(device) if graph else None

    @property
    def mode(self) -> str:
        """``cuda-graph`` once the step replays a graph, ``eager`` otherwise (recorded in the summary)."""
        return "cuda-graph" if self.graph else "eager"

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        # The autocast cache keeps bf16 copies of the weights for the region's lifetime; a captured region
        # must not refer to cached tensors made outside it (PyTorch's graph recipe disables the cache).
        if self.graph and self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=False)
        return autocast(self.precision, self.device)

    def _forward_backward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with self._autocast():
            out = self.net(x)
            loss = training_loss(out, y, self.aux_weight, self.label_smoothing)
        loss.backward()
        return loss.detach(), main_logits(out).detach()

    def _update(self) -> None:
        if self.clip_grad is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad)
        self.optimizer.step()

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.graph:
            self.optimizer.zero_grad(set_to_none=True)
            loss, logits = self._forward_backward(x, y)
            self._update()
            return loss, logits
        if self.calls < self.warmup:
            return self._warmup_step(x, y)
        if self._graph is None:
            self._capture(x, y)
        else:
            self._static["x"].copy_(x, non_blocking=True)
            self._static["y"].copy_(y, non_blocking=True)
        assert self._graph is not None
        self._graph.replay()
        for param, grad in self._grads:  # re-attach, in case .grad was set to None since the last step
            if param.grad is not grad:
                param.grad = grad
        self._update()
        self.calls += 1
        return self._static["loss"], self._static["logits"]

    def _warmup_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        side = self._side
        assert side is not None
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            self.optimizer.zero_grad(set_to_none=True)
            loss, logits = self._forward_backward(x, y)
            self._update()
        torch.cuda.current_stream(self.device).wait_stream(side)
        self.calls += 1
        return loss, logits

    def _capture(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Capture forward and backward on copies of this batch (the graph's inputs from now on)."""
        torch.cuda.synchronize(self.device)  # the warm-up's side-stream tensors are no longer in use
        static = {"x": x.clone(), "y": y.clone()}
        # Gradients allocated inside the capture live in the graph's pool: every replay writes them there.
        self.optimizer.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static["loss"], static["logits"] = self._forward_backward(static["x"], static["y"])
        self._graph, self._static = graph, static
        self._grads = [(p, p.grad) for p in self.model.parameters() if p.grad is not None]
