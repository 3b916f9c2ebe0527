"""The inception-aux study: GoogLeNet trained with auxiliary-loss weight 0.3 (the paper's), weight 0, and
with the auxiliary heads removed, from the same seeds.

Claims under test. Szegedy et al. 2015 (*Going Deeper with Convolutions*, arXiv:1409.4842, §5) add two
auxiliary classifiers (on inception 4a and 4d, loss weight 0.3) "to increase the gradient signal that gets
propagated back" to the lower layers. Szegedy et al. 2015 (*Rethinking the Inception Architecture*,
arXiv:1512.00567, §4) found that they "did not result in improved convergence early in the training" —
training with and without them looks virtually identical until high accuracy — and that near the end the
net with them reaches a slightly higher plateau: they "act as regularizer".

Definitions (errors are fractions in results.json and percentages in sentences):

* **conditions** — ``aux 0.3``: heads on, training loss L = L_main + 0.3·(L_aux1 + L_aux2); ``aux 0``: heads
  on (they run, and draw dropout masks) but weight 0, so the trainable network and its initial weights equal
  those of ``aux 0.3`` for the same seed; ``no aux heads``: ``aux_logits=False``, a different draw of the
  initial weights from the same seed (the heads' construction consumes random numbers).
* **early training** — the running training error (training mode, the main classifier on the batches
  being trained on: what Szegedy et al. plot as training progress) averaged over iterations 1 … ``early_step``,
  i.e. over ``early_step × batch_size`` images; lower means faster early progress. (The eval-mode error early
  in training is not used: with batch norm its running statistics lag the weights and it jumps by tens of
  points between evaluations.) **Final** — the eval-mode error over the whole fixed training subset at the
  last step, and the test error (the test split, or its fixed ``test_subset``).
* **one gradient measure** — ‖∂L/∂y‖ at the outputs y of the stem and of every inception module (3a … 5b),
  on the study's diagnostics batch, in training mode (dropout on, with the same masks for every condition:
  the probe reseeds), from one forward pass with three losses: ``main`` (cross-entropy of the main logits),
  ``aux`` (L_aux1 + L_aux2, unweighted) and ``train`` (the condition's training loss: main + w·aux). The aux
  contribution at a module is ‖∂L_train/∂y‖ ÷ ‖∂L_main/∂y‖ (1 = none). Measured at initialisation, at every
  evaluation step and at the end. The heads of ``aux 0`` exist, so its ``aux`` gradient shows what the heads
  would send without being trained on.
* **margins** — :mod:`depthlab.studies.stats`: error differences against ``compare`` (floor, seed
  spread, sampling error); log10 gradient ratios against ``compare_log`` (floor 0.1, seed spread).

Inputs. The paper's aux head average-pools the 14×14 map of 4a/4d with a 5×5/3 window to 4×4; that is exact
at 224×224 inputs (the ``paper`` preset). The CPU ``quick`` preset resizes Fashion-MNIST to 32×32 (the
paper variant's smallest input is 31): the 4a/4d map is 2×2, too small for the 5×5 window, so the head pools
adaptively to 4×4 (each of the 2×2 values repeated) — the documented adaptation of
:class:`depthlab.models.googlenet.AuxPool`; ``--set aux_pool=fixed`` insists on the paper's pool alone (it
refuses inputs other than 223–270 px), ``adaptive`` is torchvision's.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from depthlab.report.format import pct, sci
from depthlab.studies import register_study
from depthlab.studies.engine import (
    Condition,
    Finding,
    ProbeContext,
    Recipe,
    ReportTable,
    RunSpec,
    Section,
    Study,
    StudyError,
    StudyResult,
    StudyRun,
)
from depthlab.studies.stats import (
    Comparison,
    Estimate,
    compare,
    estimate,
)
from depthlab.studies.stats import (
    legacy_compare_log as compare_log,
)

__all__ = ["STUDY", "PRESETS", "InceptionAuxPreset", "TAPS", "compute_findings", "label", "probe"]

# The outputs where the gradient is measured: the stem, then every inception module (input → output).
TAPS: tuple[str, ...] = (
    "stem",
    "stages.0.inception3a",
    "stages.0.inception3b",
    *(f"stages.1.inception4{c}" for c in "abcde"),
    "stages.2.inception5a",
    "stages.2.inception5b",
)
EARLY_TAPS = TAPS[:3]  # stem, 3a, 3b: the lower layers the aux heads were meant to reach
PAPER_WEIGHT = 0.3


def tap_label(tap: str) -> str:
    return "stem" if tap == "stem" else tap.rsplit("inception", 1)[-1]


# ------------------------------------------------------------------------------------------------ presets
@dataclass(frozen=True)
class InceptionAuxPreset(Recipe):
    """A :class:`Recipe` plus the study's factors.

    ``aux_weights``: the weights of the aux losses trained with the heads on (0.3 is the paper's);
    ``no_heads``: also train with the heads removed. ``variant``: the zoo GoogLeNet variant; ``norm``: its
    normalisation (``None``: the 2015 paper's, none; ``"batch"``: BN after every conv). ``aux_pool``:
    the aux head's pooling (``paper``, ``fixed`` or ``adaptive``: see :mod:`depthlab.models.googlenet`).
    ``early_step``: early training is the mean running training error over iterations 1 … ``early_step``
    (a multiple of ``log_every``).
    """

    aux_weights: tuple[float, ...] = (PAPER_WEIGHT, 0.0)
    no_heads: bool = True
    variant: str = "paper"
    norm: str | None = None
    aux_pool: str = "paper"
    early_step: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.aux_weights or any(not math.isfinite(w) or w < 0 for w in self.aux_weights):
            raise StudyError(f"aux_weights must be non-negative numbers, got {list(self.aux_weights)}")
        if len(set(self.aux_weights)) != len(self.aux_weights):
            raise StudyError(f"aux_weights must not repeat, got {list(self.aux_weights)}")
        if self.early_step < 1 or self.early_step >= self.steps or self.early_step % self.log_every:
            raise StudyError(
                f"early_step must be a multiple of log_every ({self.log_every}) below steps ({self.steps}), "
                f"got {self.early_step}"
            )

    def describe(self) -> str:
        weights = ", ".join(f"{w:g}" for w in self.aux_weights)
        heads = " and without aux heads" if self.no_heads else ""
        size = f"{self.image_size}×{self.image_size} inputs" if self.image_size else "native-size inputs"
        return (
            f"GoogLeNet ({self.variant}{', batch norm' if self.norm else ''}, {size}) with aux weight {weights}{heads}; "
            + super().describe()
        )


QUICK_NOTE = (
    "sized for a 2-core CPU: Fashion-MNIST resized to 32×32 (the paper variant's smallest input; the 4a/4d "
    "maps are 2×2, so the aux head pools adaptively to 4×4 instead of the paper's 5×5/3 window), a fixed "
    "1,000-image training subset, 200 iterations of batch 32 (about 6 passes), early training compared at "
    "iteration 50, held-out error on 1,000 validation images, test error on a fixed 2,000-image test subset. Batch norm after every conv (the 2015 GoogLeNet has none and did not leave chance level "
    "in 100 iterations here; the nets of Rethinking the Inception Architecture had it; --set norm=none selects the paper's). "
    "The zoo's GoogLeNet has no width multiplier, so the network is the paper's full width"
)
PRESETS: dict[str, InceptionAuxPreset] = {
    p.name: p
    for p in (
        InceptionAuxPreset(
            name="quick",
            dataset="fashion-mnist",
            image_size=32,
            norm="batch",
            steps=200,
            batch_size=32,
            lr=0.05,
            schedule="onecycle",
            weight_decay=2e-4,
            augment=False,
            val_size=1000,
            train_subset=1000,
            test_subset=2000,
            eval_every=25,
            eval_subset=250,
            eval_train=True,
            test_at_end=True,
            log_every=5,
            seeds=2,
            diag_batch=32,
            early_step=50,
            note=QUICK_NOTE,
        ),
        InceptionAuxPreset(
            name="paper",
            dataset="fashion-mnist",
            image_size=224,
            norm="batch",
            steps=20000,
            batch_size=128,
            lr=0.04,
            schedule="cosine",
            weight_decay=2e-4,
            augment=True,
            val_size=5000,
            eval_every=1000,
            eval_subset=2000,
            eval_train=True,
            test_at_end=True,
            log_every=100,
            seeds=3,
            diag_batch=64,
            early_step=3000,
            note="for a GPU: Fashion-MNIST resized to 224×224, where the aux head's 5×5/3 average pool on the "
            "14×14 4a/4d maps gives exactly the paper's 4×4; all 55,000 training images, ~47 epochs, crop + "
            "flip, 3 seeds. Deviations: batch norm after every conv (as in the nets of Rethinking the Inception Architecture; "
            "--set norm=none for the 2015 GoogLeNet); SGD momentum 0.9 with a cosine schedule (the paper: asynchronous SGD, "
            "lr −4% every 8 epochs, Polyak averaging), one GPU, Fashion-MNIST instead of ImageNet",
        ),
    )
}


# ----------------------------------------------------------------------------------------------- the grid
def label(weight: float | None) -> str:
    """The condition's name: ``aux 0.3``, ``aux 0`` or (``None``) ``no aux heads``."""
    return "no aux heads" if weight is None else f"aux {weight:g}"


def _run_name(weight: float | None, seed: int) -> str:
    return f"{'noaux' if weight is None else f'aux{weight:g}'}-s{seed}"


def model_kwargs(preset: InceptionAuxPreset, heads: bool) -> dict[str, Any]:
    return {"variant": preset.variant, "norm": preset.norm, "aux_logits": heads, "aux_pool": preset.aux_pool}


def grid(
    preset: InceptionAuxPreset, seeds: Sequence[int], device: str, data_dir: str | None
) -> list[RunSpec]:
    """seed → aux weights (heads on) → heads removed: the first seed of every condition finishes first."""
    specs = []
    weights: list[float | None] = [*preset.aux_weights, *([None] if preset.no_heads else [])]
    for seed in seeds:
        for w in weights:
            config = preset.train_config(
                "googlenet", seed, model_kwargs=model_kwargs(preset, w is not None), device=device,
                data_dir=data_dir, aux_weight=0.0 if w is None else w,
            )  # fmt: skip
            factors = {"aux_weight": 0.0 if w is None else w, "aux_heads": w is not None}
            specs.append(RunSpec(_run_name(w, seed), label(w), factors, seed, config))
    return specs


# ------------------------------------------------------------------------------------------------- probe
def probe(ctx: ProbeContext) -> dict[str, Any]:
    """‖∂L/∂y‖ at :data:`TAPS` for the main, aux and training losses, from one forward pass (training mode,
    dropout masks reseeded so every condition and moment draws the same ones)."""
    import torch
    import torch.nn.functional as F

    from depthlab.analysis.gradients import output_gradients
    from depthlab.models.base import aux_logits, main_logits

    smoothing = float(ctx.spec.config.label_smoothing)
    weight = float(ctx.spec.factors["aux_weight"])

    def ce(logits: Any, y: Any) -> Any:
        return F.cross_entropy(logits.float(), y, label_smoothing=smoothing)

    def main(out: Any, y: Any) -> Any:
        return ce(main_logits(out), y)

    def aux(out: Any, y: Any) -> Any:
        return sum(ce(a, y) for a in aux_logits(out))

    losses = {"main": main}
    if ctx.spec.factors["aux_heads"]:
        losses["aux"] = aux
        losses["train"] = lambda out, y: main(out, y) + weight * aux(out, y)
    torch.manual_seed(0)  # the engine forks the RNG around the probe; this fixes the dropout masks
    g = output_gradients(ctx.model, ctx.images, ctx.labels, TAPS, losses, mode="train")
    return {"grad": g.to_dict()}


# ------------------------------------------------------------------------------------------------ findings
@dataclass(frozen=True)
class Groups:
    """The study's conditions: ``aux`` (the largest weight > 0), ``zero`` (weight 0, heads on), ``none``."""

    aux: Condition | None
    zero: Condition | None
    none: Condition | None
    others: tuple[Condition, ...]


def groups(result: StudyResult) -> Groups:
    on = [c for c in result.conditions() if c.factors.get("aux_heads", True)]
    weighted = sorted((c for c in on if float(c.factors.get("aux_weight", 0)) > 0),
                      key=lambda c: abs(float(c.factors["aux_weight"]) - PAPER_WEIGHT))  # fmt: skip
    zero = next((c for c in on if float(c.factors.get("aux_weight", -1)) == 0), None)
    none = next((c for c in result.conditions() if c.factors.get("aux_heads") is False), None)
    aux = weighted[0] if weighted else None
    others = tuple(c for c in weighted[1:])
    return Groups(aux, zero, none, others)


def early_step(result: StudyResult) -> int | None:
    """The preset's early step, else half of the shortest run."""
    if isinstance(result.preset, InceptionAuxPreset):
        return result.preset.early_step
    steps = [r.step for r in result.runs if r.step > 0]
    return min(steps) // 2 if steps else None


def _early_mean(run: StudyRun, step: int) -> float | None:
    """The mean running training error of the rows logged at iterations 1 … ``step`` (each row covers the
    same number of batches)."""
    rows = [e for s, e in run.curves.get("train", ()) if s <= step]
    return sum(rows) / len(rows) if rows else None


def early_error(c: Condition, step: int) -> Estimate | None:
    """Early training of condition ``c`` over seeds: the mean running training error over iterations 1 …
    ``step``; ``images`` = step × batch size."""
    batch = max((int(r.config.get("batch_size", 0)) for r in c.runs), default=0)
    return estimate([_early_mean(r, step) for r in c.runs], step * batch)


def _seeds(a: Estimate, b: Estimate) -> str:
    n = min(a.seeds, b.seeds)
    return f"{n} seed{'s' if n > 1 else ''}"


def _diff_sentence(c: Comparison, noun: str, when: str) -> str:
    """'A and B … within the margin' or 'A … lower than B …, beyond the margin'."""
    a, b = c.a, c.b
    if c.within:
        return (
            f"{when}, {c.a_label} and {c.b_label} have the same {noun} within the margin ({pct(a.mean, a.std)} vs "
            f"{pct(b.mean, b.std)}, {_seeds(a, b)}; difference {100 * abs(c.difference):.1f} points, margin "
            f"{100 * c.margin:.1f})"
        )
    word = "lower" if c.sign < 0 else "higher"
    return (
        f"{when}, {c.a_label} has {word} {noun} than {c.b_label} ({pct(a.mean, a.std)} vs {pct(b.mean, b.std)}, "
        f"{_seeds(a, b)}): {100 * abs(c.difference):.1f} points, beyond the {100 * c.margin:.1f}-point margin"
    )


def _error_findings(result: StudyResult, g: Groups) -> list[Finding]:
    out: list[Finding] = []
    step = early_step(result)
    last = max((r.step for r in result.runs), default=0)
    train_images = max((r.images.get("train_eval", 0) for r in result.runs), default=0)
    test_images = max((r.images.get("test", 0) for r in result.runs), default=0)
    out.append(
        Finding(
            f"Early training is the running training error (training mode, the batches being fitted) averaged over "
            f"iterations 1–{step}; final training error the eval-mode error over all {train_images:,} images of the "
            f"fixed training subset at iteration {last}; test error over "
            f"{test_images:,} test images. ± is the standard deviation over seeds; an error margin is the larger "
            f"of one point, the sum of the seed deviations and two binomial standard errors.",
            "method",
            "end",
            {
                "early_step": step,
                "train_images": train_images,
                "test_images": test_images,
            },
        )
    )
    if g.aux is None:
        return out
    baselines = [c for c in (g.zero, g.none) if c is not None]
    # Early training: Rethinking the Inception Architecture §4 — no faster convergence early on.
    if step is not None:
        for base in baselines:
            a, b = early_error(g.aux, step), early_error(base, step)
            if a is None or b is None:
                continue
            c = compare(g.aux.name, a, base.name, b)
            if c.within:
                verdict = "the auxiliary losses did not speed up early training, as Szegedy et al. 2015 (Rethinking the Inception Architecture, §4) found"
            elif c.sign < 0:
                verdict = (
                    "the auxiliary losses sped up early training here, unlike Szegedy et al. 2015 (Rethinking the Inception Architecture, §4), who "
                    "found no faster early convergence"
                )
            else:
                verdict = (
                    "the auxiliary losses slowed early training here; Szegedy et al. 2015 (Rethinking the Inception Architecture, §4) found early "
                    "training virtually identical with and without them"
                )
            out.append(
                Finding(
                    _diff_sentence(c, "mean running training error", f"Over iterations 1–{step}")
                    + f": {verdict}.",
                    "early",
                    "during",
                    {**c.to_dict(), "step": step},
                    c.within,
                )
            )
    # Final errors.
    for split, noun in (("train_eval", "final training error"), ("test", "test error")):
        for base in baselines:
            a, b = g.aux.error(split), base.error(split)
            if a is None or b is None:
                continue
            c = compare(g.aux.name, a, base.name, b)
            text = _diff_sentence(c, noun, "At the end")
            if split == "test":
                if c.sign < 0:
                    text += (
                        ": consistent with Szegedy et al. 2015 (Rethinking the Inception Architecture, §4), where the net with auxiliary heads ends "
                        "on a slightly higher accuracy plateau"
                    )
                elif c.within:
                    text += (
                        ": the slightly higher final accuracy Szegedy et al. 2015 (Rethinking the Inception Architecture, §4) report with auxiliary "
                        "heads is not resolved at this scale"
                    )
                else:
                    text += ": unlike Szegedy et al. 2015 (Rethinking the Inception Architecture, §4), where the net with auxiliary heads ends slightly more accurate"
            out.append(Finding(text + ".", "final", "end", c.to_dict(), c.within))
    # Regulariser: the test − train gap, per seed.
    gaps = {}
    for cond in (g.aux, *baselines):
        vals = []
        for r in cond.runs:
            if "test" in r.final and "train_eval" in r.final:
                vals.append(r.final["test"] - r.final["train_eval"])
        e = estimate(vals)
        if e is not None:
            gaps[cond.name] = e
    if g.aux.name in gaps:
        for base in baselines:
            if base.name not in gaps:
                continue
            a, b = gaps[g.aux.name], gaps[base.name]
            c = compare(g.aux.name, a, base.name, b)  # no images: floor and seed spread only
            if c.within:
                text = (
                    f"The generalisation gap (test − training error) of {g.aux.name} and {base.name} is the same "
                    f"within the margin ({100 * a.mean:.1f} vs {100 * b.mean:.1f} points, margin "
                    f"{100 * c.margin:.1f} from the seed spread and a one-point floor): no regularising effect "
                    f"is resolved here."
                )
            else:
                word = "smaller" if c.sign < 0 else "larger"
                tail = (
                    "the regularising effect Szegedy et al. 2015 (Rethinking the Inception Architecture, §4) attribute to the auxiliary heads"
                    if c.sign < 0
                    else "the opposite of the regularising effect Szegedy et al. 2015 (Rethinking the Inception Architecture, §4) attribute to them"
                )
                text = (
                    f"{g.aux.name}'s generalisation gap (test − training error) is {word} than {base.name}'s "
                    f"({100 * a.mean:.1f} vs {100 * b.mean:.1f} points, beyond the {100 * c.margin:.1f}-point "
                    f"margin of the seed spread): {tail}."
                )
            out.append(Finding(text, "regulariser", "end", c.to_dict(), c.within))
    # The control: weight 0 and no heads train the same kind of network.
    if g.zero is not None and g.none is not None:
        a, b = g.zero.error("test"), g.none.error("test")
        if a is not None and b is not None:
            c = compare(g.zero.name, a, g.none.name, b)
            text = _diff_sentence(c, "test error", "Control: at the end")
            text += (
                " — both train only the main classifier (with weight 0 the heads run but get no gradient); "
                "they differ in the draw of the initial weights and dropout masks only"
                + (
                    ", so the margin covers that variation."
                    if c.within
                    else ", which here exceeds the margin."
                )
            )
            out.append(Finding(text, "control", "end", c.to_dict(), c.within))
    return out


# -------------------------------------------------------------------------------- gradient measurements
def _grads(entry: Any) -> Any:
    from depthlab.analysis.gradients import OutputGradients

    if not isinstance(entry, dict) or "grad" not in entry:
        return None
    return OutputGradients.from_dict(entry["grad"])


def during(run: StudyRun) -> list[tuple[int, Any]]:
    """(step, OutputGradients) of the probes during training, before the last step."""
    last = int(run.config.get("steps") or 0)
    steps = run.diagnostics.get("steps", {})
    out = [(int(s), _grads(v)) for s, v in steps.items() if int(s) < last]
    return sorted((s, g) for s, g in out if g is not None)


def contribution(g: Any, tap: str) -> float:
    """‖∂L_train/∂y‖ ÷ ‖∂L_main/∂y‖ at ``tap`` (1: the aux losses add nothing there)."""
    if g is None or "train" not in g.grad:
        return float("nan")
    main = g.grad["main"].get(tap, 0.0)
    return g.grad["train"][tap] / main if main > 0 else float("nan")


def main_ratio(g: Any) -> float:
    """‖∂L_main/∂y‖ at the stem output ÷ that at inception 5b (the first/last ratio of the main loss)."""
    if g is None:
        return float("nan")
    last = g.grad["main"].get(TAPS[-1], 0.0)
    return g.grad["main"].get(TAPS[0], 0.0) / last if last > 0 else float("nan")


def _log(values: Sequence[float]) -> Estimate | None:
    return estimate([math.log10(v) for v in values if v > 0 and math.isfinite(v)])


def _gradient_findings(result: StudyResult, g: Groups) -> list[Finding]:
    out: list[Finding] = []
    if g.aux is None:
        return out
    runs = g.aux.runs
    w = float(g.aux.factors["aux_weight"])
    init = [_grads(r.diagnostics.get("init")) for r in runs]
    if not any(x is not None for x in init):
        return out
    # The aux contribution at the stem, 3a and 3b, at init and during training, one value per seed.
    for when, per_seed in (
        ("init", [[contribution(x, tap) for x in init if x is not None] for tap in EARLY_TAPS]),
        ("during", [[statistics.median(contribution(x, tap) for _, x in during(r)) for r in runs if during(r)]
                    for tap in EARLY_TAPS]),
    ):  # fmt: skip
        if not per_seed[0]:
            continue
        parts, numbers, verdicts, means = [], {}, [], []
        for tap, vals in zip(EARLY_TAPS, per_seed, strict=True):
            e = _log(vals)
            if e is None:
                continue
            c = compare_log(f"{g.aux.name} {tap_label(tap)}", e, "none", Estimate((0.0,) * e.seeds))
            numbers[tap_label(tap)] = {"ratio": vals, "log10_margin": c.margin, "within_margin": c.within}
            parts.append(f"{tap_label(tap)} {', '.join(sci(v) for v in vals)}")
            verdicts.append(c.sign)
            means.append(e.mean)
        if not parts:
            continue
        moment = (
            "At initialisation"
            if when == "init"
            else f"During training (median over {max(len(during(r)) for r in runs)} probes per seed)"
        )
        if all(s > 0 for s in verdicts):
            verdict = (
                f"the auxiliary losses enlarge the gradient that reaches the lower layers beyond the margin "
                f"(by a factor of {10 ** min(means):.2f} or more, mean over seeds)"
            )
        elif all(s == 0 for s in verdicts):
            verdict = "the auxiliary losses do not change the gradient that reaches the lower layers beyond the margin"
        else:
            verdict = "the change is beyond the margin at some of these outputs only"
        out.append(
            Finding(
                f"{moment}, ‖∂L_train/∂y‖ ÷ ‖∂L_main/∂y‖ of {g.aux.name} (L_train = L_main + {w:g}·L_aux, one "
                f"forward pass) is {'; '.join(parts)} (one value per seed; margin {numbers[next(iter(numbers))]['log10_margin']:.2f} "
                f"in log10 units from the seed spread): {verdict}.",
                "gradient",
                when,
                numbers,
                all(s == 0 for s in verdicts),
            )
        )
    # The training loss's gradient at the stem, across conditions (the same tap, so sizes do not matter).
    stem = TAPS[0]
    series: dict[str, tuple[list[float], list[float]]] = {}
    for c in (g.aux, g.zero, g.none):
        if c is None:
            continue
        key = "train" if c.factors.get("aux_heads", True) else "main"
        at_init = [
            x.grad[key][stem] for x in (_grads(r.diagnostics.get("init")) for r in c.runs) if x is not None
        ]
        mid = [statistics.median(x.grad[key][stem] for _, x in during(r)) for r in c.runs if during(r)]
        series[c.name] = (at_init, mid)
    for base in (g.zero, g.none):
        if base is None or base.name not in series or g.aux.name not in series:
            continue
        for when, idx in (("init", 0), ("during", 1)):
            a, b = _log(series[g.aux.name][idx]), _log(series[base.name][idx])
            if a is None or b is None:
                continue
            c = compare_log(g.aux.name, a, base.name, b)
            moment = (
                "At initialisation"
                if when == "init"
                else "During training (median over the probes of each seed)"
            )
            va, vb = series[g.aux.name][idx], series[base.name][idx]
            if c.within:
                rel = "the same within the margin"
            else:
                rel = f"{10 ** abs(c.difference):.2f}× {'larger' if c.sign > 0 else 'smaller'}"
            out.append(
                Finding(
                    f"{moment}, the gradient of each condition's training loss at the stem output, ‖∂L/∂y_stem‖, "
                    f"is {rel} for {g.aux.name} {'as' if c.within else 'than'} for {base.name} ({', '.join(sci(v) for v in va)} vs "
                    f"{', '.join(sci(v) for v in vb)}, one value per seed; margin {c.margin:.2f} in log10 units)"
                    + (
                        " — the same initial weights, so this is the aux losses' contribution alone"
                        if when == "init" and base is g.zero
                        else ""
                    )
                    + ".",
                    "gradient",
                    when,
                    {**c.to_dict(), "a_raw": va, "b_raw": vb},
                    c.within,
                )
            )
    return out


def compute_findings(result: StudyResult) -> list[Finding]:
    """The study's findings, in reading order: method, early training, final errors, regulariser, control,
    gradients."""
    if not any(r.final for r in result.runs):
        return [Finding("No run has logged an error yet, so there is nothing to compare.", "status", "end")]
    out: list[Finding] = []
    unfinished = [r for r in result.runs if not r.completed]
    if unfinished:
        names = ", ".join(f"{r.condition} (seed {r.seed}, {r.status}, step {r.step})" for r in unfinished)
        out.append(
            Finding(
                f"Not every run has completed: {names}; their numbers are from where they stopped.",
                "status",
                "end",
            )  # fmt: skip
        )
    g = groups(result)
    out += _error_findings(result, g)
    out += _gradient_findings(result, g)
    return out


# ------------------------------------------------------------------------------------------------- report
def sections(result: StudyResult) -> list[Section]:
    from depthlab.studies.inception_aux import figures as figs

    step = early_step(result)
    rows = []
    for c in result.conditions():
        e = early_error(c, step) if step is not None else None
        cells = [c.name, pct(e.mean, e.std) if e else "—"]
        for split in ("train_eval", "test"):
            x = c.error(split)
            cells.append(pct(x.mean, x.std) if x else "—")
        rows.append(tuple(cells))
    table = ReportTable(
        "Errors by condition",
        ("condition", f"running training error, iterations 1–{step}", "final training error", "test error"),
        tuple(rows),
        "Early: the mean running training error (training mode) of the batches of iterations 1 to the early step; "
        "final: the eval-mode error over the fixed training subset, and the test error, at the last step; mean ± "
        "std over seeds.",
    )
    grow = []
    g = groups(result)
    for c in (g.aux, *g.others):
        if c is None:
            continue
        for r in c.runs:
            x = _grads(r.diagnostics.get("init"))
            dur = during(r)
            grow.append(
                (c.name, str(r.seed))
                + tuple(sci(contribution(x, tap)) for tap in EARLY_TAPS)
                + tuple(sci(statistics.median(contribution(y, tap) for _, y in dur)) if dur else "—"
                        for tap in EARLY_TAPS)
            )  # fmt: skip
    gtable = ReportTable(
        "Aux contribution to the gradient of the lower layers",
        (
            "condition",
            "seed",
            *(f"init {tap_label(t)}" for t in EARLY_TAPS),
            *(f"during {tap_label(t)} (median)" for t in EARLY_TAPS),
        ),  # fmt: skip
        tuple(grow),
        "‖∂L_train/∂y‖ ÷ ‖∂L_main/∂y‖ at the output y of the stem and of inception 3a/3b (1 = the aux losses add "
        "nothing), training mode, the study's diagnostics batch, same dropout masks.",
    )
    return [
        Section(
            "results",
            "Training curves and final errors",
            tables=(table,),
            figures=tuple(figs.error_figures(result)),
        ),  # fmt: skip
        Section(
            "gradients",
            "Gradient reaching the lower layers",
            tables=(gtable,),
            figures=tuple(figs.gradient_figures(result)),
        ),  # fmt: skip
    ]


STUDY = register_study(
    Study(
        name="inception-aux",
        title="Inception's auxiliary classifiers",
        claim="GoogLeNet's auxiliary classifiers were added to strengthen the gradient reaching the lower layers "
        "(Going Deeper with Convolutions, Szegedy et al. 2015, §5); Szegedy et al. 2015 (Rethinking the Inception Architecture, §4) found they do not speed up early training and act "
        "as a mild regulariser. Do they, here, compared with weight 0 and with the heads removed?",
        presets=PRESETS,
        grid=grid,  # type: ignore[arg-type]
        findings=compute_findings,
        sections=sections,
        probe=probe,
    )
)
