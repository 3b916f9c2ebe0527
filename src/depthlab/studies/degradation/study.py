"""The degradation study: plain and residual networks of several depths trained with one recipe.

Claim under test (He et al. 2015, arXiv:1512.03385, Fig. 6 and 7): deeper *plain* networks end with higher
*training* error than shallower ones, while residual networks do not; and residual layers respond more
weakly than plain ones. Alongside, gradient diagnostics at initialisation and *during* training decide
between "vanishing gradients" (lecture notes) and the paper's "the gradients are healthy"; shattered
gradients (Balduzzi et al. 2017) are measured at initialisation.

Definitions (errors are fractions in results.json and percentages in sentences):

* **training error** — the Fig. 6 measure: the error over the whole training (sub)set the net is fitting,
  in eval mode, at the last step (split ``train_eval``). If a run did not record it, the running error of
  the last logged batches (split ``train``), and the sentence says so.
* **test error** — the final evaluation of the full test split.
* **one gradient measure** for every condition: ‖∂L/∂y‖ at each block's output, from the last block to the
  first; its first/last ratio names the outcome (:func:`depthlab.studies.stats.gradient_outcome`:
  vanishing < 0.1, exploding > 10, neither, unknown). Beside it, the per-stage effective step
  ‖∂L/∂W‖/‖W‖ and the forward signal growth ‖y_last‖/‖y_first‖. Measured with BN in training mode on the
  study's diagnostics batch: at initialisation, at every evaluation step during training, and at the end.
* **without batch norm** — the same architecture built with ``norm=None`` from the same seed, at
  initialisation only; its residual version uses SkipInit (``skipinit=True``: a learnable scalar, 0 at
  init, scales every residual branch) so it does not explode forward; the plain twin is unchanged.
* **margins** — see :mod:`depthlab.studies.stats`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
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
    EXPLODE,
    VANISH,
    Estimate,
    compare,
    estimate,
    gradient_outcome,
)
from depthlab.studies.stats import (
    legacy_compare_log as compare_log,
)

__all__ = [
    "STUDY",
    "PRESETS",
    "DegradationPreset",
    "compute_findings",
    "parse_model",
    "label",
    "run_shattered",
]

FAMILIES = ("plain", "resnet")  # plain twin first: plainN and resnetN share every layer but the shortcuts


# ------------------------------------------------------------------------------------------------ presets
@dataclass(frozen=True)
class DegradationPreset(Recipe):
    """A :class:`Recipe` plus the depths (CIFAR-style 6n+2: plainD and resnetD are trained for each).

    ``warmup_lr``/``warmup_lr_steps``/``warmup_lr_depth``: nets at least ``warmup_lr_depth`` deep train
    at the constant ``warmup_lr`` for the first ``warmup_lr_steps`` iterations (ResNet-110's recipe).
    ``shatter_points``: points on the line of the shattered-gradients measurement (0: skip it).
    """

    depths: tuple[int, ...] = (20, 56)
    warmup_lr: float | None = None
    warmup_lr_steps: int = 400
    warmup_lr_depth: int = 110
    shatter_points: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = [d for d in self.depths if not isinstance(d, int) or d < 8 or (d - 2) % 6]
        if not self.depths or bad:
            raise StudyError(
                f"depths must be 6n+2 CIFAR depths (20, 32, 44, 56, 110, …), got {list(self.depths)}"
            )

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(f"{family}{depth}" for depth in self.depths for family in FAMILIES)

    def describe(self) -> str:
        return f"depths {'/'.join(map(str, self.depths))} (plain and ResNet); " + super().describe()


QUICK_NOTE = (
    "sized for a 2-core CPU. Every run fits the same fixed 2,000-image subset of the Fashion-MNIST "
    "training split for 240 iterations of batch 128 (15 passes), so the final training error is a "
    "converged-regime number measured over the images the net fits (eval mode), not the online error of "
    "images it has not seen. The held-out curve is a fixed 500-image validation subset evaluated every 20 "
    "iterations (12 points); the full 10,000-image test set is evaluated at the end"
)
PRESETS: dict[str, DegradationPreset] = {
    p.name: p
    for p in (
        DegradationPreset(
            name="quick",
            dataset="fashion-mnist",
            depths=(20, 56),
            steps=240,
            batch_size=128,
            lr=0.1,
            schedule="onecycle",
            weight_decay=1e-4,
            augment=False,
            val_size=5000,
            train_subset=2000,
            eval_every=20,
            eval_subset=500,
            eval_train=True,
            test_at_end=True,
            log_every=10,
            seeds=2,
            diag_batch=128,
            note=QUICK_NOTE,
        ),
        DegradationPreset(
            name="standard",
            dataset="fashion-mnist",
            depths=(20, 32, 44, 56),
            steps=3000,
            batch_size=128,
            lr=0.1,
            schedule="onecycle",
            weight_decay=1e-4,
            augment=True,
            val_size=5000,
            eval_every=250,
            eval_subset=1000,
            eval_train=True,
            test_at_end=True,
            log_every=50,
            seeds=2,
            diag_batch=256,
            note="the paper's four depths on all 55,000 Fashion-MNIST training images, ~7 epochs each, crop + "
            "flip: a few hours on a 2-core CPU, minutes on a GPU",
        ),
        DegradationPreset(
            name="paper",
            dataset="cifar10",
            depths=(20, 32, 44, 56, 110),
            steps=64000,
            batch_size=128,
            lr=0.1,
            schedule="step",
            milestones=(32000.0, 48000.0),
            weight_decay=1e-4,
            augment=True,
            val_size=5000,
            eval_every=2000,
            eval_subset=5000,
            eval_train=True,
            test_at_end=False,
            normalize="pixel",
            log_every=100,
            seeds=2,
            diag_batch=256,
            warmup_lr=0.01,
            warmup_lr_steps=400,
            warmup_lr_depth=110,
            note="He et al. 2015 §4.2 (for a GPU): 45k/5k split (--set full=true trains on all 50k, as for "
            "Table 6), batch 128, lr 0.1 ÷10 at 32k and 48k, 64k iterations, weight decay 1e-4, momentum "
            "0.9, option-A shortcuts, per-pixel mean subtraction, 4-pixel pad (with the mean, after "
            "normalising) + random crop + flip; ResNet-110 and plain-110 warm up at lr 0.01 for 400 "
            "iterations (the paper: until training error < 80%, about 400). Remaining deviations: the "
            "paper ran one seed (five for ResNet-110) where this runs two; it reports the running training "
            "error, here the eval-mode error over the training set is the headline and the running error is "
            "plotted beside it; weight decay also applies to BN parameters and biases (as in the paper's "
            "Torch code); the lr warm-up is a fixed 400 iterations rather than 'until 80%'",
        ),
    )
}


# ----------------------------------------------------------------------------------------------- the grid
_NAME = re.compile(r"^(?P<family>[a-z_]+?)(?P<depth>\d+)$")


def parse_model(name: str) -> tuple[int, bool]:
    """(depth, residual) of a zoo name such as ``plain56`` or ``resnet110``."""
    m = _NAME.match(name)
    if m is None:
        raise StudyError(f"cannot read a depth from model name {name!r} (expected e.g. plain56, resnet20)")
    return int(m["depth"]), m["family"] != "plain"


def label(depth: int, residual: bool) -> str:
    return f"{'ResNet' if residual else 'plain'}-{depth}"


def grid(preset: DegradationPreset, seeds: Sequence[int], device: str, data_dir: str | None) -> list[RunSpec]:
    """seed → depth → plain, ResNet: the first seed of every condition finishes first."""
    specs = []
    for seed in seeds:
        for model in preset.models:
            depth, residual = parse_model(model)
            changes: dict[str, Any] = {}
            if preset.warmup_lr is not None and depth >= preset.warmup_lr_depth:
                changes = {"warmup": preset.warmup_lr_steps, "warmup_lr": preset.warmup_lr}
            config = preset.train_config(model, seed, device=device, data_dir=data_dir, **changes)
            specs.append(
                RunSpec(
                    f"{model}-s{seed}",
                    label(depth, residual),
                    {"depth": depth, "residual": residual},
                    seed,
                    config,
                )
            )
    return specs


def no_bn_kwargs(residual: bool) -> dict[str, Any]:
    """The BN-free twin's model keywords: residual nets add SkipInit so they do not explode forward."""
    return {"norm": None, "skipinit": True} if residual else {"norm": None}


def probe(ctx: ProbeContext) -> dict[str, Any]:
    """Diagnostics of one moment: BN in training mode always; at init also the BN-free twin (same seed);
    at the end also eval mode (Fig. 7 is measured that way)."""
    from depthlab.analysis.gradients import diagnose
    from depthlab.studies.engine import initial_model

    out = {"train": diagnose(ctx.model, ctx.images, ctx.labels, mode="train").to_dict()}
    if ctx.moment == "init":
        residual = bool(ctx.spec.factors["residual"])
        config = ctx.spec.config
        twin_config = dataclasses.replace(
            config, model_kwargs={**config.model_kwargs, **no_bn_kwargs(residual)}
        )
        twin = initial_model(twin_config, ctx.bundle).to(ctx.images.device)
        out["no_bn"] = diagnose(twin, ctx.images, ctx.labels, mode="train").to_dict()
    if ctx.moment == "end":
        out["eval"] = diagnose(ctx.model, ctx.images, ctx.labels, mode="eval").to_dict()
    return out


# ---------------------------------------------------------------------------------- shattered gradients
def run_shattered(
    preset: DegradationPreset, root: Path, bundle: Any, images: Any, labels: Any, seeds: Sequence[int]
) -> None:
    """Shattered gradients at init for plain/ResNet × preset depths × {BN, no BN} × seeds →
    ``root/analysis/shattered.json`` (skipped when present with the same settings)."""
    import torch

    from depthlab import create_model
    from depthlab.analysis.shattered import shattered_gradients

    if preset.shatter_points <= 0:
        return
    path = root / "analysis" / "shattered.json"
    settings = {"points": preset.shatter_points, "depths": list(preset.depths), "seeds": list(seeds)}
    if path.is_file() and json.loads(path.read_text()).get("settings") == settings:
        return
    results = []
    for depth in preset.depths:
        for residual in (False, True):
            for bn in (True, False):
                kwargs = {} if bn else no_bn_kwargs(residual)
                for seed in seeds:
                    torch.manual_seed(seed)
                    model = create_model(
                        f"{'resnet' if residual else 'plain'}{depth}",
                        num_classes=bundle.num_classes,
                        in_channels=bundle.in_channels,
                        **kwargs,
                    ).to(images.device)
                    r = shattered_gradients(
                        model, images[0], images[1], int(labels[0]), reference=images if bn else None,
                        points=preset.shatter_points, label=f"{label(depth, residual)}, {'BN' if bn else 'no BN'}",
                        seed=seed,
                    )  # fmt: skip
                    results.append({**r.to_dict(), "depth": depth, "residual": residual, "bn": bn})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"settings": settings, "results": results}) + "\n")
    tmp.replace(path)


