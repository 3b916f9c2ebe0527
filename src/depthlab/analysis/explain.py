"""The papers' design arguments, measured: each topic returns a table and one conclusion computed from it.

Topics (:data:`TOPICS`; :func:`explain` dispatches by name):
* ``vgg-stack`` — k stacked 3×3 convs vs one (2k+1)×(2k+1) conv at C channels (VGG, arXiv:1409.1556 §2.3):
  receptive field, weights (9kC² vs (2k+1)²C²), MACs on an H×W map, nonlinearities.
* ``inception-bottleneck`` — every Inception module of GoogLeNet with vs without the 1×1 reductions in
  front of its 3×3 and 5×5 convs (arXiv:1409.4842 §4, Fig. 2): params and MACs per branch, per module and
  for the whole network.
* ``resnet-bottleneck`` — a basic block (3×3, 3×3) vs a bottleneck block (1×1, 3×3, 1×1) at the same output
  width (arXiv:1512.03385 §4.1, Fig. 5): params, MACs, depth, receptive field.
* ``skip-gradient`` — a residual block and its plain twin (same weights): the measured input gradient
  dL/dx against the output gradient dL/dH, as the branch's last BN scale γ shrinks.

All counts come from :func:`depthlab.analysis.summarize` on meta-device modules (MACs count Conv2d and
Linear; FLOPs = 2 × MACs); only ``skip-gradient`` computes, on a small random batch on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from depthlab.analysis.complexity import CONVENTIONS, summarize
from depthlab.analysis.receptive_field import _check_shape
from depthlab.errors import UsageError
from depthlab.i18n import _
from depthlab.layers import ConvNormAct
from depthlab.models.resnet import BasicBlock, Bottleneck, PlainBasicBlock
from depthlab.registry import create_model

__all__ = [
    "Explanation",
    "TOPICS",
    "explain",
    "vgg_stack",
    "inception_bottleneck",
    "resnet_bottleneck",
    "skip_gradient",
    "VggStackRow",
    "InceptionRow",
    "BottleneckRow",
    "SkipGradientRow",
]


@dataclass(frozen=True)
class Explanation:
    """A topic's table (``rows``: dataclasses of one type, its fields the columns) and its conclusion."""

    topic: str
    title: str
    rows: tuple[Any, ...]
    conclusion: str
    notes: tuple[str, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self.rows[0])) if self.rows else ()

    def to_json(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "title": self.title,
            "columns": list(self.columns),
            "rows": [[getattr(r, c) for c in self.columns] for r in self.rows],
            "conclusion": self.conclusion,
            "notes": list(self.notes),
        }


def _meta(build: Callable[[], nn.Module]) -> nn.Module:
    with torch.device("meta"):
        return build()


def _pct(saved: float, total: float) -> float:
    return 100.0 * saved / total if total else 0.0


# ---------------------------------------------------------------------------------------- vgg-stack
@dataclass(frozen=True)
class VggStackRow:
    k: int
    receptive_field: int  # the same for both, measured on each (asserted)
    big_kernel: int  # 2k + 1
    stack_weights: int  # 9kC²
    big_weights: int  # (2k+1)²C²
    weights_saved_pct: float
    stack_macs: int
    big_macs: int
    stack_nonlinearities: int
    big_nonlinearities: int


