"""Figures and the report's table of the vgg-depth study, drawn from what its runs recorded (never retrains).

Each function returns :class:`~depthlab.present.types.ReportFigure` objects with a caption saying what is
plotted, on what data and in which mode. Panels a reader compares share their y-axis.
"""

from __future__ import annotations

from depthlab.i18n import _
from depthlab.present.format import pct
from depthlab.present.plots import png_bytes, pyplot
from depthlab.present.types import ReportFigure, ReportTable, Section
from depthlab.stats import Estimate
from depthlab.studies.results import Condition, StudyResult
from depthlab.studies.vgg_depth.evidence import Net, nets, preset_of, training
from depthlab.studies.vgg_depth.presets import DEPTH, MODELS, TABLE3, TABLE3_SOURCE

__all__ = ["figures", "sections"]

COLOURS = {"A": "#4c72b0", "A-LRN": "#64b5cd", "B": "#55a868", "C": "#dd8452", "D": "#c44e52", "E": "#8172b3"}
MARKERS = {"A": "o", "A-LRN": "v", "B": "s", "C": "D", "D": "^", "E": "P"}
OFFSET = {"A-LRN": 0.3, "C": -0.3}  # drawn beside A and D, which share their depth


def _mean_ci(c: Condition, split: str) -> tuple[float, float, float] | None:
    """(mean, lower, upper error bar) in percent: the 95% CI across seeds (no bar with one seed)."""
    e = c.error(split)
    if e is None or not e.finite:
        return None
    ci = e.ci()
    low, high = (ci.low, ci.high) if ci else (e.mean, e.mean)
    return 100 * e.mean, 100 * (e.mean - low), 100 * (high - e.mean)


def _chance(by: dict[Net, Condition]) -> float | None:
    """1 − 1/classes, from the runs' summaries (``None`` when they do not say)."""
    classes = {r.data.get("num_classes") for c in by.values() for r in c.runs}
    k = classes.pop() if len(classes) == 1 else None
    return 1.0 - 1.0 / k if isinstance(k, int) and k >= 2 else None


def _label(net: str, split: str, trained: bool) -> str:
    """A legend entry: the net, which error, and whether every seed trained."""
    label = (_("{net} test") if split == "test" else _("{net} train")).format(net=net)
    return label if trained else _("{label} (did not train)").format(label=label)


