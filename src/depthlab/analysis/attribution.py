"""Attribution maps (Captum) and the model-randomisation sanity check.

Methods (all from Captum, ``pip install 'depthlab[explain]'``), each explaining the logit of one target class
(the class the *original* model predicts, also for its randomised copies), model in eval mode, main logits
only (a GoogLeNet's aux heads never run in eval mode):

* ``gradcam`` — Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391) with ``captum.attr.LayerGradCam`` at the
  output of ``model.stages[-1]``: the last feature map, the one the classifier head pools (ResNet: the last
  block's output; VGG: pool5 or, with the small head, conv5; GoogLeNet: inception 5b; AlexNet: pool5).
  The map is Σ_k mean_{h,w}(∂y_c/∂A_k)·A_k at the feature map's resolution, *before* the usual ReLU;
  displays apply the ReLU and upsample bilinearly to the image size.
* ``integrated_gradients`` — Sundararajan et al. 2017 (arXiv:1703.01365), ``captum.attr.IntegratedGradients``
  from an all-zero baseline in normalised input space (the dataset's mean image), ``ig_steps`` Gauss-Legendre
  steps; the map is |Σ_c attribution| (channels summed, then the absolute value).
* ``saliency`` — Simonyan et al. 2014 (arXiv:1312.6034), ``captum.attr.Saliency``: max over channels of
  |∂y_c/∂x|.

Sanity check (Adebayo et al. 2018, *Sanity Checks for Saliency Maps*, arXiv:1810.03292, cascading model
parameter randomisation): the layers are re-initialised from the top (the head) down, one group at a time,
cumulatively — ``granularity="stage"``: head, then each stage from the last to the first, then the stem;
``"block"``: head, then every child of every stage, last to first, then the stem. Re-initialisation: conv
weights He-normal (fan-in), linear weights N(0, 1/fan_in), biases 0, batch norm to the identity (scale 1,
shift 0, running mean 0, variance 1), from a seeded generator. After each cut every method's maps are
recomputed and compared with the original model's by Spearman rank correlation, per image, over the pixels
(Grad-CAM: over the feature-map cells). A method whose maps stay correlated while the weights they should
explain are destroyed is insensitive to the model; Adebayo et al. found Grad-CAM and plain gradients sensitive.
Spearman ρ is undefined (NaN) when a map is constant; means skip such images.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from depthlab.analysis.evaluation import AnalysisError, PartialResults, Progress
from depthlab.errors import UsageError

__all__ = [
    "METHODS",
    "GRANULARITIES",
    "CaptumMissingError",
    "ImageRecord",
    "SanityRow",
    "AttributionResult",
    "gradcam_layer",
    "attribution_maps",
    "display_maps",
    "spearman",
    "randomization_groups",
    "reinitialize",
    "cascading_randomization",
    "explain_images",
]

METHODS = ("gradcam", "integrated_gradients", "saliency")
METHOD_TITLES = {
    "gradcam": "Grad-CAM",
    "integrated_gradients": "integrated gradients",
    "saliency": "saliency",
}
GRANULARITIES = ("stage", "block")


class CaptumMissingError(AnalysisError):
    """Captum is not installed."""


def _captum() -> Any:
    try:
        import captum.attr
    except ImportError:  # pragma: no cover - depends on the environment
        raise CaptumMissingError(
            "attributions need Captum: pip install 'depthlab[explain]' (or pip install captum)"
        ) from None
    return captum.attr


@dataclass(frozen=True)
class ImageRecord:
    """One explained image: where it came from, its label (if known) and the model's prediction."""

    source: str  # "test[1234]" or a file path
    label: int | None
    label_name: str | None
    prediction: int
    prediction_name: str
    probability: float
    top5: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class SanityRow:
    """Spearman ρ between the original and the randomised model's maps, per image, for one method after
    one cut (everything from the head down to and including ``cut`` re-initialised)."""

    cut: str
    modules: int  # weighted modules re-initialised so far
    method: str
    spearman: tuple[float, ...]

    @property
    def mean(self) -> float:
        values = [v for v in self.spearman if not math.isnan(v)]
        return sum(values) / len(values) if values else float("nan")