def vgg_stack(channels: int = 256, size: int = 56, ks: Sequence[int] = (1, 2, 3, 4)) -> Explanation:
    """k stacked 3×3 convs (each with a ReLU) vs one (2k+1)×(2k+1) conv and ReLU, C → C channels, bias-free,
    'same' padding, on a C×size×size map (default: VGG's conv3 stage at 224×224 input)."""
    _positive(channels=channels, size=size)
    rows = []
    for k in ks:
        _positive(k=k)

        def stack(k: int = k) -> nn.Module:
            layers: list[nn.Module] = []
            for _i in range(k):
                layers += [nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.ReLU()]
            return nn.Sequential(*layers)

        def big(k: int = k) -> nn.Module:
            return nn.Sequential(nn.Conv2d(channels, channels, 2 * k + 1, padding=k, bias=False), nn.ReLU())

        s = summarize(_meta(stack), (channels, size, size))
        b = summarize(_meta(big), (channels, size, size))
        if s.receptive_field != b.receptive_field:
            raise AssertionError(f"k={k}: fields differ ({s.receptive_field} vs {b.receptive_field})")
        rows.append(
            VggStackRow(
                k=k,
                receptive_field=int(s.receptive_field or 0),
                big_kernel=2 * k + 1,
                stack_weights=s.params,
                big_weights=b.params,
                weights_saved_pct=round(_pct(b.params - s.params, b.params), 1),
                stack_macs=s.macs,
                big_macs=b.macs,
                stack_nonlinearities=sum(isinstance(m, nn.ReLU) for m in _meta(stack).modules()),
                big_nonlinearities=1,
            )
        )
    best = max(rows, key=lambda r: r.weights_saved_pct)
    three = next((r for r in rows if r.k == 3), best)
    c2 = channels * channels
    conclusion = _(
        "k stacked 3×3 convs see the same (2k+1)×(2k+1) field as one big conv with fewer weights and k "
        "nonlinearities instead of 1: three see {rf}×{rf} with {stack_c}C² = {stack:,} weights vs {big_c}C² = "
        "{big:,} ({saved:.0f}% fewer weights, {macs_saved:.0f}% fewer MACs); the saving grows from {first:.0f}% "
        "at k={first_k} to {best:.0f}% at k={best_k}."
    ).format(rf=three.receptive_field, stack_c=three.stack_weights // c2, stack=three.stack_weights,
             big_c=three.big_weights // c2, big=three.big_weights, saved=three.weights_saved_pct,
             macs_saved=_pct(three.big_macs - three.stack_macs, three.big_macs), first=rows[0].weights_saved_pct,
             first_k=rows[0].k, best=best.weights_saved_pct, best_k=best.k)  # fmt: skip
    return Explanation(
        "vgg-stack",
        _("k stacked 3×3 convs vs one (2k+1)×(2k+1) conv, C={channels}, on {size}×{size} (bias-free)").format(
            channels=channels, size=size
        ),
        tuple(rows),
        conclusion,
        (_(CONVENTIONS),),
    )


# ----------------------------------------------------------------------------- inception-bottleneck
@dataclass(frozen=True)
class InceptionRow:
    module: str
    branch: str  # "branch2 3x3" (index and last kernel), "branch4 pool", or "module"/"network" totals
    in_channels: int
    size: int  # side of the module's input map
    params_with: int
    params_without: int
    macs_with: int
    macs_without: int

    @property
    def macs_ratio(self) -> float:
        return self.macs_without / self.macs_with if self.macs_with else 1.0


def _is_inception(m: nn.Module) -> bool:
    return all(hasattr(m, f"branch{i}") for i in (1, 2, 3, 4))


def _convs(m: nn.Module) -> list[nn.Conv2d]:
    return [c for c in m.modules() if isinstance(c, nn.Conv2d)]


def _naive_branch(branch: nn.Module, in_channels: int) -> nn.Module | None:
    """The branch without its 1×1 reduction: its last conv unit applied to the module input directly.

    None for branches without a reduction (a lone 1×1 conv, or pool → 1×1 projection)."""
    convs = _convs(branch)
    if len(convs) < 2 or convs[0].kernel_size != (1, 1) or convs[-1].kernel_size == (1, 1):
        return None
    last = convs[-1]
    unit = branch[-1] if isinstance(branch, nn.Sequential) else branch
    bn = next((m for m in unit.modules() if isinstance(m, nn.BatchNorm2d)), None)
    k = last.kernel_size[0]
    return ConvNormAct(
        in_channels,
        last.out_channels,
        k,
        1,
        last.padding[0],
        norm="batch" if bn is not None else None,
        bias=last.bias is not None,
        norm_eps=bn.eps if bn is not None else 1e-5,
    )