# ------------------------------------------------------------------------------------------------ findings
def _by_key(result: StudyResult) -> dict[tuple[int, bool], Condition]:
    out = {}
    for c in result.conditions():
        if "depth" in c.factors:
            out[(int(c.factors["depth"]), bool(c.factors["residual"]))] = c
        else:
            try:
                out[parse_model(c.runs[0].model)] = c
            except StudyError:
                continue
    return out


def _train_split(conditions: Sequence[Condition]) -> str:
    """``train_eval`` when every run recorded it, else the running error ``train``."""
    runs = [r for c in conditions for r in c.runs]
    return "train_eval" if runs and all("train_eval" in r.final for r in runs) else "train"


def _est_text(e: Estimate) -> str:
    return pct(e.mean, e.std)


def _error_sentence(a_label: str, a: Estimate, b_label: str, b: Estimate, noun: str) -> Finding:
    c = compare(a_label, a, b_label, b)
    numbers = c.to_dict()
    seeds = f"{min(a.seeds, b.seeds)} seed{'s' if min(a.seeds, b.seeds) > 1 else ''}"
    if c.within:
        text = (
            f"{a_label} and {b_label} end with the same {noun} within the margin ({_est_text(a)} vs "
            f"{_est_text(b)}, {seeds}): the {100 * abs(c.difference):.1f}-point difference is inside the "
            f"{100 * c.margin:.1f}-point margin."
        )
    else:
        word = "higher" if c.sign > 0 else "lower"
        text = (
            f"{a_label} ends with {word} {noun} than {b_label} ({_est_text(a)} vs {_est_text(b)}, {seeds}): "
            f"{100 * abs(c.difference):.1f} points, beyond the {100 * c.margin:.1f}-point margin."
        )
    return Finding(text, "error", "end", numbers, c.within)


