"""Figures of the inception-aux study, drawn from what its runs recorded (never retrains).

Each function returns :class:`~depthlab.studies.engine.ReportFigure` objects with a caption saying what
is plotted, on what data and in which mode. Panels a reader compares share their y-axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt

from depthlab.report.plots import png_bytes
from depthlab.report.types import ReportFigure
from depthlab.studies.engine import Condition, StudyResult

__all__ = ["error_figures", "gradient_figures"]

STYLE = {"aux": ("#c44e52", "-"), "zero": ("#4c72b0", "--"), "none": ("#55a868", ":")}


def _style(c: Condition) -> tuple[str, str]:
    if not c.factors.get("aux_heads", True):
        return STYLE["none"]
    return STYLE["aux"] if float(c.factors.get("aux_weight", 0)) > 0 else STYLE["zero"]


def _mean_curve(curves: Sequence[tuple[tuple[int, float], ...]]) -> tuple[list[int], list[float]]:
    """Point-wise mean (in %) over the steps every curve has."""
    curves = [c for c in curves if c]
    if not curves:
        return [], []
    common = sorted(set.intersection(*(set(s for s, _ in c) for c in curves)))
    maps = [dict(c) for c in curves]
    return common, [100 * sum(m[s] for m in maps) / len(maps) for s in common]


def error_figures(result: StudyResult) -> list[ReportFigure]:
    from depthlab.studies.inception_aux import early_step

    conditions = result.conditions()
    if not conditions:
        return []
    held = "val" if all("val" in r.curves for c in conditions for r in c.runs) else "test"
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True)
    for ax, split, title in (
        (axes[0], "train", "running training error (training mode)"),
        (axes[1], "train_eval", "training error (eval mode, fixed training subset)"),
        (axes[2], held, f"{'validation' if held == 'val' else 'test'} error (eval mode)"),
    ):
        for c in conditions:
            xs, ys = _mean_curve([r.curves.get(split, ()) for r in c.runs])
            if xs:
                colour, ls = _style(c)
                ax.plot(xs, ys, color=colour, ls=ls, marker="." if split != "train" else None, lw=1.5,
                        label=f"{c.name} ({c.seeds} seeds)")  # fmt: skip
        step = early_step(result)
        if step is not None:
            ax.axvline(step, color="grey", lw=0.8, ls=":")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iterations")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("error (%)")
    fig.tight_layout()
    return [
        ReportFigure(
            "Error vs iterations with and without the auxiliary losses",
            "Mean over seeds. Left: running training error of the main classifier on the batches being trained on "
            "(training mode; the early-training finding averages it up to the dotted line); middle: eval-mode "
            "error on the fixed training subset the nets fit (intermediate points on its first images, the last "
            "on all of it); right: held-out error (intermediate points on a fixed subset, the last on the whole "
            "split). With batch norm the eval-mode curves jump early in training, while the running statistics "
            "lag the weights. Same y-axis.",
            png_bytes(fig),
            "aux_error_curves",
        )
    ]


def gradient_figures(result: StudyResult) -> list[ReportFigure]:
    from depthlab.studies.inception_aux import TAPS, _grads, contribution, groups, tap_label

    g = groups(result)
    if g.aux is None:
        return []
    first = next((r for r in g.aux.runs if _grads(r.diagnostics.get("init")) is not None), None)
    if first is None:
        return []
    init = _grads(first.diagnostics["init"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    ax = axes[0]
    xs = list(range(len(TAPS)))
    for key, colour, ls, name in (
        ("main", "#4c72b0", "--", "L_main"),
        ("aux", "#dd8452", ":", "L_aux1 + L_aux2"),
        ("train", "#c44e52", "-", f"L_train = L_main + {float(g.aux.factors['aux_weight']):g}·L_aux"),
    ):
        if key in init.grad:
            vals = [init.grad[key][t] for t in TAPS]
            pts = [(x, v) for x, v in zip(xs, vals, strict=True) if v > 0]
            if pts:
                ax.plot(*zip(*pts, strict=True), color=colour, ls=ls, marker="o", ms=3, label=name)
    ax.set_xticks(xs, [tap_label(t) for t in TAPS], fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("output of (input → output)")
    ax.set_ylabel("‖∂L/∂y‖ (log)")
    ax.set_title(f"at initialisation, {g.aux.name}, seed {first.seed}", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax = axes[1]
    colours = ("#c44e52", "#8172b3", "#937860")
    for k, tap in enumerate(TAPS[:3]):
        for r in g.aux.runs:
            pts = []
            x0 = _grads(r.diagnostics.get("init"))
            if x0 is not None:
                pts.append((0, contribution(x0, tap)))
            for s, v in sorted(r.diagnostics.get("steps", {}).items(), key=lambda kv: int(kv[0])):
                pts.append((int(s), contribution(_grads(v), tap)))
            pts = [(s, v) for s, v in pts if v == v]
            if pts:
                ax.plot(*zip(*pts, strict=True), color=colours[k], ls="-" if r.seed == 0 else "--", marker=".",
                        label=f"{tap_label(tap)}, seed {r.seed}")  # fmt: skip
    ax.axhline(1.0, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("iterations")
    ax.set_ylabel("‖∂L_train/∂y‖ ÷ ‖∂L_main/∂y‖")
    ax.set_title(f"aux contribution during training, {g.aux.name}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return [
        ReportFigure(
            "Gradient at the stem and inception outputs, with and without the auxiliary losses",
            "Training mode (dropout on, the same masks for every loss and condition) on the study's diagnostics "
            "batch of held-out images; one forward pass, one backward pass per loss. Left: ‖∂L/∂y‖ at the output "
            "of the stem and of every inception module at initialisation (first seed; the aux losses do not reach "
            "4e, 5a, 5b, which lie after both heads). Right: the ratio of the training loss's to the main loss's "
            "gradient at the stem, 3a and 3b outputs, at initialisation and at every evaluation step (1 = the aux "
            "losses add nothing).",
            png_bytes(fig),
            "aux_gradients",
        )
    ]