def inception_bottleneck(input_shape: Sequence[int] = (3, 224, 224), variant: str = "paper") -> Explanation:
    """Every Inception module of GoogLeNet (``variant``: "paper" = true 5×5, or "torchvision") with and
    without the 1×1 reductions in front of its 3×3 and 5×5 convs.

    "Without" keeps everything else: the 1×1 branch, the pool projection and every output width, so each
    module sees the same input as in the real network and only the reductions' effect is counted (the
    paper's naive module, Fig. 2a, also drops the pool projection, which makes widths grow from module to
    module). Aux heads are left out (aux_logits=False).
    """

    c, h, w = _check_shape(input_shape)
    model = _meta(lambda: create_model("googlenet", in_channels=c, variant=variant, aux_logits=False))
    net = summarize(model, (c, h, w))
    names = [n for n, m in model.named_modules() if _is_inception(m)]
    modules = dict(model.named_modules())
    # The input side of a module is the output side of the layer that feeds it (inceptions keep H×W).
    rows: list[InceptionRow] = []
    saved_params = saved_macs = 0
    for name in names:
        module = modules[name]
        out_shape = net.row(name).output_shape
        assert out_shape is not None
        side = int(out_shape[-1])
        cin = _convs(module.branch1)[0].in_channels
        tot = [0, 0, 0, 0]
        for i in (1, 2, 3, 4):
            branch = getattr(module, f"branch{i}")
            real = net.row(f"{name}.branch{i}")
            naive = _naive_branch(branch, cin)
            if naive is None:
                p_wo, m_wo = real.params, real.macs
            else:
                s = summarize(_meta(lambda naive=naive: naive), (cin, side, int(out_shape[-2])))
                p_wo, m_wo = s.params, s.macs
            kernel = _convs(branch)[-1].kernel_size[0]
            pooled = any(isinstance(m, nn.MaxPool2d) for m in branch.modules())
            label = f"branch{i} " + ("pool" if pooled else f"{kernel}x{kernel}")
            rows.append(InceptionRow(name, label, cin, side, real.params, p_wo, real.macs, m_wo))
            for j, v in enumerate((real.params, p_wo, real.macs, m_wo)):
                tot[j] += v
        rows.append(InceptionRow(name, "module", cin, side, *tot))
        saved_params += tot[1] - tot[0]
        saved_macs += tot[3] - tot[2]
    mods = [r for r in rows if r.branch == "module"]
    mw, mwo = sum(r.macs_with for r in mods), sum(r.macs_without for r in mods)
    pw, pwo = sum(r.params_with for r in mods), sum(r.params_without for r in mods)
    rows.append(
        InceptionRow(
            "network", "network", c, h, net.params, net.params + saved_params, net.macs, net.macs + saved_macs
        )
    )
    # The paper's example: inception 3a's "5×5" branch (a 3×3 in the torchvision variant).
    classic = next(r for r in rows if r.branch.startswith("branch3"))
    kernel = classic.branch.split()[1]
    kernel_note = "" if kernel == "5x5" else _(" (a {kernel} conv in this variant)").format(kernel=kernel)
    conclusion = _(
        "Without their 1×1 reductions the {n} inception modules would need {macs_without:.2f} GMACs instead of "
        "{macs_with:.2f} ({macs_ratio:.1f}×) and {params_without:.1f}M parameters instead of {params_with:.1f}M "
        "({params_ratio:.1f}×), taking the whole network from {net_macs:.2f} to {net_macs_without:.2f} GMACs; the "
        'classic case, {module}\'s "5×5" branch{kernel_note} on {channels} channels, costs {classic_with:.1f}M '
        "MACs with its reduction and {classic_without:.1f}M without ({classic_ratio:.1f}×)."
    ).format(n=len(names), macs_without=mwo / 1e9, macs_with=mw / 1e9, macs_ratio=mwo / mw, params_without=pwo / 1e6,
             params_with=pw / 1e6, params_ratio=pwo / pw, net_macs=net.macs / 1e9,
             net_macs_without=(net.macs + saved_macs) / 1e9, module=classic.module.split(".")[-1],
             kernel_note=kernel_note, channels=classic.in_channels, classic_with=classic.macs_with / 1e6,
             classic_without=classic.macs_without / 1e6, classic_ratio=classic.macs_ratio)  # fmt: skip
    return Explanation(
        "inception-bottleneck",
        _("GoogLeNet ({variant}) inception modules with vs without 1×1 reductions, input {c}×{h}×{w}").format(
            variant=variant, c=c, h=h, w=w
        ),
        tuple(rows),
        conclusion,
        (
            _(CONVENTIONS),
            _("without = the 3×3/5×5 conv applied to the module input directly; other branches unchanged"),
        ),
    )


# -------------------------------------------------------------------------------- resnet-bottleneck
@dataclass(frozen=True)
class BottleneckRow:
    stage: int
    out_width: int
    size: int
    basic_params: int
    bottleneck_params: int
    basic_macs: int
    bottleneck_macs: int
    basic_depth: int
    bottleneck_depth: int
    basic_rf: int
    bottleneck_rf: int