def _error_findings(result: StudyResult) -> list[Finding]:
    by = _by_key(result)
    split = _train_split(list(by.values()))
    noun = "training error" if split == "train_eval" else "running training error"
    depths = sorted({d for d, _ in by})
    out: list[Finding] = []
    images = next((c.error(split).images for c in by.values() if c.error(split) is not None), 0)
    if split == "train_eval":
        out.append(
            Finding(
                f"Training error is measured in eval mode over all {images:,} training images each net fits, "
                f"at the last step; test error over the {next((c.error('test').images for c in by.values() if c.error('test')), 0):,} "
                f"test images; ± is the standard deviation over seeds, and each margin is the larger of one "
                f"point, the sum of the seed deviations and two binomial standard errors.",
                "method",
                "end",
                {"train_images": images},
            )
        )
    else:
        out.append(
            Finding(
                "These runs did not record the eval-mode training error, so the running error of the last "
                f"logged training batches ({images:,} images) stands in for it.",
                "method",
                "end",
                {"train_images": images},
            )
        )
    for residual in (False, True):
        ds = [d for d in depths if (d, residual) in by and by[(d, residual)].error(split) is not None]
        if len(ds) >= 2:
            shallow, deep = by[(ds[0], residual)], by[(ds[-1], residual)]
            out.append(
                _error_sentence(deep.name, deep.error(split), shallow.name, shallow.error(split), noun)
            )  # type: ignore[arg-type]
        if len(ds) > 2:
            steps = [
                compare(
                    by[(b, residual)].name,
                    by[(b, residual)].error(split),
                    by[(a, residual)].name,
                    by[(a, residual)].error(split),
                )  # type: ignore[arg-type]
                for a, b in zip(ds, ds[1:], strict=False)
            ]
            signs = [s.sign for s in steps]
            family = "ResNet" if residual else "plain-net"
            trend = "rises" if all(s > 0 for s in signs) else "falls" if all(s < 0 for s in signs) else None
            listing = ", ".join(
                f"{s.b_label}→{s.a_label} {100 * s.difference:+.1f} (margin {100 * s.margin:.1f})"
                for s in steps
            )
            text = (
                f"{family.capitalize()} {noun} {trend} with every depth step beyond its margin ({listing})."
                if trend
                else f"{family.capitalize()} {noun} does not change monotonically beyond the margin at every depth step ({listing})."
            )
            out.append(Finding(text, "error", "end", {"steps": [s.to_dict() for s in steps]}, trend is None))
    for d in depths:
        if (d, False) in by and (d, True) in by:
            p, r = by[(d, False)], by[(d, True)]
            if p.error(split) is not None and r.error(split) is not None:
                out.append(_error_sentence(r.name, r.error(split), p.name, p.error(split), noun))  # type: ignore[arg-type]
    if depths and (depths[-1], False) in by and (depths[-1], True) in by:
        p, r = by[(depths[-1], False)], by[(depths[-1], True)]
        if p.error("test") is not None and r.error("test") is not None:
            out.append(_error_sentence(r.name, r.error("test"), p.name, p.error("test"), "test error"))  # type: ignore[arg-type]
    # Not overfitting: the deeper plain net fits its own training images worse.
    plain = [d for d in depths if (d, False) in by]
    if len(plain) >= 2 and split == "train_eval":
        shallow, deep = by[(plain[0], False)], by[(plain[-1], False)]
        te, ts, de, ds_ = deep.error(split), shallow.error(split), deep.error("test"), shallow.error("test")
        if None not in (te, ts, de, ds_) and compare(deep.name, te, shallow.name, ts).sign > 0:  # type: ignore[arg-type]
            gap_deep, gap_shallow = de.mean - te.mean, ds_.mean - ts.mean  # type: ignore[union-attr]
            out.append(
                Finding(
                    f"{deep.name}'s higher training error is not overfitting: overfitting would lower the error on "
                    f"the images a net fits, and {deep.name} fits its own training images worse "
                    f"({pct(te.mean)} vs {pct(ts.mean)}); its test − train gap is {100 * gap_deep:.1f} points "  # type: ignore[union-attr]
                    f"vs {100 * gap_shallow:.1f} for {shallow.name}.",
                    "error",
                    "end",
                    {"gap_deep": gap_deep, "gap_shallow": gap_shallow},
                )
            )
    return out


