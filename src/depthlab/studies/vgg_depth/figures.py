"""Figures of the vgg-depth study, drawn from what its runs recorded (never retrains).

Each function returns :class:`~depthlab.studies.engine.ReportFigure` objects with a caption saying what
is plotted, on what data and in which mode. Panels a reader compares share their y-axis.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from depthlab.report.plots import png_bytes
from depthlab.report.types import ReportFigure
from depthlab.studies.engine import StudyResult

__all__ = ["figures"]

COLOURS = {"A": "#4c72b0", "A-LRN": "#64b5cd", "B": "#55a868", "C": "#dd8452", "D": "#c44e52", "E": "#8172b3"}
MARKERS = {"A": "o", "A-LRN": "v", "B": "s", "C": "D", "D": "^", "E": "P"}


def figures(result: StudyResult) -> list[ReportFigure]:
    from depthlab.studies.vgg_depth import DEPTH, TABLE3, TABLE3_SOURCE, by_key

    by = by_key(result)
    if not by:
        return []
    out = []
    # Final error vs depth: no BN | BN | Table 3.
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for ax, bn in ((axes[0], False), (axes[1], True)):
        for split, fill in (("train_eval", "none"), ("test", "full")):
            for config in DEPTH:
                c = by.get((config, bn))
                e = c.error(split) if c else None
                if e is None:
                    continue
                x = DEPTH[config] + (0.25 if config == "A-LRN" else 0.0) + (0.25 if config == "C" else 0.0)
                ax.errorbar(x, 100 * e.mean, yerr=100 * (e.std or 0.0), color=COLOURS[config], marker=MARKERS[config],
                            fillstyle=fill, capsize=3, ls="none",
                            label=f"{config} {'test' if split == 'test' else 'train'}")  # fmt: skip
        ax.set_title("with batch norm" if bn else "without batch norm", fontsize=10)
        ax.set_xlabel("weight layers")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    lo = min(a.get_ylim()[0] for a in axes[:2])
    hi = max(a.get_ylim()[1] for a in axes[:2])
    for a in axes[:2]:
        a.set_ylim(lo, hi)
    axes[0].set_ylabel("error (%)")
    ax = axes[2]
    for config, err in TABLE3.items():
        x = DEPTH[config] + (0.25 if config in ("A-LRN", "C") else 0.0)
        ax.plot(x, err, color=COLOURS[config], marker=MARKERS[config], ls="none", label=config)
    ax.set_title("Table 3: ImageNet top-1 (single scale)", fontsize=10)
    ax.set_xlabel("weight layers")
    ax.set_ylabel("top-1 error (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out.append(
        ReportFigure(
            "Final error vs depth, without and with batch norm, beside VGG Table 3",
            "Mean ± std over seeds at the last step: hollow markers the eval-mode error over the fixed training "
            "subset, filled markers the test error (full test split). Left and middle share the y-axis. A-LRN and "
            f"C are drawn a quarter-layer right of A and D. Right: {TABLE3_SOURCE} (ImageNet; compare trends, not "
            "values).",
            png_bytes(fig),
            "vgg_error_vs_depth",
        )
    )
    # Training curves.
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, bn in ((axes[0], False), (axes[1], True)):
        for config in DEPTH:
            c = by.get((config, bn))
            if c is None:
                continue
            curves = [r.curves.get("train_eval", ()) for r in c.runs]
            curves = [x for x in curves if x]
            if not curves:
                continue
            common = sorted(set.intersection(*(set(s for s, _ in x) for x in curves)))
            maps = [dict(x) for x in curves]
            ys = [100 * sum(m[s] for m in maps) / len(maps) for s in common]
            ax.plot(common, ys, color=COLOURS[config], marker=MARKERS[config], ms=3, label=c.name)
        ax.set_title("with batch norm" if bn else "without batch norm", fontsize=10)
        ax.set_xlabel("iterations")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("training error, eval mode (%)")
    fig.tight_layout()
    out.append(
        ReportFigure(
            "Training error vs iterations",
            "Mean over seeds of the eval-mode error on the fixed training subset the nets fit (intermediate points "
            "on its first images, the last on all of it); same y-axis for both panels.",
            png_bytes(fig),
            "vgg_training_curves",
        )
    )
    return out