@dataclass(frozen=True)
class AttributionResult:
    methods: tuple[str, ...]
    layer: str  # Grad-CAM layer
    ig_steps: int
    granularity: str
    seed: int
    images: tuple[ImageRecord, ...]
    sanity: tuple[SanityRow, ...]
    wall_time_s: float
    source: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AttributionResult:
        return cls(
            methods=tuple(d["methods"]),
            layer=d["layer"],
            ig_steps=int(d["ig_steps"]),
            granularity=d["granularity"],
            seed=int(d["seed"]),
            images=tuple(
                ImageRecord(**{**r, "top5": tuple((str(n), float(p)) for n, p in r["top5"])})
                for r in d["images"]
            ),
            sanity=tuple(
                SanityRow(r["cut"], int(r["modules"]), r["method"], tuple(float(v) for v in r["spearman"]))
                for r in d["sanity"]
            ),
            wall_time_s=float(d["wall_time_s"]),
            source=dict(d.get("source", {})),
        )

    def curve(self, method: str) -> list[tuple[str, float]]:
        """(cut, mean ρ) after each cut for ``method``, top to bottom."""
        return [(r.cut, r.mean) for r in self.sanity if r.method == method]

    def findings(self, label: str | None = None) -> list[str]:
        label = label or self.source.get("model", "model")
        if not self.sanity:
            return []
        first_cut = self.sanity[0].cut
        last_cut = self.sanity[-1].cut
        parts_first = []
        parts_last = []
        for m in self.methods:
            curve = self.curve(m)
            if not curve:
                continue
            parts_first.append(f"{METHOD_TITLES[m]} {curve[0][1]:.2f}")
            parts_last.append(f"{METHOD_TITLES[m]} {curve[-1][1]:.2f}")
        ends = {m: self.curve(m)[-1][1] for m in self.methods if self.curve(m)}
        finite = {m: v for m, v in ends.items() if not math.isnan(v)}
        text = (
            f"{label}, cascading randomisation on {len(self.images)} image(s): mean Spearman ρ between the "
            f"original and the randomised maps after re-initialising the {first_cut}: "
            + ", ".join(parts_first)
            + f"; after every layer down to the {last_cut}: "
            + ", ".join(parts_last)
            + "."
        )
        out = [text]
        if finite:
            most = min(finite, key=lambda m: abs(finite[m]))
            least = max(finite, key=lambda m: abs(finite[m]))
            out.append(
                f"Most sensitive to the weights: {METHOD_TITLES[most]} (|ρ| = {abs(finite[most]):.2f} at the end); "
                f"least: {METHOD_TITLES[least]} (|ρ| = {abs(finite[least]):.2f}). Adebayo et al. found Grad-CAM "
                "and gradients sensitive; a map that survives randomisation reflects the input, not the model."
            )
        return out


# ------------------------------------------------------------------------------------------------- maps
def gradcam_layer(model: nn.Module) -> tuple[str, nn.Module]:
    """("stages.N", module) of the last stage: Grad-CAM's layer (module docstring)."""
    stages = getattr(model, "stages", None)
    if not isinstance(stages, nn.Sequential) or len(stages) == 0:
        raise AnalysisError(
            f"{type(model).__name__} has no .stages; Grad-CAM needs a zoo model (stem → stages → head)"
        )
    return f"stages.{len(stages) - 1}", stages[-1]


def _forward(model: nn.Module) -> Any:
    from depthlab.models.base import main_logits

    def forward(x: torch.Tensor) -> torch.Tensor:
        return main_logits(model(x))

    return forward