# -------------------------------------------------------------------------------- gradient measurements
def _diag(entry: Any, key: str) -> Any:
    from depthlab.analysis.gradients import Diagnostics

    if not isinstance(entry, dict) or key not in entry:
        return None
    return Diagnostics.from_dict(entry[key])


def _init(run: StudyRun, key: str = "train") -> Any:
    return _diag(run.diagnostics.get("init"), key)


def _during(run: StudyRun) -> list[tuple[int, Any]]:
    """(step, Diagnostics) of every probe during training, excluding the last step (the end)."""
    steps = run.diagnostics.get("steps", {})
    last = int(run.config.get("steps") or 0)
    return [
        (int(s), _diag(v, "train"))
        for s, v in sorted(steps.items(), key=lambda kv: int(kv[0]))
        if int(s) < last
    ]


def _ratio_text(values: Sequence[float]) -> str:
    return ", ".join(sci(v) for v in values)


def _outcome_phrase(outcome: str) -> str:
    return {
        "vanishing": f"vanishing (below {VANISH:g} for every seed)",
        "exploding": f"exploding: the gradient grows toward the input (above {EXPLODE:g} for every seed)",
        "neither": f"neither vanishing nor exploding (between {VANISH:g} and {EXPLODE:g} for every seed)",
        "unknown": "unknown (a non-finite or zero norm, or seeds on different sides of a threshold)",
    }[outcome]


