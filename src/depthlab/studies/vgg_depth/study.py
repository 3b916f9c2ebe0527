"""The vgg-depth study: VGG configurations A, A-LRN, B, C, D, E with the small-input head, trained with one
recipe with and without batch norm.

Claims under test (Simonyan & Zisserman 2015, *Very Deep Convolutional Networks for Large-Scale Image
Recognition*, arXiv:1409.1556, §4.1 and Table 3): error falls with depth from A (11 layers) to D/E (16/19);
LRN does not help (A-LRN vs A); at equal depth, C (1×1 convs as the last conv of stages 3–5) is worse than
D (3×3 there), so spatial context matters beyond the extra non-linearity. The paper trained the deep
configurations by initialising them from A — before batch norm and residual connections, plain depth was
hard to optimise (the degradation problem). Here every net starts from He initialisation, and the question
is asked twice: without batch norm (the paper's nets) and with it.

:data:`TABLE3` holds the published numbers. Definitions (errors are fractions in results.json):

* **conditions** — one per configuration and normalisation: ``A`` … ``E`` without batch norm,
  ``A+BN`` … with BN after every conv (the zoo's ``norm="batch"``); model names ``vgg11``, ``vgg11_lrn``,
  ``vgg13``, ``vgg16c``, ``vgg16``, ``vgg19`` with ``head="small"`` (pool5 replaced by global average pooling,
  fc 512→512→classes; see :mod:`depthlab.models.vgg`).
* **training error** — eval-mode error over the fixed training subset the nets fit, at the last step;
  **test error** — the full test split at the end. The depth questions are asked of the training error (can
  the optimiser fit the data — the degradation question) and of the test error (what Table 3 reports).
* **margins** — :func:`depthlab.studies.stats.compare` (floor, seed spread, sampling error).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from depthlab.report.format import pct
from depthlab.studies import register_study
from depthlab.studies.engine import (
    Condition,
    Finding,
    Recipe,
    ReportTable,
    RunSpec,
    Section,
    Study,
    StudyError,
    StudyResult,
)
from depthlab.studies.stats import Comparison, compare

__all__ = ["STUDY", "PRESETS", "VGGDepthPreset", "TABLE3", "MODELS", "DEPTH", "compute_findings", "label"]

# Simonyan & Zisserman 2015 (arXiv:1409.1556), Table 3: ILSVRC-2012 validation top-1 error (%), single-scale
# evaluation, training scale S = 256 (C and D also list other scales; these are the S = 256 rows).
TABLE3: dict[str, float] = {"A": 29.6, "A-LRN": 29.7, "B": 28.7, "C": 28.1, "D": 27.0, "E": 27.3}
TABLE3_SOURCE = "Simonyan & Zisserman 2015 (arXiv:1409.1556), Table 3, top-1 error, single scale, S = 256"
MODELS: dict[str, str] = {
    "A": "vgg11",
    "A-LRN": "vgg11_lrn",
    "B": "vgg13",
    "C": "vgg16c",
    "D": "vgg16",
    "E": "vgg19",
}
DEPTH: dict[str, int] = {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}  # weight layers
DEPTH_LADDER = ("A", "B", "D", "E")  # the 3×3-only, LRN-free configurations, by depth


# ------------------------------------------------------------------------------------------------ presets
@dataclass(frozen=True)
class VGGDepthPreset(Recipe):
    """A :class:`Recipe` plus the configurations trained without (``plain``) and with (``bn``) batch norm,
    the head (``small`` for 28/32-pixel inputs) and the optimizer (``sgd`` as in the paper, or ``adamw``)."""

    plain: tuple[str, ...] = ("A", "A-LRN", "B", "C", "D", "E")
    bn: tuple[str, ...] = ("A", "B", "C", "D", "E")
    head: str = "small"
    optimizer: str = "sgd"

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("plain", "bn"):
            bad = [c for c in getattr(self, key) if c not in MODELS]
            if bad:
                raise StudyError(
                    f"unknown VGG configuration {bad[0]!r} in {key}; choose from: {', '.join(MODELS)}"
                )
        if not self.plain and not self.bn:
            raise StudyError("plain and bn are both empty: nothing to train")
        if self.optimizer not in ("sgd", "adamw"):
            raise StudyError(f"unknown optimizer {self.optimizer!r}; choose from: sgd, adamw")
        if self.head not in ("small", "imagenet"):
            raise StudyError(f"unknown head {self.head!r}; choose from: small, imagenet")

    def describe(self) -> str:
        return (
            f"VGG {'/'.join(self.plain) or '—'} without BN and {'/'.join(self.bn) or '—'} with BN, {self.head} "
            f"head, {self.optimizer}; " + super().describe()
        )


QUICK_NOTE = (
    "sized for a 2-core CPU: Fashion-MNIST at its native 28×28 (stages at 28, 14, 7, 3 and 1 pixels, so C's "
    "1×1 convs differ from D's 3×3 in stages 3 and 4 and are equivalent on stage 5's 1×1 map); a fixed "
    "1,000-image training subset, 100 iterations of batch 32 (3.2 passes); A, A-LRN and E without batch norm, "
    "A, C, D and E with it (--set plain=A,A-LRN,B,C,D,E --set bn=A,B,C,D,E trains all eleven); AdamW (lr 1e-3, "
    "decoupled weight decay 0.05) instead of the paper's SGD, because with SGD (lr 0.01 and 0.05) VGG-11 without "
    "batch norm stayed at chance for 100 iterations here; held-out error on 1,000 validation images, test error "
    "on a fixed 1,000-image test subset. The zoo's VGG has no width multiplier: the nets are the paper's full "
    "width"
)
PRESETS: dict[str, VGGDepthPreset] = {
    p.name: p
    for p in (
        VGGDepthPreset(
            name="quick",
            dataset="fashion-mnist",
            plain=("A", "A-LRN", "E"),
            bn=("A", "C", "D", "E"),
            optimizer="adamw",
            steps=100,
            batch_size=32,
            lr=1e-3,
            schedule="onecycle",
            weight_decay=0.05,
            augment=False,
            val_size=1000,
            train_subset=1000,
            test_subset=1000,
            eval_every=25,
            eval_subset=128,
            eval_train=True,
            test_at_end=True,
            log_every=5,
            seeds=2,
            diag_batch=32,
            note=QUICK_NOTE,
        ),
        VGGDepthPreset(
            name="paper",
            dataset="cifar10",
            steps=40000,
            batch_size=128,
            lr=0.02,
            schedule="step",
            milestones=(20000.0, 30000.0),
            weight_decay=5e-4,
            augment=True,
            val_size=5000,
            eval_every=2000,
            eval_subset=5000,
            eval_train=True,
            test_at_end=True,
            log_every=100,
            seeds=3,
            diag_batch=128,
            note="for a GPU: every configuration with and without BN on CIFAR-10 (45k/5k split, crop + flip), "
            "~114 epochs of batch 128, momentum 0.9, weight decay 5e-4 and dropout 0.5 as in the paper, lr ÷10 "
            "twice; 3 seeds. Deviations: 32-pixel inputs and the small head instead of 224-pixel ImageNet crops "
            "and fc6/fc7; He initialisation for every net instead of initialising D/E from A; lr 0.02 (the "
            "paper: 0.01, batch 256)",
        ),
    )
}


# ----------------------------------------------------------------------------------------------- the grid
def label(config: str, bn: bool) -> str:
    return f"{config}+BN" if bn else config


def grid(preset: VGGDepthPreset, seeds: Sequence[int], device: str, data_dir: str | None) -> list[RunSpec]:
    """seed → without BN, with BN → configuration: the first seed of every condition finishes first."""
    specs = []
    for seed in seeds:
        for bn, configs in ((False, preset.plain), (True, preset.bn)):
            for config in configs:
                kwargs = {"head": preset.head, "norm": "batch" if bn else None}
                train_config = preset.train_config(MODELS[config], seed, model_kwargs=kwargs, device=device,
                                                   data_dir=data_dir, optimizer=preset.optimizer)  # fmt: skip
                name = f"{MODELS[config]}{'_bn' if bn else ''}-s{seed}"
                factors = {"config": config, "bn": bn, "depth": DEPTH[config]}
                specs.append(RunSpec(name, label(config, bn), factors, seed, train_config))
    return specs


# ------------------------------------------------------------------------------------------------ findings
def by_key(result: StudyResult) -> dict[tuple[str, bool], Condition]:
    return {
        (str(c.factors["config"]), bool(c.factors["bn"])): c
        for c in result.conditions()
        if "config" in c.factors
    }


def _cmp(a: Condition, b: Condition, split: str) -> Comparison | None:
    ea, eb = a.error(split), b.error(split)
    if ea is None or eb is None:
        return None
    return compare(a.name, ea, b.name, eb)


def _nums(c: Comparison) -> str:
    n = min(c.a.seeds, c.b.seeds)
    return (
        f"{pct(c.a.mean, c.a.std)} vs {pct(c.b.mean, c.b.std)}, {n} seed{'s' if n > 1 else ''}; difference "
        f"{100 * c.difference:+.1f} points, margin {100 * c.margin:.1f}"
    )


NOUN = {"train_eval": "training error", "test": "test error"}


def _depth_findings(by: dict[tuple[str, bool], Condition], bn: bool) -> list[Finding]:
    ladder = [k for k in DEPTH_LADDER if (k, bn) in by]
    if len(ladder) < 2:
        return []
    shallow, deep = by[(ladder[0], bn)], by[(ladder[-1], bn)]
    setting = "with batch norm" if bn else "without batch norm"
    out = []
    for split in ("train_eval", "test"):
        c = _cmp(deep, shallow, split)
        if c is None:
            continue
        noun = NOUN[split]
        if c.within:
            text = (
                f"{setting.capitalize()}, {deep.name} ({DEPTH[ladder[-1]]} layers) and {shallow.name} "
                f"({DEPTH[ladder[0]]}) end with the same {noun} within the margin ({_nums(c)})"
            )
        else:
            text = (
                f"{setting.capitalize()}, {deep.name} ({DEPTH[ladder[-1]]} layers) ends with "
                f"{'lower' if c.sign < 0 else 'higher'} {noun} than {shallow.name} ({DEPTH[ladder[0]]}) "
                f"beyond the margin ({_nums(c)})"
            )
        if bn:
            text += (
                ": depth helps with batch norm here."
                if c.sign < 0
                else ": depth does not help here with batch norm."
            )
        elif split == "train_eval":
            text += (
                ": without batch norm the deeper net fits its training images worse — the degradation problem "
                "the VGG paper side-stepped by initialising D and E from A."
                if c.sign > 0
                else ": depth does not hurt the fit without batch norm here (He initialisation; the paper "
                "initialised D and E from A)."
            )
        else:
            paper = (
                "as in Table 3 (E 27.3% vs A 29.6%)" if c.sign < 0 else "unlike Table 3 (E 27.3% vs A 29.6%)"
            )
            text += f"; {'deeper is better' if c.sign < 0 else 'deeper is not better'} here, {paper}."
        out.append(Finding(text, "depth", "end", {**c.to_dict(), "bn": bn, "split": split}, c.within))
    if len(ladder) > 2:
        steps = [_cmp(by[(b, bn)], by[(a, bn)], "test") for a, b in zip(ladder, ladder[1:], strict=False)]
        steps_ok = [s for s in steps if s is not None]
        listing = ", ".join(f"{s.b_label}→{s.a_label} {100 * s.difference:+.1f} (margin {100 * s.margin:.1f})"
                            for s in steps_ok)  # fmt: skip
        paper = ", ".join(
            f"{a}→{b} {TABLE3[b] - TABLE3[a]:+.1f}" for a, b in zip(ladder, ladder[1:], strict=False)
        )
        signs = [s.sign for s in steps_ok]
        trend = "falls" if all(s < 0 for s in signs) else "rises" if all(s > 0 for s in signs) else None
        head = (
            f"{setting.capitalize()}, test error {trend} with every depth step beyond its margin"
            if trend
            else f"{setting.capitalize()}, test error does not rise or fall beyond the margin at every depth step"
        )
        out.append(
            Finding(
                f"{head} ({listing}); Table 3: {paper} points.",
                "depth",
                "end",
                {"steps": [s.to_dict() for s in steps_ok], "bn": bn},
                trend is None,
            )
        )
    return out


def _pair_finding(
    by: dict[tuple[str, bool], Condition], a: str, b: str, bn: bool, topic: str
) -> Finding | None:
    """``a`` vs ``b`` on the test error, and the paper's difference beside it."""
    if (a, bn) not in by or (b, bn) not in by:
        return None
    c = _cmp(by[(a, bn)], by[(b, bn)], "test")
    if c is None:
        return None
    paper = TABLE3[a] - TABLE3[b]
    ours = "within the margin" if c.within else ("higher" if c.sign > 0 else "lower")
    if topic == "1x1":
        question = f"{a} (1×1 convs in stages 3–5) vs {b} (3×3 there), equal depth"
        if c.sign > 0:
            verdict = "C is worse than D, as in Table 3: spatial context in the last stages matters"
        elif c.within:
            verdict = "the 1×1 vs 3×3 difference Table 3 shows is not resolved here"
        else:
            verdict = "C is better than D here, unlike Table 3"
    else:
        question = f"{a} (LRN after the first conv) vs {b}"
        if c.sign < 0:
            verdict = "LRN helps here, unlike Table 3, where it does not"
        elif c.within:
            verdict = "LRN does not help, as in Table 3"
        else:
            verdict = "LRN hurts here; in Table 3 it does not help either"
    setting = "with batch norm" if bn else "without batch norm"
    text = (
        f"{question}, {setting}: test error {ours} ({_nums(c)}); Table 3: {TABLE3[a]:.1f}% vs {TABLE3[b]:.1f}% "
        f"({paper:+.1f}) — {verdict}."
    )
    return Finding(text, topic, "end", {**c.to_dict(), "paper_difference": paper, "bn": bn}, c.within)