def attribution_maps(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    methods: Sequence[str] = METHODS,
    ig_steps: int = 32,
    internal_batch_size: int | None = 64,
) -> dict[str, torch.Tensor]:
    """Raw maps per method (module docstring): ``gradcam`` (N, h, w) at the last stage's resolution, signed;
    ``integrated_gradients`` and ``saliency`` (N, H, W), non-negative. ``images`` (N, C, H, W) normalised;
    ``targets`` (N,) class indices. The model's mode flag is restored."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise UsageError(
            f"unknown attribution method(s) {', '.join(unknown)}; choose from: {', '.join(METHODS)}"
        )
    if not isinstance(ig_steps, int) or ig_steps < 1:
        raise UsageError(f"ig_steps must be a positive integer, got {ig_steps!r}")
    attr = _captum()
    forward = _forward(model)
    was_training = model.training
    model.eval()
    targets = targets.to(images.device)
    maps: dict[str, torch.Tensor] = {}
    try:
        with torch.enable_grad():
            for m in methods:
                if m == "gradcam":
                    _, layer = gradcam_layer(model)
                    cam = attr.LayerGradCam(forward, layer).attribute(
                        images, target=targets, relu_attributions=False
                    )
                    maps[m] = cam.detach().squeeze(1).float()  # (N, 1, h, w) → (N, h, w)
                elif m == "integrated_gradients":
                    ig = attr.IntegratedGradients(forward).attribute(
                        images,
                        baselines=torch.zeros_like(images),
                        target=targets,
                        n_steps=ig_steps,
                        internal_batch_size=internal_batch_size,
                    )
                    maps[m] = ig.detach().sum(1).abs().float()
                else:
                    # A leaf that requires grad, so Captum need not switch it on (and warn about it).
                    leaf = images.detach().clone().requires_grad_(True)
                    grad = attr.Saliency(forward).attribute(leaf, target=targets, abs=True)
                    maps[m] = grad.detach().amax(1).float()
    finally:
        model.train(was_training)
    return maps


def display_maps(maps: dict[str, torch.Tensor], size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Maps ready to draw: Grad-CAM through a ReLU and bilinearly upsampled to ``size``; each map scaled to
    [0, 1] per image (an all-zero map stays zero)."""
    out = {}
    for m, v in maps.items():
        if m == "gradcam":
            v = F.interpolate(v.clamp_min(0)[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        peak = v.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
        out[m] = (v / peak).clamp(0, 1)
    return out


# -------------------------------------------------------------------------------------------- spearman
def _rankdata(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (scipy.stats.rankdata's "average")."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    boundaries = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1], True])  # starts of tie groups, then n
    average = (boundaries[:-1] + boundaries[1:] - 1) / 2 + 1  # mean of ranks start+1..end
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.repeat(average, np.diff(boundaries))
    return ranks


def spearman(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Spearman rank correlation of two equally sized arrays (flattened): the Pearson correlation of their
    average ranks. NaN when either is constant."""
    x = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64).ravel()
    y = np.asarray(b.detach().cpu() if isinstance(b, torch.Tensor) else b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"spearman needs arrays of one size, got {x.size} and {y.size}")
    rx, ry = _rankdata(x) - (x.size + 1) / 2, _rankdata(y) - (y.size + 1) / 2
    denom = math.sqrt(float((rx * rx).sum()) * float((ry * ry).sum()))
    return float((rx * ry).sum()) / denom if denom > 0 else float("nan")


# -------------------------------------------------------------------------------------- randomisation
def randomization_groups(model: nn.Module, granularity: str = "stage") -> list[tuple[str, list[str]]]:
    """(cut label, module names) from the top of the network down: head, stages (or their children) last
    to first, stem. Groups without parameters are skipped."""
    if granularity not in GRANULARITIES:
        raise UsageError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    groups: list[tuple[str, list[str]]] = []
    if isinstance(getattr(model, "head", None), nn.Module):
        groups.append(("head", ["head"]))
    stages = getattr(model, "stages", None)
    if isinstance(stages, nn.Sequential):
        for s in reversed(range(len(stages))):
            if granularity == "stage":
                groups.append((f"stages.{s}", [f"stages.{s}"]))
            else:
                for cname, _ in reversed(list(stages[s].named_children())):
                    groups.append((f"stages.{s}.{cname}", [f"stages.{s}.{cname}"]))
    if isinstance(getattr(model, "stem", None), nn.Module):
        groups.append(("stem", ["stem"]))
    modules = dict(model.named_modules())
    kept = [
        (label, names) for label, names in groups if any(True for n in names for _ in modules[n].parameters())
    ]
    if not kept:
        raise AnalysisError(f"{type(model).__name__} has no head/stages/stem with parameters to randomise")
    return kept


@torch.no_grad()
def reinitialize(module: nn.Module, generator: torch.Generator) -> int:
    """Re-initialise every conv, linear and batch-norm layer inside ``module`` (module docstring); returns
    how many conv/linear layers were re-initialised."""
    count = 0
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            w = torch.empty(m.weight.shape, dtype=torch.float32)
            nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu", generator=generator)
            m.weight.copy_(w)
            if m.bias is not None:
                m.bias.zero_()
            count += 1
        elif isinstance(m, nn.Linear):
            w = torch.empty(m.weight.shape, dtype=torch.float32)
            nn.init.normal_(w, 0.0, 1.0 / math.sqrt(m.in_features), generator=generator)
            m.weight.copy_(w)
            if m.bias is not None:
                m.bias.zero_()
            count += 1
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.affine:
                m.weight.fill_(1.0)
                m.bias.zero_()
            if m.track_running_stats:
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
    return count


def cascading_randomization(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    methods: Sequence[str] = METHODS,
    granularity: str = "stage",
    ig_steps: int = 32,
    seed: int = 0,
    original: dict[str, torch.Tensor] | None = None,
    progress: Progress | None = None,
    partial: PartialResults | None = None,
) -> list[SanityRow]:
    """Adebayo et al.'s cascading randomisation of a *copy* of ``model`` (module docstring); ``original``:
    the unrandomised model's :func:`attribution_maps` (computed if not given)."""
    groups = randomization_groups(model, granularity)
    if original is None:
        original = attribution_maps(model, images, targets, methods=methods, ig_steps=ig_steps)
    randomised = copy.deepcopy(model)
    modules = dict(randomised.named_modules())
    generator = torch.Generator().manual_seed(seed)
    partial = partial or PartialResults(None, {})
    rows: list[SanityRow] = []
    count = 0
    for j, (label, names) in enumerate(groups):
        for n in names:
            # Re-initialising consumes the generator identically whether or not the cut is cached below.
            count += reinitialize(modules[n], generator)
        key = f"cut{j}"
        if key not in partial:
            maps = attribution_maps(randomised, images, targets, methods=methods, ig_steps=ig_steps)
            partial.put(
                key,
                {m: [spearman(original[m][i], maps[m][i]) for i in range(images.shape[0])] for m in methods},
            )
        stored = partial.get(key)
        rows += [SanityRow(label, count, m, tuple(float(v) for v in stored[m])) for m in methods]
        if progress is not None:
            progress(j + 1, len(groups))
    return rows


def explain_images(
    model: nn.Module,
    images: torch.Tensor,
    *,
    labels: Sequence[int | None] | None = None,
    sources: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    methods: Sequence[str] = METHODS,
    granularity: str = "stage",
    ig_steps: int = 32,
    seed: int = 0,
    sanity: bool = True,
    progress: Progress | None = None,
    partial: PartialResults | None = None,
) -> tuple[AttributionResult, dict[str, torch.Tensor]]:
    """Predictions, attribution maps and (``sanity``) the randomisation check for ``images``.

    Returns the result and the raw maps (for figures; the JSON result keeps only numbers)."""
    start = time.perf_counter()
    from depthlab.models.base import main_logits

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():  # not inference_mode: the targets index logits under autograd later
            probs = main_logits(model(images)).float().softmax(1)
    finally:
        model.train(was_training)
    targets = probs.argmax(1)
    num_classes = probs.shape[1]
    names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for a model with {num_classes} outputs")
    n = images.shape[0]
    labels = list(labels) if labels is not None else [None] * n
    sources = list(sources) if sources is not None else [f"image[{i}]" for i in range(n)]
    records = []
    for i in range(n):
        top = probs[i].topk(min(5, num_classes))
        records.append(
            ImageRecord(
                source=sources[i],
                label=labels[i],
                label_name=names[labels[i]] if labels[i] is not None else None,
                prediction=int(targets[i]),
                prediction_name=names[int(targets[i])],
                probability=float(probs[i, targets[i]]),
                top5=tuple((names[int(c)], float(p)) for p, c in zip(top.values, top.indices, strict=True)),
            )
        )
    maps = attribution_maps(model, images, targets, methods=methods, ig_steps=ig_steps)
    rows: list[SanityRow] = []
    if sanity:
        rows = cascading_randomization(
            model, images, targets, methods=methods, granularity=granularity, ig_steps=ig_steps, seed=seed,
            original=maps, progress=progress, partial=partial,
        )  # fmt: skip
    layer, _ = gradcam_layer(model) if "gradcam" in methods else ("", None)
    result = AttributionResult(
        methods=tuple(methods),
        layer=layer,
        ig_steps=ig_steps,
        granularity=granularity,
        seed=seed,
        images=tuple(records),
        sanity=tuple(rows),
        wall_time_s=round(time.perf_counter() - start, 2),
    )
    return result, maps