@dataclass(frozen=True)
class GradientEvidence:
    """The first/last block-output gradient ratio of one condition, one value per seed."""

    condition: str
    init_bn: tuple[float, ...]
    during_bn: tuple[float, ...]  # per seed: the median over the probes during training
    during_range: tuple[float, float] | None
    probes: int
    init_no_bn: tuple[float, ...]
    forward_bn: tuple[float, ...]
    forward_no_bn: tuple[float, ...]
    stage_init: tuple[float, ...]  # per seed: effective step of the first stage / last stage
    stage_during: tuple[float, ...]

    @property
    def outcomes(self) -> dict[str, str]:
        return {
            "init_bn": gradient_outcome(self.init_bn),
            "during_bn": gradient_outcome(self.during_bn) if self.during_bn else "unknown",
            "init_no_bn": gradient_outcome(self.init_no_bn),
        }


def _stage_ratio(d: Any) -> float:
    steps = {k: v for k, v in d.stage_steps().items() if k.startswith("stages.")}
    if len(steps) < 2:
        return float("nan")
    keys = sorted(steps, key=lambda k: int(k.split(".")[1]))
    return steps[keys[0]] / steps[keys[-1]] if steps[keys[-1]] > 0 else float("nan")


def gradient_evidence(c: Condition) -> GradientEvidence:
    init_bn, during, no_bn, fwd, fwd_nb, st_init, st_during = [], [], [], [], [], [], []
    all_during: list[float] = []
    probes = 0
    for r in c.runs:
        d = _init(r)
        if d is not None:
            init_bn.append(d.block_grad_ratio())
            fwd.append(d.forward_growth())
            st_init.append(_stage_ratio(d))
        nb = _init(r, "no_bn")
        if nb is not None:
            no_bn.append(nb.block_grad_ratio())
            fwd_nb.append(nb.forward_growth())
        series = [(s, x) for s, x in _during(r) if x is not None]
        if series:
            ratios = [x.block_grad_ratio() for _, x in series]
            all_during += ratios
            during.append(statistics.median(ratios))
            st_during.append(statistics.median(_stage_ratio(x) for _, x in series))
            probes = max(probes, len(series))
    finite = [v for v in all_during if math.isfinite(v)]
    return GradientEvidence(
        c.name, tuple(init_bn), tuple(during), (min(finite), max(finite)) if finite else None, probes,
        tuple(no_bn), tuple(fwd), tuple(fwd_nb), tuple(st_init), tuple(st_during),
    )  # fmt: skip


def _gradient_findings(result: StudyResult, degraded: tuple[Condition, Condition] | None) -> list[Finding]:
    by = _by_key(result)
    depths = sorted({d for d, _ in by})
    if not depths:
        return []
    deep = depths[-1]
    out: list[Finding] = []
    ev: dict[bool, GradientEvidence] = {
        res: gradient_evidence(by[(deep, res)]) for res in (False, True) if (deep, res) in by
    }
    if not any(e.init_bn for e in ev.values()):
        return out
    for res, e in ev.items():
        o = e.outcomes
        if e.init_bn:
            out.append(
                Finding(
                    f"At initialisation with batch norm, {e.condition}'s gradient at the first block's output is "
                    f"{_ratio_text(e.init_bn)}× that at the last block (one value per seed): {_outcome_phrase(o['init_bn'])}.",
                    "gradient",
                    "init",
                    {"ratio_first_last": list(e.init_bn), "outcome": o["init_bn"]},
                )
            )
        if e.during_bn and e.during_range is not None:
            lo, hi = e.during_range
            out.append(
                Finding(
                    f"During training with batch norm ({e.probes} probes per seed, before the last step), "
                    f"{e.condition}'s first/last block gradient ratio has per-seed medians {_ratio_text(e.during_bn)} "
                    f"(range {sci(lo)}–{sci(hi)}): {_outcome_phrase(o['during_bn'])}.",
                    "gradient",
                    "during",
                    {"median_per_seed": list(e.during_bn), "range": [lo, hi], "outcome": o["during_bn"]},
                )
            )
        if e.init_no_bn:
            twin = "with SkipInit, " if res else ""
            out.append(
                Finding(
                    f"Built without batch norm ({twin}same seed, at initialisation), {e.condition}'s first/last "
                    f"block gradient ratio is {_ratio_text(e.init_no_bn)}: {_outcome_phrase(o['init_no_bn'])}; its "
                    f"forward signal grows {_ratio_text(e.forward_no_bn)}× from the first block's output to the "
                    f"last (with batch norm: {_ratio_text(e.forward_bn)}×).",
                    "gradient",
                    "init",
                    {
                        "ratio_first_last": list(e.init_no_bn),
                        "outcome": o["init_no_bn"],
                        "forward_growth": list(e.forward_no_bn),
                        "forward_growth_bn": list(e.forward_bn),
                    },
                )
            )
    if False in ev and ev[False].stage_init:
        e = ev[False]
        during = f"; median during training {_ratio_text(e.stage_during)}" if e.stage_during else ""
        out.append(
            Finding(
                f"The effective step ‖∂L/∂W‖/‖W‖ of {e.condition}'s first stage is {_ratio_text(e.stage_init)}× "
                f"that of its last stage at initialisation{during} (one value per seed; with batch norm this, "
                f"not ‖∂L/∂W‖, is how far an SGD step moves a layer).",
                "gradient",
                "during" if e.stage_during else "init",
                {"init": list(e.stage_init), "during": list(e.stage_during)},
            )
        )
    if False in ev and True in ev and ev[False].init_bn and ev[True].init_bn:
        a = estimate([math.log10(v) for v in ev[False].init_bn if v > 0 and math.isfinite(v)])
        b = estimate([math.log10(v) for v in ev[True].init_bn if v > 0 and math.isfinite(v)])
        if a is not None and b is not None:
            c = compare_log(ev[False].condition, a, ev[True].condition, b)
            word = "within the margin of" if c.within else ("larger than" if c.sign > 0 else "smaller than")
            out.append(
                Finding(
                    f"At initialisation with batch norm, {ev[False].condition}'s log10 first/last ratio "
                    f"({a.mean:.2f}) is {word} {ev[True].condition}'s ({b.mean:.2f}; margin {c.margin:.2f} in "
                    f"log10 units from the seed spread).",
                    "gradient",
                    "init",
                    c.to_dict(),
                    c.within,
                )
            )
    out += _verdict(ev, degraded)
    return out