def _bn_findings(by: dict[tuple[str, bool], Condition]) -> list[Finding]:
    out = []
    for config in MODELS:
        if (config, False) in by and (config, True) in by:
            c = _cmp(by[(config, True)], by[(config, False)], "train_eval")
            if c is None:
                continue
            word = (
                "the same training error within the margin as"
                if c.within
                else ("lower training error than" if c.sign < 0 else "higher training error than")
            )
            out.append(
                Finding(
                    f"{by[(config, True)].name} ends with {word} {config} ({_nums(c)}).",
                    "bn",
                    "end",
                    c.to_dict(),
                    c.within,
                )
            )
    return out


def _table3_finding(by: dict[tuple[str, bool], Condition], bn: bool) -> Finding | None:
    rows = [(k, by[(k, bn)].error("test")) for k in MODELS if (k, bn) in by]
    rows = [(k, e) for k, e in rows if e is not None]
    if len(rows) < 2:
        return None
    order_ours = [k for k, _ in sorted(rows, key=lambda kv: kv[1].mean)]  # type: ignore[union-attr]
    order_paper = sorted((k for k, _ in rows), key=lambda k: TABLE3[k])
    setting = "with batch norm" if bn else "without batch norm"
    ours = ", ".join(f"{k} {pct(e.mean)}" for k, e in rows)  # type: ignore[union-attr]
    paper = ", ".join(f"{k} {TABLE3[k]:.1f}%" for k, _ in rows)
    same = order_ours == order_paper
    return Finding(
        f"Test error by configuration {setting}: {ours} (means over seeds); {TABLE3_SOURCE}: {paper}. Ranked "
        f"best to worst: here {' < '.join(order_ours)}, in Table 3 {' < '.join(order_paper)}"
        + (
            " — the same order (differences between neighbours may be within the margin; see the pairwise "
            "findings)."
            if same
            else " — a different order (pairwise findings give the margins)."
        ),  # fmt: skip
        "table3",
        "end",
        {"ours": {k: e.mean for k, e in rows}, "paper": {k: TABLE3[k] for k, _ in rows}, "bn": bn},  # type: ignore[union-attr]
    )


