"""Attribution maps (Captum) and the model-randomisation sanity check.

Methods (all from Captum, ``pip install 'depthlab[attribution]'``), each explaining the logit of one target class
(the class the *original* model predicts, also for its randomised copies), model in eval mode, main logits
only (a GoogLeNet's aux heads never run in eval mode):

* ``gradcam`` — Grad-CAM (Selvaraju et al. 2017, arXiv:1610.02391) with ``captum.attr.LayerGradCam`` at the
  output of ``model.stages[-1]``: the last feature map, the one the classifier head pools (ResNet: the last
  block's output; VGG: pool5 or, with the small head, conv5; GoogLeNet: inception 5b; AlexNet: pool5).
  The map is Σ_k mean_{h,w}(∂y_c/∂A_k)·A_k at the feature map's resolution, *before* the usual ReLU;
  displays apply the ReLU and upsample bilinearly to the image size.
* ``integrated_gradients`` — Sundararajan et al. 2017 (arXiv:1703.01365), ``captum.attr.IntegratedGradients``
  from an all-zero baseline in normalised input space (the dataset's mean image), ``ig_steps`` Gauss-Legendre
  steps; the map is |Σ_c attribution| (channels summed, then the absolute value); its *signed* variant is
  Σ_c attribution.
* ``saliency`` — Simonyan et al. 2014 (arXiv:1312.6034), ``captum.attr.Saliency``: max over channels of
  |∂y_c/∂x|; its *signed* variant is Σ_c ∂y_c/∂x (the channels' gradients summed, sign kept).

Variants: the maps shown are the *absolute* ones (Grad-CAM's only map is signed). Adebayo et al. rank both
the absolute and the signed ("no absolute value") maps, because the absolute value alone can keep an image's
edges whatever the weights; the sanity check ranks both for integrated gradients and saliency.

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

Verdicts (:meth:`AttributionResult.evidence`): per map variant and cut, the mean ρ over images with its 95%
Student t interval over images (:func:`depthlab.stats.mean_ci`). After every layer is re-initialised
a map is *still correlated* with the original when the whole interval lies above 0 — it reflects the image
more than the weights —, anti-correlated when below, and otherwise not resolved. The most and the least
changed maps are compared by a paired t interval over the images both have (:func:`depthlab.stats.
paired`).
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
from scipy.stats import rankdata
from torch import nn

from depthlab.analysis.evaluation import AnalysisError, PartialResults, Progress
from depthlab.errors import UsageError
from depthlab.io import read_number
from depthlab.models.base import main_logits
from depthlab.present.format import number
from depthlab.stats import Difference, Estimate, Interval, estimate, mean_ci, paired

__all__ = [
    "METHODS",
    "GRANULARITIES",
    "CaptumMissingError",
    "ImageRecord",
    "SanityRow",
    "SanityReading",
    "AttributionResult",
    "VARIANTS",
    "map_variants",
    "gradcam_layer",
    "attribution_maps",
    "display_maps",
    "spearman",
    "randomization_groups",
    "reinitialize",
    "cascading_randomization",
    "attribute_images",
]

METHODS = ("gradcam", "integrated_gradients", "saliency")
METHOD_TITLES = {
    "gradcam": "Grad-CAM",
    "integrated_gradients": "integrated gradients",
    "saliency": "saliency",
}
GRANULARITIES = ("stage", "block")
# The variants each method's sanity check ranks; the first is the map that is shown.
VARIANTS: dict[str, tuple[str, ...]] = {
    "gradcam": ("signed",),
    "integrated_gradients": ("absolute", "signed"),
    "saliency": ("absolute", "signed"),
}


class CaptumMissingError(AnalysisError):
    """Captum is not installed."""


def _captum() -> Any:
    try:
        import captum.attr
    except ImportError:  # pragma: no cover - depends on the environment
        raise CaptumMissingError(
            "attributions need Captum: pip install 'depthlab[attribution]' (or pip install captum)"
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
    """Spearman ρ between the original and the randomised model's maps, per image, for one method's map
    variant after one cut (everything from the head down to and including ``cut`` re-initialised)."""

    cut: str
    modules: int  # weighted modules re-initialised so far
    method: str
    spearman: tuple[float, ...]
    variant: str = "absolute"  # "absolute" or "signed" (Grad-CAM: "signed", its only map)

    @property
    def mean(self) -> float:
        values = [v for v in self.spearman if not math.isnan(v)]
        return sum(values) / len(values) if values else float("nan")

    @property
    def finite(self) -> list[float]:
        """The per-image ρ that are defined (a constant map has none)."""
        return [v for v in self.spearman if math.isfinite(v)]

    @property
    def ci(self) -> Interval | None:
        """95% Student t interval of the mean ρ over the images (``None`` with fewer than 2)."""
        return mean_ci(self.finite) if len(self.finite) >= 2 else None


def variant_title(method: str, variant: str) -> str:
    """ "integrated gradients (signed)"; Grad-CAM has one map and no suffix."""
    return METHOD_TITLES[method] if len(VARIANTS[method]) == 1 else f"{METHOD_TITLES[method]} ({variant})"


@dataclass(frozen=True)
class SanityReading:
    """One map variant after one cut: mean ρ over the images and its interval."""

    method: str
    variant: str
    cut: str
    mean: float
    ci: Interval | None
    images: int  # images with a defined ρ

    @property
    def title(self) -> str:
        return variant_title(self.method, self.variant)

    @property
    def outcome(self) -> str:
        """ "still correlated" (interval above 0), "anti-correlated" (below) or "not resolved"."""
        ci = self.ci
        if ci is None or not (math.isfinite(ci.low) and math.isfinite(ci.high)):
            return "not resolved"
        if ci.low > 0:
            return "still correlated"
        if ci.high < 0:
            return "anti-correlated"
        return "not resolved"

    def text(self) -> str:
        interval = f"[{self.ci.low:+.2f}, {self.ci.high:+.2f}]" if self.ci is not None else "no CI"
        return f"{self.title} {number(self.mean, '+.2f')} {interval}"


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
                ImageRecord(
                    **{
                        **r,
                        "probability": read_number(r["probability"]),
                        "top5": tuple((str(n), read_number(p)) for n, p in r["top5"]),
                    }
                )
                for r in d["images"]
            ),
            sanity=tuple(
                SanityRow(
                    r["cut"],
                    int(r["modules"]),
                    r["method"],
                    tuple(read_number(v) for v in r["spearman"]),
                    # Results written before the variants held the shown map only.
                    r.get("variant", VARIANTS[r["method"]][0]),
                )  # fmt: skip
                for r in d["sanity"]
            ),
            wall_time_s=read_number(d["wall_time_s"]),
            source=dict(d.get("source", {})),
        )

    def variants(self) -> list[tuple[str, str]]:
        """(method, variant) pairs with sanity rows, in method order."""
        return list(dict.fromkeys((r.method, r.variant) for r in self.sanity))

    def curve(self, method: str, variant: str | None = None) -> list[tuple[str, float]]:
        """(cut, mean ρ) after each cut for ``method``'s ``variant`` (default: the shown map), top to bottom."""
        variant = variant or VARIANTS[method][0]
        return [(r.cut, r.mean) for r in self.sanity if r.method == method and r.variant == variant]

    def rows(self, method: str, variant: str) -> list[SanityRow]:
        return [r for r in self.sanity if r.method == method and r.variant == variant]

    def evidence(self, cut: int = -1) -> list[SanityReading]:
        """One reading per map variant after the ``cut``-th cut (default: the last, every layer re-initialised)."""
        out = []
        for m, v in self.variants():
            row = self.rows(m, v)[cut]
            out.append(SanityReading(m, v, row.cut, row.mean, row.ci, len(row.finite)))
        return out

    def extremes(self) -> Difference | None:
        """Least − most changed map after the last cut (mean ρ), paired t over the images both define;
        ``None`` with fewer than two variants."""
        last = {mv: self.rows(*mv)[-1] for mv in self.variants()}
        means = {mv: row.mean for mv, row in last.items() if math.isfinite(row.mean)}
        if len(means) < 2:
            return None
        least = max(means, key=lambda mv: means[mv])
        most = min(means, key=lambda mv: means[mv])
        both = [
            (a, b)
            for a, b in zip(last[least].spearman, last[most].spearman, strict=True)
            if math.isfinite(a) and math.isfinite(b)
        ]
        a_est = estimate([a for a, _ in both]) or Estimate((last[least].mean,))
        b_est = estimate([b for _, b in both]) or Estimate((last[most].mean,))
        return paired(variant_title(*least), a_est, variant_title(*most), b_est)

    def findings(self, label: str | None = None) -> list[str]:
        label = label or self.source.get("model", "model")
        if not self.sanity:
            return []
        first, last = self.evidence(0), self.evidence(-1)
        out = [
            f"{label}, cascading randomisation on {len(self.images)} image(s), {self.granularity} by "
            f"{self.granularity} from the head down: mean Spearman ρ between the original and the randomised "
            f"maps (95% t intervals over images) after re-initialising the {first[0].cut}: "
            + ", ".join(r.text() for r in first)
            + f"; after every layer down to the {last[0].cut}: "
            + ", ".join(r.text() for r in last)
            + "."
        ]
        groups: dict[str, list[str]] = {}
        for r in last:
            groups.setdefault(r.outcome, []).append(r.title)
        parts = []
        if "still correlated" in groups:
            parts.append(
                "still correlated with the original map (interval above 0) — these reflect the image more than "
                "the weights: " + ", ".join(groups["still correlated"])
            )
        if "anti-correlated" in groups:
            parts.append("anti-correlated (interval below 0): " + ", ".join(groups["anti-correlated"]))
        if "not resolved" in groups:
            parts.append("correlation not resolved from 0: " + ", ".join(groups["not resolved"]))
        text = "With every layer re-initialised, " + "; ".join(parts) + "."
        kept = [r for r in last if r.outcome == "still correlated" and r.method in ("gradcam", "saliency")]
        if kept:
            text += (
                " Unlike Adebayo et al., who found Grad-CAM and gradient maps sensitive to the weights, a "
                "resolved correlation remains for " + ", ".join(r.title for r in kept) + "."
            )
        else:
            text += " (Adebayo et al. found Grad-CAM and gradient maps sensitive to the weights.)"
        out.append(text)
        d = self.extremes()
        if d is not None:
            head = (
                f"Least vs most changed map: {d.a_label} ρ {number(d.a.mean, '+.2f')} vs {d.b_label} ρ "
                f"{number(d.b.mean, '+.2f')}"
            )
            if d.ci is None:
                out.append(f"{head}: not resolved (fewer than 2 images with both ρ defined).")
            else:
                interval = (
                    f"difference {d.difference:+.2f}, 95% CI [{d.ci.low:+.2f}, {d.ci.high:+.2f}], {d.method} "
                    f"over {d.a.seeds} images"
                )
                verdict = {
                    "higher": f"{d.b_label} changes more with the weights",
                    "lower": f"{d.a_label} changes more with the weights",
                }.get(d.outcome, "not resolved")
                out.append(f"{head} ({interval}): {verdict}.")
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
    def forward(x: torch.Tensor) -> torch.Tensor:
        return main_logits(model(x))

    return forward