def resnet_bottleneck(size: int = 56, norm: str | None = "batch") -> Explanation:
    """A basic block (two 3×3 convs) vs a bottleneck block (1×1 reduce to width/4, 3×3, 1×1 expand) with the
    same output width, for each ImageNet stage (widths 256…2048 at size, size/2, ...; identity shortcuts,
    stride 1), plus ResNet-34 vs ResNet-50 as built (their per-image MACs at 224×224)."""

    _positive(size=size)
    rows = []
    for i, width in enumerate((64, 128, 256, 512)):
        out = width * Bottleneck.expansion
        side = max(1, size >> i)
        b = summarize(_meta(lambda out=out: BasicBlock(out, out, norm=norm)), (out, side, side))
        bn = summarize(
            _meta(lambda out=out, width=width: Bottleneck(out, width, norm=norm)), (out, side, side)
        )
        rows.append(
            BottleneckRow(
                i + 1,
                out,
                side,
                b.params,
                bn.params,
                b.macs,
                bn.macs,
                b.depth,
                bn.depth,
                int(b.receptive_field or 0),
                int(bn.receptive_field or 0),
            )
        )
    r34 = summarize(_meta(lambda: create_model("resnet34")), (3, 224, 224))
    r50 = summarize(_meta(lambda: create_model("resnet50")), (3, 224, 224))
    first = rows[0]
    p_ratio = first.basic_params / first.bottleneck_params
    m_ratio = first.basic_macs / first.bottleneck_macs
    conclusion = _(
        "At the same output width a bottleneck block has {p_ratio:.1f}× fewer parameters and {m_ratio:.1f}× "
        "fewer MACs than a basic block ({bottleneck:,} vs {basic:,} at width {width}) while stacking "
        "{bottleneck_depth} convolutions instead of {basic_depth}: that is how ResNet-50 ({r50_depth} layers, "
        "{r50_macs:.2f} GMACs) costs only {more:.0f}% more than ResNet-34 ({r34_depth} layers, {r34_macs:.2f} "
        "GMACs) with {expansion}× wider stage outputs."
    ).format(p_ratio=p_ratio, m_ratio=m_ratio, bottleneck=first.bottleneck_params, basic=first.basic_params,
             width=first.out_width, bottleneck_depth=first.bottleneck_depth, basic_depth=first.basic_depth,
             r50_depth=r50.depth, r50_macs=r50.macs / 1e9, more=_pct(r50.macs - r34.macs, r34.macs),
             r34_depth=r34.depth, r34_macs=r34.macs / 1e9, expansion=Bottleneck.expansion)  # fmt: skip
    return Explanation(
        "resnet-bottleneck",
        _(
            "basic vs bottleneck block at the same output width (stride 1, identity shortcut, norm={norm})"
        ).format(norm=norm),
        tuple(rows),
        conclusion,
        (_(CONVENTIONS), _("depth = conv layers on the longest path; rf = receptive field of one block")),
    )


# ------------------------------------------------------------------------------------ skip-gradient
@dataclass(frozen=True)
class SkipGradientRow:
    gamma: float  # scale of the branch's last batch norm (1 = init; 0 = a branch that passes nothing)
    block: str  # "residual" or "plain"
    grad_out_norm: float  # ‖dL/dH‖
    grad_in_norm: float  # ‖dL/dx‖
    branch_part: float  # ‖(dF/dx)ᵀ δ‖, δ = dL/dH ⊙ ReLU'(H): the gradient through the branch
    identity_part: float  # ‖δ‖: the gradient through the +x term (0 for the plain block)
    ratio: float  # ‖dL/dx‖ / ‖dL/dH‖
    cosine: float  # cos(dL/dx, dL/dH)