def compute_findings(result: StudyResult) -> list[Finding]:
    """Method, depth with and without BN, C vs D, LRN, BN vs none, Table 3 order."""
    if not any(r.final for r in result.runs):
        return [Finding("No run has logged an error yet, so there is nothing to compare.", "status", "end")]
    out: list[Finding] = []
    unfinished = [r for r in result.runs if not r.completed]
    if unfinished:
        names = ", ".join(f"{r.condition} (seed {r.seed}, {r.status}, step {r.step})" for r in unfinished)
        out.append(Finding(f"Not every run has completed: {names}; their numbers are from where they stopped.",
                           "status", "end"))  # fmt: skip
    by = by_key(result)
    train_images = max((r.images.get("train_eval", 0) for r in result.runs), default=0)
    test_images = max((r.images.get("test", 0) for r in result.runs), default=0)
    last = max((r.step for r in result.runs), default=0)
    out.append(
        Finding(
            f"Training error is the eval-mode error over all {train_images:,} images of the fixed training subset at "
            f"the last step (iteration {last}); test error over {test_images:,} test images. ± is the standard deviation over seeds; a "
            f"margin is the larger of one point, the sum of the seed deviations and two binomial standard errors. "
            f"The paper's numbers are ImageNet top-1 errors: trends are compared, not values.",
            "method",
            "end",
            {"train_images": train_images, "test_images": test_images, "steps": last},
        )
    )
    for bn in (True, False):
        out += _depth_findings(by, bn)
    for bn in (False, True):
        f = _pair_finding(by, "C", "D", bn, "1x1")
        if f is not None:
            out.append(f)
    for bn in (False, True):
        f = _pair_finding(by, "A-LRN", "A", bn, "lrn")
        if f is not None:
            out.append(f)
    out += _bn_findings(by)
    for bn in (False, True):
        f = _table3_finding(by, bn)
        if f is not None:
            out.append(f)
    return out