def map_variants(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    methods: Sequence[str] = METHODS,
    ig_steps: int = 32,
    internal_batch_size: int | None = 64,
) -> dict[tuple[str, str], torch.Tensor]:
    """Every variant of every method's map (module docstring), keyed (method, variant): ``gradcam``
    (N, h, w) at the last stage's resolution; ``integrated_gradients`` and ``saliency`` (N, H, W), absolute
    and signed, from one attribution each. ``images`` (N, C, H, W) normalised; ``targets`` (N,) class
    indices. The model's mode flag is restored."""
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
    maps: dict[tuple[str, str], torch.Tensor] = {}
    try:
        with torch.enable_grad():
            for m in methods:
                if m == "gradcam":
                    _, layer = gradcam_layer(model)
                    cam = attr.LayerGradCam(forward, layer).attribute(
                        images, target=targets, relu_attributions=False
                    )
                    maps[(m, "signed")] = cam.detach().squeeze(1).float()  # (N, 1, h, w) → (N, h, w)
                elif m == "integrated_gradients":
                    ig = attr.IntegratedGradients(forward).attribute(
                        images,
                        baselines=torch.zeros_like(images),
                        target=targets,
                        n_steps=ig_steps,
                        internal_batch_size=internal_batch_size,
                    )
                    summed = ig.detach().sum(1).float()
                    maps[(m, "absolute")] = summed.abs()
                    maps[(m, "signed")] = summed
                else:
                    # A leaf that requires grad, so Captum need not switch it on (and warn about it).
                    leaf = images.detach().clone().requires_grad_(True)
                    grad = attr.Saliency(forward).attribute(leaf, target=targets, abs=False).detach().float()
                    maps[(m, "absolute")] = grad.abs().amax(1)
                    maps[(m, "signed")] = grad.sum(1)
    finally:
        model.train(was_training)
    return maps