def skip_gradient(
    channels: int = 16,
    size: int = 16,
    batch: int = 8,
    gammas: Sequence[float] = (1.0, 0.1, 0.01, 0.0),
    seed: int = 0,
) -> Explanation:
    """Measure dL/dx vs dL/dH for a ``BasicBlock`` and its plain twin ``PlainBasicBlock`` (same weights),
    on a random batch in training mode (batch-norm batch statistics), with L = ⟨H, G⟩ for a random G (so
    dL/dH = G). The branch's last BN scale γ is swept down to 0 to show what the +x term guarantees.

    For the residual block H = ReLU(F(x) + x), so dL/dx = δ + (dF/dx)ᵀ δ with δ = dL/dH ⊙ ReLU'(H): the
    identity part δ is measured separately (as the gradient through the shortcut alone) and does not
    depend on the branch. Seeded and self-contained: the global random state is left as it was.
    """
    _positive(channels=channels, size=size, batch=batch)
    if not gammas:
        raise UsageError("gammas must name at least one branch scale")
    with _single_thread():
        rows = _skip_gradient_rows(channels, size, batch, gammas, seed)
    low = min(gammas)
    r_lo = next(r for r in rows if r.gamma == low and r.block == "residual")
    p_lo = next(r for r in rows if r.gamma == low and r.block == "plain")
    r_hi = next(r for r in rows if r.gamma == gammas[0] and r.block == "residual")
    p_hi = next(r for r in rows if r.gamma == gammas[0] and r.block == "plain")
    conclusion = _(
        "At γ={high:g} the residual block's dL/dx points along dL/dH (cosine {r_hi:.2f}) while the plain block's "
        "does not ({p_hi:.2f}); as the branch is scaled down to γ={low:g} the plain block passes {p_lo:.3g}× the "
        "output gradient and the residual block still {r_lo:.2f}× (cosine {r_lo_cos:.2f}) — its identity part "
        "‖δ‖ = {identity:.1f} is the +1 path, untouched by the branch."
    ).format(high=gammas[0], r_hi=r_hi.cosine, p_hi=p_hi.cosine, low=low, p_lo=p_lo.ratio, r_lo=r_lo.ratio,
             r_lo_cos=r_lo.cosine, identity=r_lo.identity_part)  # fmt: skip
    return Explanation(
        "skip-gradient",
        _(
            "dL/dx vs dL/dH: BasicBlock vs PlainBasicBlock, {batch}×{channels}×{size}×{size}, train mode"
        ).format(batch=batch, channels=channels, size=size),
        tuple(rows),
        conclusion,
        (_("L = <H, G> with G random, so dL/dH = G; norms are Frobenius norms over the batch"),),
    )


def _skip_gradient_rows(
    channels: int, size: int, batch: int, gammas: Sequence[float], seed: int
) -> list[SkipGradientRow]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        residual = BasicBlock(channels, channels)
        plain = PlainBasicBlock(channels, channels)
        plain.load_state_dict(residual.state_dict())
        # The blocks above are built on the CPU: this whole explanation is a tiny CPU computation.
        x0 = torch.randn(batch, channels, size, size, device="cpu")
        g = torch.randn(batch, channels, size, size, device="cpu")
    rows: list[SkipGradientRow] = []
    for gamma in gammas:
        for label, block in (("residual", residual), ("plain", plain)):
            block.train()
            with torch.no_grad():
                last_bn = [m for m in block.branch.modules() if isinstance(m, nn.BatchNorm2d)][-1]
                last_bn.weight.fill_(gamma)
            x = x0.clone().requires_grad_(True)
            f = block.branch(x)
            s = block.shortcut(x) if block.shortcut is not None else torch.zeros_like(f)
            h = block.act(f + s)
            (dx,) = torch.autograd.grad(h, x, g, retain_graph=True)
            (delta,) = torch.autograd.grad(h, f, g, retain_graph=True)  # dL/d(F + s) = G ⊙ ReLU'(H)
            (through_branch,) = torch.autograd.grad(f, x, delta, retain_graph=True)
            identity = (
                torch.autograd.grad(s, x, delta)[0] if block.shortcut is not None else torch.zeros_like(x)
            )
            rows.append(
                SkipGradientRow(
                    gamma=float(gamma),
                    block=label,
                    grad_out_norm=round(g.norm().item(), 4),
                    grad_in_norm=round(dx.norm().item(), 4),
                    branch_part=round(through_branch.norm().item(), 4),
                    identity_part=round(identity.norm().item(), 4),
                    ratio=round((dx.norm() / g.norm()).item(), 4),
                    cosine=round(F.cosine_similarity(dx.flatten(), g.flatten(), dim=0).item(), 4),
                )
            )
    return rows


@contextmanager
def _single_thread() -> Iterator[None]:
    """Tiny tensors: one intra-op thread avoids OpenMP start-up and spin-wait costs (100× slower with two
    threads on a busy 2-core machine). The previous setting is restored."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# ------------------------------------------------------------------------------------------ dispatch
TOPICS: dict[str, Callable[..., Explanation]] = {
    "vgg-stack": vgg_stack,
    "inception-bottleneck": inception_bottleneck,
    "resnet-bottleneck": resnet_bottleneck,
    "skip-gradient": skip_gradient,
}


def explain(topic: str, **kwargs: Any) -> Explanation:
    """The :class:`Explanation` of ``topic`` (one of :data:`TOPICS`); ``kwargs`` go to its function."""
    if topic not in TOPICS:
        raise UsageError(f"unknown topic {topic!r}; choose from {', '.join(TOPICS)}")
    return TOPICS[topic](**kwargs)


def _positive(**values: int) -> None:
    for name, v in values.items():
        if not isinstance(v, int) or v < 1:
            raise UsageError(f"{name} must be a positive integer, got {v!r}")