def _error_vs_depth(result: StudyResult, by: dict[Net, Condition]) -> ReportFigure:
    plt = pyplot()
    margin = preset_of(result).chance_margin
    chance = _chance(by)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for ax, bn in ((axes[0], False), (axes[1], True)):
        for split, fill in (("train_eval", "none"), ("test", "full")):
            for config in DEPTH:
                c = by.get(Net(config, bn))
                point = _mean_ci(c, split) if c else None
                if c is None or point is None:
                    continue
                t = training(c, margin)
                trained = t is None or t.all_trained
                x = DEPTH[config] + OFFSET.get(config, 0.0)
                y, lo, hi = point
                ax.errorbar(x, y, yerr=[[lo], [hi]], color=COLOURS[config], marker=MARKERS[config] if trained else "x",
                            fillstyle=fill, capsize=3, ls="none",
                            label=_label(c.name, split, trained))  # fmt: skip
        if chance is not None:
            ax.axhline(100 * chance, color="grey", ls=":", lw=1, label=_("chance"))
        ax.set_title(_("with batch norm") if bn else _("without batch norm (the paper's nets)"), fontsize=10)
        ax.set_xlabel(_("weight layers"))
        ax.set_xticks(sorted(set(DEPTH.values())))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, ncol=2)
    lo = min(a.get_ylim()[0] for a in axes[:2])
    hi = max(a.get_ylim()[1] for a in axes[:2])
    for a in axes[:2]:
        a.set_ylim(lo, hi)
    axes[0].set_ylabel(_("error (%)"))
    ax = axes[2]
    for config, err in TABLE3.items():
        ax.plot(DEPTH[config] + OFFSET.get(config, 0.0), err, color=COLOURS[config], marker=MARKERS[config],
                ls="none", label=config)  # fmt: skip
    ax.set_title(_("Table 3: ImageNet top-1 (single scale)"), fontsize=10)
    ax.set_xlabel(_("weight layers"))
    ax.set_xticks(sorted(set(DEPTH.values())))
    ax.set_ylabel(_("top-1 error (%)"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    seeds = max((c.seeds for c in by.values()), default=0)
    return ReportFigure(
        _("Final error vs depth, without and with batch norm, beside VGG Table 3"),
        _(
            "Mean over seeds (up to {seeds}) at the last step with its 95% CI (t interval across seeds): hollow "
            "markers the eval-mode error over the fixed training subset, filled markers the test error; a cross marks "
            "a condition with a seed that did not train; the dotted line is chance. Left and middle share the y-axis. "
            "A-LRN and C are drawn 0.3 layers beside A and D. Right: {source} (ImageNet; compare directions, not "
            "values)."
        ).format(seeds=seeds, source=TABLE3_SOURCE),
        png_bytes(fig),
        "vgg_error_vs_depth",
    )


def _curves(by: dict[Net, Condition]) -> ReportFigure:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, bn in ((axes[0], False), (axes[1], True)):
        for config in DEPTH:
            c = by.get(Net(config, bn))
            if c is None:
                continue
            curves = [dict(r.curves.get("train_eval", ())) for r in c.runs]
            curves = [x for x in curves if x]
            if not curves:
                continue
            common = sorted(set.intersection(*(set(x) for x in curves)))
            ys = [100 * sum(x[s] for x in curves) / len(curves) for s in common]
            ax.plot(common, ys, color=COLOURS[config], marker=MARKERS[config], ms=3, label=c.name)
        ax.set_title(_("with batch norm") if bn else _("without batch norm (the paper's nets)"), fontsize=10)
        ax.set_xlabel(_("iterations"))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    axes[0].set_ylabel(_("training error, eval mode (%)"))
    fig.tight_layout()
    return ReportFigure(
        _("Training error vs iterations"),
        _(
            "Mean over seeds of the eval-mode error on the fixed training subset the nets fit, at every evaluation "
            "(each net's convergence reading uses its running training error instead: the last 10% of iterations "
            "against the 10% before); same y-axis for both panels."
        ),
        png_bytes(fig),
        "vgg_training_curves",
    )


def figures(result: StudyResult) -> list[ReportFigure]:
    by = nets(result)
    if not by:
        return []
    return [_error_vs_depth(result, by), _curves(by)]


# ------------------------------------------------------------------------------------------------- report
def _cell(e: Estimate | None) -> str:
    if e is None:
        return "—"
    ci = e.ci()
    return f"{pct(e.mean)} [{100 * ci.low:.1f}, {100 * ci.high:.1f}]" if ci else pct(e.mean)


def _table(result: StudyResult) -> ReportTable:
    by = nets(result)
    margin = preset_of(result).chance_margin
    rows = []
    for config in MODELS:
        for bn in (False, True):
            c = by.get(Net(config, bn))
            if c is None:
                continue
            t = training(c, margin)
            trained = "—" if t is None else _("{n} of {seeds}").format(n=t.seeds - t.untrained, seeds=t.seeds)
            rows.append((c.name, str(DEPTH[config]), f"{TABLE3[config]:.1f}%", trained,
                         _cell(c.error("train_eval")), _cell(c.error("test"))))  # fmt: skip
    return ReportTable(
        _("Final error by configuration"),
        (_("condition"), _("weight layers"), _("Table 3 top-1"), _("seeds that trained"), _("training error"),
         _("test error")),
        tuple(rows),
        _("Training error: eval mode over the fixed training subset at the last step; test error at the end. Mean "
          "over seeds [95% CI across seeds]. A seed did not train when its training error stayed within "
          "{points:g} points of chance. Table 3: {source} (ImageNet, for the direction).").format(
            points=100 * margin, source=TABLE3_SOURCE),
    )  # fmt: skip


def sections(result: StudyResult) -> list[Section]:
    """The report's section: the final errors by configuration and the figures."""
    return [Section("results", _("Error by configuration"), tables=(_table(result),),
                    figures=tuple(figures(result)))]  # fmt: skip