def attribution_maps(
    model: nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    *,
    methods: Sequence[str] = METHODS,
    ig_steps: int = 32,
    internal_batch_size: int | None = 64,
) -> dict[str, torch.Tensor]:
    """The map shown for each method (:func:`map_variants`' first variant): ``gradcam`` (N, h, w), signed;
    ``integrated_gradients`` and ``saliency`` (N, H, W), non-negative."""
    variants = map_variants(
        model, images, targets, methods=methods, ig_steps=ig_steps, internal_batch_size=internal_batch_size
    )
    return {m: variants[(m, VARIANTS[m][0])] for m in methods}


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
def spearman(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    """Spearman rank correlation of two equally sized arrays (flattened): the Pearson correlation of their
    average ranks. NaN when either is constant."""
    x = np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64).ravel()
    y = np.asarray(b.detach().cpu() if isinstance(b, torch.Tensor) else b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"spearman needs arrays of one size, got {x.size} and {y.size}")
    rx, ry = rankdata(x) - (x.size + 1) / 2, rankdata(y) - (y.size + 1) / 2  # average ranks of ties
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
        # Drawn on the CPU from the CPU generator (a seed gives the same weights on any device), then copied.
        if isinstance(m, nn.Conv2d):
            w = torch.empty(m.weight.shape, dtype=torch.float32, device="cpu")
            nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu", generator=generator)
            m.weight.copy_(w)
            if m.bias is not None:
                m.bias.zero_()
            count += 1
        elif isinstance(m, nn.Linear):
            w = torch.empty(m.weight.shape, dtype=torch.float32, device="cpu")
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
    original: dict[tuple[str, str], torch.Tensor] | None = None,
    progress: Progress | None = None,
    partial: PartialResults | None = None,
) -> list[SanityRow]:
    """Adebayo et al.'s cascading randomisation of a *copy* of ``model`` (module docstring): cut j
    re-initialises group j on top of groups 0…j−1, never a fresh copy. ``original``: the unrandomised model's
    :func:`map_variants` (computed if not given). ``partial`` keeps each finished cut's ρ values; a cut found
    there is not recomputed (its re-initialisation still runs, so later cuts see the same weights)."""
    groups = randomization_groups(model, granularity)
    if original is None:
        original = map_variants(model, images, targets, methods=methods, ig_steps=ig_steps)
    keys = [(m, v) for m in methods for v in VARIANTS[m]]
    randomised = copy.deepcopy(model)
    modules = dict(randomised.named_modules())
    generator = torch.Generator(device="cpu").manual_seed(seed)  # reinitialize() draws on the CPU
    partial = partial or PartialResults(None, {})
    rows: list[SanityRow] = []
    count = 0
    for j, (label, names) in enumerate(groups):
        for n in names:
            # Re-initialising consumes the generator identically whether or not the cut is cached below.
            count += reinitialize(modules[n], generator)
        key = f"cut{j}"
        stored = partial.get(key) if key in partial else {}
        if not all(f"{m}/{v}" in stored for m, v in keys):
            maps = map_variants(randomised, images, targets, methods=methods, ig_steps=ig_steps)
            stored = {
                f"{m}/{v}": [spearman(original[(m, v)][i], maps[(m, v)][i]) for i in range(images.shape[0])]
                for m, v in keys
            }
            partial.put(key, stored)
        rows += [SanityRow(label, count, m, tuple(float(x) for x in stored[f"{m}/{v}"]), v) for m, v in keys]
        if progress is not None:
            progress(j + 1, len(groups))
    return rows


def attribute_images(
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
        raise UsageError(f"{len(names)} class names for a model with {num_classes} outputs")
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
    variants = map_variants(model, images, targets, methods=methods, ig_steps=ig_steps)
    maps = {m: variants[(m, VARIANTS[m][0])] for m in methods}
    rows: list[SanityRow] = []
    if sanity:
        rows = cascading_randomization(
            model, images, targets, methods=methods, granularity=granularity, ig_steps=ig_steps, seed=seed,
            original=variants, progress=progress, partial=partial,
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