# ------------------------------------------------------------------------------------------------- report
def sections(result: StudyResult) -> list[Section]:
    from depthlab.studies.vgg_depth import figures as figs

    by = by_key(result)
    rows = []
    for config in MODELS:
        if not any((config, bn) in by for bn in (False, True)):
            continue
        cells = [config, str(DEPTH[config]), f"{TABLE3[config]:.1f}%"]
        for bn in (False, True):
            c = by.get((config, bn))
            for split in ("train_eval", "test"):
                e = c.error(split) if c else None
                cells.append(pct(e.mean, e.std) if e else "—")
        rows.append(tuple(cells))
    table = ReportTable(
        "Final error by configuration",
        ("config", "weight layers", "Table 3 top-1", "no BN train", "no BN test", "BN train", "BN test"),
        tuple(rows),
        f"Train: eval-mode error over the fixed training subset at the last step; test: the full test split. "
        f"Mean ± std over seeds. Table 3: {TABLE3_SOURCE} (ImageNet, for the trend).",
    )
    return [
        Section("results", "Error by configuration", tables=(table,), figures=tuple(figs.figures(result)))
    ]


STUDY = register_study(
    Study(
        name="vgg-depth",
        title="VGG's depth ablation",
        claim="VGG's Table 3: error falls with depth from A to D/E, LRN does not help, and 1×1 convs (C) are worse "
        "than 3×3 (D) at equal depth (Simonyan & Zisserman 2015). Does it hold here, with and without batch norm "
        "— and does plain depth hurt without it (the paper initialised D and E from A)?",
        presets=PRESETS,
        grid=grid,  # type: ignore[arg-type]
        findings=compute_findings,
        sections=sections,
    )
)