def _verdict(ev: dict[bool, GradientEvidence], degraded: tuple[Condition, Condition] | None) -> list[Finding]:
    if False not in ev or not ev[False].init_bn:
        return []
    e = ev[False]
    o = e.outcomes
    if degraded is None:
        return [
            Finding(
                "No plain net ends with higher training error than a shallower one beyond the margin, so there "
                "is no degradation here for the gradient measurements to explain.",
                "verdict",
                "end",
                {},
            )
        ]
    deep, shallow = degraded
    numbers = {"init_bn": list(e.init_bn), "during_bn": list(e.during_bn), "outcomes": o}
    during_known = bool(e.during_bn)
    if o["init_bn"] == "unknown" or (during_known and o["during_bn"] == "unknown"):
        text = (
            f"Whether vanishing gradients explain {deep.name}'s higher training error than {shallow.name} cannot be "
            f"decided from these runs: the gradient outcome with batch norm is {o['init_bn']} at initialisation"
            + (f" and {o['during_bn']} during training" if during_known else "")
            + "."
        )
    elif o["init_bn"] == "vanishing" and (not during_known or o["during_bn"] == "vanishing"):
        text = (
            f"With batch norm, {deep.name}'s gradient vanishes toward the input at initialisation"
            + (" and during training" if during_known else "")
            + f" (ratios {_ratio_text(e.init_bn)}"
            + (f"; medians during training {_ratio_text(e.during_bn)}" if during_known else "")
            + f"): consistent with the vanishing-gradient explanation of its higher training error than {shallow.name}."
        )
    elif o["init_bn"] != "vanishing" and (not during_known or o["during_bn"] != "vanishing"):
        when = "at initialisation" + (" or during training" if during_known else "")
        text = (
            f"Vanishing gradients do not explain {deep.name}'s higher training error than {shallow.name}: with batch "
            f"norm its gradient does not vanish toward the input {when} (first/last block ratio "
            f"{_ratio_text(e.init_bn)} at init: {o['init_bn']}"
            + (
                f"; medians during training {_ratio_text(e.during_bn)}: {o['during_bn']}"
                if during_known
                else ""
            )
            + "). This agrees with the ResNet paper and contradicts the lecture-note explanation for nets with batch "
            "norm; these measurements do not show what the cause is."
        )
    else:
        text = (
            f"The gradient outcome of {deep.name} with batch norm changes between initialisation ({o['init_bn']}) and "
            f"training ({o['during_bn']}), so a single gradient explanation of its higher training error than "
            f"{shallow.name} does not fit these runs."
        )
    if o["init_no_bn"] == "vanishing":
        text += (
            f" Without batch norm the same architecture's gradient does vanish at initialisation (ratios "
            f"{_ratio_text(e.init_no_bn)}): that is the setting where the vanishing-gradient account applies."
        )
    return [Finding(text, "verdict", "init+during" if during_known else "init", numbers)]


def _degraded(result: StudyResult) -> tuple[Condition, Condition] | None:
    """(deepest, shallowest) plain conditions if the deeper one ends with training error higher beyond the margin."""
    by = _by_key(result)
    split = _train_split(list(by.values()))
    plain = [by[k] for k in sorted(by) if not k[1] and by[k].error(split) is not None]
    if len(plain) < 2:
        return None
    shallow, deep = plain[0], plain[-1]
    c = compare(deep.name, deep.error(split), shallow.name, shallow.error(split))  # type: ignore[arg-type]
    return (deep, shallow) if c.sign > 0 else None


def _shattered_findings(result: StudyResult) -> list[Finding]:
    data = result.analysis("shattered")
    if not data:
        return []
    groups: dict[tuple[int, bool, bool], list[dict[str, Any]]] = {}
    for r in data["results"]:
        groups.setdefault((int(r["depth"]), bool(r["residual"]), bool(r["bn"])), []).append(r)
    out = []
    for bn in (True, False):
        parts = []
        numbers: dict[str, Any] = {}
        for (depth, residual, b), rs in sorted(groups.items()):
            if b != bn:
                continue
            corr = estimate([r["neighbour_correlation"] for r in rs])
            slope = estimate([r["spectral_slope"] for r in rs])
            if corr is None or slope is None:
                continue
            name = label(depth, residual)
            spread = f" ± {corr.std:.2f}" if corr.std is not None else ""
            parts.append(f"{name} {corr.mean:.2f}{spread} (spectral slope {slope.mean:.1f})")
            numbers[name] = {"correlation": list(corr.values), "slope": list(slope.values)}
        if parts:
            setting = (
                "with batch norm (statistics of a held-out batch)"
                if bn
                else "without batch norm (ResNets with SkipInit)"
            )
            out.append(
                Finding(
                    f"Shattered gradients at initialisation, {setting}: the correlation of input gradients at "
                    f"neighbouring points of a {data['settings']['points']}-point line between two held-out images "
                    f"is {'; '.join(parts)} (mean ± std over {data['settings']['seeds']} seeds; slope ≈ 0 is "
                    f"white noise, ≈ −2 brown noise).",
                    "shattered",
                    "init",
                    numbers,
                )
            )
    # The comparison the argument needs: deepest plain vs ResNet, with BN.
    deep = max((d for d, _, _ in groups), default=None)
    if deep is not None and (deep, False, True) in groups and (deep, True, True) in groups:
        a = estimate([r["neighbour_correlation"] for r in groups[(deep, False, True)]])
        b = estimate([r["neighbour_correlation"] for r in groups[(deep, True, True)]])
        if a is not None and b is not None:
            margin = max(0.02, (a.std or 0.0) + (b.std or 0.0))
            diff = b.mean - a.mean
            if abs(diff) <= margin:
                text = (
                    f"With batch norm, {label(deep, True)}'s neighbouring input gradients correlate as much as "
                    f"{label(deep, False)}'s within the margin ({b.mean:.2f} vs {a.mean:.2f}, margin {margin:.2f})."
                )
            else:
                word = "more" if diff > 0 else "less"
                text = (
                    f"With batch norm, {label(deep, True)}'s neighbouring input gradients correlate {word} than "
                    f"{label(deep, False)}'s ({b.mean:.2f} vs {a.mean:.2f}, beyond the {margin:.2f} margin of the "
                    f"seed spread){': its gradients are less shattered, as Balduzzi et al. report' if diff > 0 else ', unlike Balduzzi et al.'}."
                )
            out.append(
                Finding(
                    text,
                    "shattered",
                    "init",
                    {"plain": list(a.values), "resnet": list(b.values), "margin": margin},
                    abs(diff) <= margin,
                )
            )
    return out


def _response_findings(result: StudyResult) -> list[Finding]:
    by = _by_key(result)
    means: dict[tuple[int, bool], Estimate] = {}
    for key, c in by.items():
        vals = []
        for r in c.runs:
            d = _diag(r.diagnostics.get("end"), "eval")
            if d is not None and d.responses:
                vals.append(statistics.fmean(s.std for s in d.responses))
        e = estimate(vals)
        if e is not None:
            means[key] = e
    out = []
    for d in sorted({d for d, _ in means}):
        if (d, False) in means and (d, True) in means:
            p, r = means[(d, False)], means[(d, True)]
            c = compare_log(
                label(d, True),
                estimate([math.log10(v) for v in r.values]),
                label(d, False),
                estimate([math.log10(v) for v in p.values]),
            )  # type: ignore[arg-type]
            if c.within:
                text = (
                    f"After training, {label(d, True)}'s 3×3 layers respond as strongly as {label(d, False)}'s within "
                    f"the margin (mean response std {r.mean:.3g} vs {p.mean:.3g}, eval mode; margin a factor "
                    f"{10**c.margin:.2f})."
                )
            else:
                word = "more weakly" if c.sign < 0 else "more strongly"
                text = (
                    f"After training, {label(d, True)}'s 3×3 layers respond {word} than {label(d, False)}'s (mean "
                    f"response std {r.mean:.3g} vs {p.mean:.3g}, eval mode, beyond a margin of a factor "
                    f"{10**c.margin:.2f}){' — as in the paper' if c.sign < 0 else ', unlike the paper'}."
                )
            out.append(
                Finding(
                    text,
                    "response",
                    "end",
                    {"resnet": list(r.values), "plain": list(p.values), "margin_log10": c.margin},
                    c.within,
                )
            )
    return out


def compute_findings(result: StudyResult) -> list[Finding]:
    """The study's findings, in reading order: errors, gradients and the verdict, shattering, responses."""
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
            )
        )
    out += _error_findings(result)
    out += _gradient_findings(result, _degraded(result))
    out += _shattered_findings(result)
    out += _response_findings(result)
    return out


# ------------------------------------------------------------------------------------------------- report
def sections(result: StudyResult) -> list[Section]:
    from depthlab.studies.degradation import figures as figs

    by = _by_key(result)
    split = _train_split(list(by.values()))
    rows = []
    for depth in sorted({d for d, _ in by}):
        cells = [str(depth)]
        for residual in (False, True):
            c = by.get((depth, residual))
            for s in (split, "test"):
                e = c.error(s) if c else None
                cells.append(pct(e.mean, e.std) if e else "—")
        rows.append(tuple(cells))
    measure = (
        "eval-mode error over the training (sub)set each net fits"
        if split == "train_eval"
        else "running error of the last logged batches"
    )
    table = ReportTable(
        "Final error by depth",
        ("depth", "plain train", "plain test", "residual train", "residual test"),
        tuple(rows),
        f"Train: {measure}, at the last step; test: the full test split at the end. Mean ± std over seeds.",
    )
    out = [
        Section("results", "Final error by depth", tables=(table,), figures=tuple(figs.error_figures(result)))
    ]
    grad = figs.gradient_figures(result)
    ev_rows = []
    for key in sorted(by):
        e = gradient_evidence(by[key])
        o = e.outcomes
        ev_rows.append(
            (
                e.condition,
                f"{_ratio_text(e.init_bn)} ({o['init_bn']})" if e.init_bn else "—",
                f"{_ratio_text(e.during_bn)} ({o['during_bn']})" if e.during_bn else "—",
                f"{_ratio_text(e.init_no_bn)} ({o['init_no_bn']})" if e.init_no_bn else "—",
                _ratio_text(e.forward_bn) or "—",
                _ratio_text(e.forward_no_bn) or "—",
                _ratio_text(e.stage_init) or "—",
            )
        )
    gtable = ReportTable(
        "Gradient and signal measurements",
        (
            "condition",
            "‖∂L/∂y‖ first ÷ last, init, BN",
            "… during training (median)",
            "… init, no BN",
            "‖y‖ last ÷ first, init, BN",
            "… no BN",
            "effective step stage 1 ÷ last, init",
        ),  # fmt: skip
        tuple(ev_rows),
        f"One value per seed. Outcome thresholds: vanishing < {VANISH:g}, exploding > {EXPLODE:g}, for every seed; "
        "unknown otherwise. BN in training mode on the study's diagnostics batch; no BN: the same net built "
        "without batch norm (ResNets with SkipInit), same seed, untrained.",
    )
    out.append(
        Section(
            "gradients", "Gradients: vanishing, exploding or neither?", tables=(gtable,), figures=tuple(grad)
        )
    )
    shat = figs.shattered_figures(result)
    if shat:
        out.append(Section("shattered", "Shattered gradients at initialisation", figures=tuple(shat)))
    resp = figs.response_figures(result)
    if resp:
        out.append(Section("responses", "Layer responses (Fig. 7)", figures=tuple(resp)))
    return out


def _analysis_runner(name: str) -> Any:
    def run(result: StudyResult) -> None:
        from depthlab.studies import analyses as why

        why.run_for_study(name, result)

    return run


STUDY = register_study(
    Study(
        name="degradation",
        title="Degradation study",
        claim="Deeper plain networks end with higher training error than shallower ones while ResNets do not "
        "(He et al. 2015, Fig. 6); is it vanishing gradients, as lecture notes say, or not, as the paper argues?",
        presets=PRESETS,
        grid=grid,  # type: ignore[arg-type]
        findings=compute_findings,
        sections=sections,
        probe=probe,
        prepare=run_shattered,  # type: ignore[arg-type]
        analyses={name: _analysis_runner(name) for name in ("lesion", "landscape", "attribute")},
    )
)
