"""Figures of the inception-aux study, drawn from what its runs recorded (never retrains).

:func:`sections` assembles the study's report sections from them and its two tables. Each figure function
returns :class:`~depthlab.present.types.ReportFigure` objects with a caption saying what is
plotted, on what data and in which mode. Panels a reader compares share their y-axis.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

from depthlab.i18n import _
from depthlab.present.format import pct, sci
from depthlab.present.plots import png_bytes, pyplot
from depthlab.present.types import ReportFigure, ReportTable, Section
from depthlab.stats import Estimate, estimate
from depthlab.studies.common import PLATEAU_FRACTION
from depthlab.studies.inception_aux.evidence import (
    MOMENTS,
    early_error,
    early_step,
    gradient_reading,
    groups,
    main_rms,
    preset_of,
    probe_at,
    probes_during,
)
from depthlab.studies.inception_aux.findings import COSINE_BOUND
from depthlab.studies.inception_aux.probe import LOWER_TAPS, TAPS, tap_label
from depthlab.studies.results import Condition, StudyResult, StudyRun

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["error_figures", "gradient_figures", "sections"]

STYLE = {"aux": ("#c44e52", "-"), "zero": ("#4c72b0", "--"), "none": ("#55a868", ":")}
MOMENT_STYLE = {"init": ("#8c8c8c", "s"), "during": ("#c44e52", "o"), "end": ("#4c72b0", "^")}
AUX_TAPS = TAPS[:-3]  # the aux heads read 4a and 4d: 4e, 5a and 5b get no aux gradient


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
    plt = pyplot()
    conditions = result.conditions()
    if not conditions:
        return []
    held = "val" if all("val" in r.curves for c in conditions for r in c.runs) else "test"
    last = max((int(r.config.get("steps") or r.step) for r in result.runs), default=0)
    step = early_step(result)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharey=True)
    for ax, split, title in (
        (axes[0], "train", _("running training error (training mode)")),
        (axes[1], "train_eval", _("training error (eval mode, whole fixed training subset)")),
        (axes[2], held, _("validation error (eval mode)") if held == "val" else _("test error (eval mode)")),
    ):
        for c in conditions:
            xs, ys = _mean_curve([r.curves.get(split, ()) for r in c.runs])
            if xs:
                colour, ls = _style(c)
                ax.plot(xs, ys, color=colour, ls=ls, marker="." if split != "train" else None, lw=1.5,
                        label=f"{c.name} " + (_("({n} seed)") if c.seeds == 1 else _("({n} seeds)")).format(
                            n=c.seeds))  # fmt: skip
        if step is not None:
            ax.axvline(step, color="grey", lw=0.8, ls=":")
        if last:
            ax.axvspan(last * (1 - 2 * PLATEAU_FRACTION), last * (1 - PLATEAU_FRACTION), color="grey", alpha=0.06,
                       lw=0)  # fmt: skip
            ax.axvspan(last * (1 - PLATEAU_FRACTION), last, color="grey", alpha=0.15, lw=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(_("iterations"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel(_("error (%)"))
    fig.tight_layout()
    return [
        ReportFigure(
            _("Error vs iterations with and without the auxiliary losses"),
            _(
                "Mean over seeds. Left: running training error of the main classifier on the batches being trained "
                "on (training mode; the early-training finding averages it up to the dotted line); middle: "
                "eval-mode error on the whole fixed training subset the nets fit; right: held-out error (eval "
                "mode). The darker band is the last 10% of iterations, the lighter one the 10% before: each "
                "condition's convergence finding compares the left curve's mean over the two. Same y-axis."
            ),
            png_bytes(fig),
            "aux_error_curves",
        )
    ]


def _log_summary(e: Estimate | None) -> tuple[float, float, float]:
    """Geometric mean and its 95% CI (from the t interval of the log10 values); NaN where undefined."""
    if e is None:
        return math.nan, math.nan, math.nan
    logs = estimate([math.log10(v) for v in e.values if v > 0 and math.isfinite(v)])
    if logs is None:
        return math.nan, math.nan, math.nan
    ci = logs.ci()
    return 10**logs.mean, 10 ** (ci.low if ci else logs.mean), 10 ** (ci.high if ci else logs.mean)


def _summary(e: Estimate | None) -> tuple[float, float, float]:
    if e is None or not e.finite:
        return math.nan, math.nan, math.nan
    ci = e.ci()
    return e.mean, ci.low if ci else e.mean, ci.high if ci else e.mean


def _errorbar(
    ax: Axes, xs: Sequence[float], rows: Sequence[tuple[float, float, float]], *, color: str, marker: str,
    ls: str, label: str,
) -> None:  # fmt: skip
    """Points with asymmetric error bars (mean, low, high); rows with a NaN mean are left out."""
    pts = [(x, m, lo, hi) for x, (m, lo, hi) in zip(xs, rows, strict=True) if math.isfinite(m)]
    if not pts:
        return
    x, m, lo, hi = (list(v) for v in zip(*pts, strict=True))
    below = [a - b for a, b in zip(m, lo, strict=True)]
    above = [b - a for a, b in zip(m, hi, strict=True)]
    ax.errorbar(
        x, m, yerr=[below, above], capsize=3, ms=4, lw=1.2, color=color, marker=marker, ls=ls, label=label
    )


def _moment_panels(ax_share: Axes, ax_cos: Axes, aux: Condition, bound: float, w: float) -> None:
    """Top row: the aux share (log) and the cosine at every tap the aux heads reach, one series per moment."""
    xs = list(range(len(AUX_TAPS)))
    labels = [tap_label(t) for t in AUX_TAPS]
    for k, moment in enumerate(MOMENTS):
        colour, marker = MOMENT_STYLE[moment]
        readings = [gradient_reading(aux, t, moment) for t in AUX_TAPS]
        offset = [x + 0.12 * (k - 1) for x in xs]
        _errorbar(ax_share, offset, [_log_summary(r.share if r else None) for r in readings], color=colour,
                  marker=marker, ls="-", label=_(moment))  # fmt: skip
        _errorbar(ax_cos, offset, [_summary(r.cosine if r else None) for r in readings], color=colour,
                  marker=marker, ls="-", label=_(moment))  # fmt: skip
    ax_share.axhline(bound, color="black", lw=0.8, ls=":", label=_("bound {bound:g}").format(bound=bound))
    ax_share.set_yscale("log")
    ax_share.set_ylabel(f"‖{w:g}·∂L_aux/∂y‖ ÷ ‖∂L_main/∂y‖ (log)")
    ax_share.set_title(_("aux share of the training gradient, {net}").format(net=aux.name), fontsize=10)
    ax_cos.axhline(0.0, color="black", lw=0.8)
    ax_cos.axhspan(-COSINE_BOUND, COSINE_BOUND, color="grey", alpha=0.15, lw=0)
    ax_cos.set_ylim(-1.05, 1.05)
    ax_cos.set_ylabel("cos(∂L_aux/∂y, ∂L_main/∂y)")
    ax_cos.set_title(_("direction of the aux gradient, {net}").format(net=aux.name), fontsize=10)
    for ax in (ax_share, ax_cos):
        ax.set_xticks(xs, labels, fontsize=8)
        ax.set_xlabel(_("output of (input → output)"))
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)


def _share_points(run: StudyRun, tap: str, w: float) -> list[tuple[int, float]]:
    """(step, aux share at ``tap``) of every probe of ``run``: init at step 0, during, end at its last step;
    shares that cannot go on a log axis are left out."""
    pts = []
    init = probe_at(run, "init")
    if init is not None and (t := init.at(tap)) is not None:
        pts.append((0, t.share(w)))
    pts += [(s, t.share(w)) for s, p in probes_during(run) if (t := p.at(tap)) is not None]
    end = probe_at(run, "end")
    if end is not None and (t := end.at(tap)) is not None:
        pts.append((int(run.config.get("steps") or run.step), t.share(w)))
    return [(s, v) for s, v in pts if v > 0 and math.isfinite(v)]


def _share_during_panel(ax: Axes, aux: Condition, bound: float, w: float) -> None:
    """Bottom left: the aux share at the lower taps at every probe, one line per tap and seed."""
    colours = ("#c44e52", "#8172b3", "#937860")
    styles = ("-", "--", ":", "-.")
    for k, tap in enumerate(LOWER_TAPS):
        for j, r in enumerate(aux.runs):
            pts = _share_points(r, tap, w)
            if pts:
                ax.plot(*zip(*pts, strict=True), color=colours[k], ls=styles[j % len(styles)], marker=".",
                        label=_("{tap}, seed {seed}").format(tap=tap_label(tap), seed=r.seed))  # fmt: skip
    ax.axhline(bound, color="black", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel(_("iterations"))
    ax.set_ylabel(f"‖{w:g}·∂L_aux/∂y‖ ÷ ‖∂L_main/∂y‖ (log)")
    ax.set_title(_("aux share at the lower layers during training, {net}").format(net=aux.name), fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=len(LOWER_TAPS))


def _main_rms_panel(ax: Axes, aux: Condition, baselines: Sequence[Condition]) -> None:
    """Bottom right: the main loss's gradient RMS at every tap, each condition at the end, aux at init."""
    all_x = list(range(len(TAPS)))
    for c in (aux, *baselines):
        colour, ls = _style(c)
        _errorbar(ax, all_x, [_log_summary(main_rms(c, t, "end")) for t in TAPS], color=colour, marker="o",
                  ls=ls, label=_("{net}, end").format(net=c.name))  # fmt: skip
    _errorbar(ax, all_x, [_log_summary(main_rms(aux, t, "init")) for t in TAPS], color="#8c8c8c", marker="s",
              ls="-", label=_("{net}, init").format(net=aux.name))  # fmt: skip
    ax.set_yscale("log")
    ax.set_xticks(all_x, [tap_label(t) for t in TAPS], fontsize=8)
    ax.set_xlabel(_("output of (input → output)"))
    ax.set_ylabel(_("RMS of ∂L_main/∂y per element (log)"))
    ax.set_title(_("main-loss gradient per element"), fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)


def gradient_figures(result: StudyResult) -> list[ReportFigure]:
    plt = pyplot()
    g = groups(result)
    if g.aux is None or not any(probe_at(r, "init") is not None for r in g.aux.runs):
        return []
    bound = preset_of(result).share_bound
    w = float(g.aux.factors.get("aux_weight", 0))
    fig, axes = plt.subplots(2, 2, figsize=(13, 8.4))
    _moment_panels(axes[0, 0], axes[0, 1], g.aux, bound, w)
    _share_during_panel(axes[1, 0], g.aux, bound, w)
    _main_rms_panel(axes[1, 1], g.aux, g.baselines)
    fig.tight_layout()
    return [
        ReportFigure(
            _("Aux and main gradients at the stem and inception outputs"),
            _(
                "Training mode (dropout on, the same masks for every condition and moment) on the study's "
                "diagnostics batch of held-out images; one forward pass, a backward pass for the main loss and one for "
                "the two aux losses summed. Top left: the aux share ‖w·∂L_aux/∂y‖ ÷ ‖∂L_main/∂y‖ at each output the "
                "aux heads reach (stem to 4d), geometric mean over seeds with its 95% CI, at initialisation, during "
                "training (per seed the median over its probes) and at the end; dotted: the bound the findings test "
                "against. Top right: the cosine between the two gradients, mean over seeds with its 95% CI; shaded: "
                "±{cosine:g}, called orthogonal. Bottom left: the aux share at the stem, 3a and 3b at every probe, one "
                "line per seed. Bottom right: the main loss's gradient per element (RMS) at every output, geometric "
                "mean over seeds with its 95% CI, for each condition at the end and at initialisation."
            ).format(cosine=COSINE_BOUND),
            png_bytes(fig),
            "aux_gradients",
        )
    ]


def _errors_table(result: StudyResult) -> ReportTable:
    step = early_step(result)
    rows = []
    for c in result.conditions():
        e = early_error(c, step) if step is not None else None
        cells = [c.name, str(c.seeds), pct(e.mean, e.std) if e else "—"]
        for split in ("train_eval", "test"):
            x = c.error(split)
            cells.append(pct(x.mean, x.std) if x else "—")
        rows.append(tuple(cells))
    return ReportTable(
        _("Errors by condition"),
        (
            _("condition"),
            _("seeds"),
            _("running training error, iterations 1–{step}").format(step=step),
            _("final training error"),
            _("test error"),
        ),
        tuple(rows),
        _("Early: the mean running training error (training mode) of the batches of iterations 1 to the early "
          "step; final: the eval-mode error over the whole fixed training subset, and the test error, at the last "
          "step; mean ± standard deviation over seeds (the findings give each difference with its 95% CI)."),
    )  # fmt: skip


def _gradient_table(result: StudyResult) -> ReportTable | None:
    g = groups(result)
    if g.aux is None:
        return None
    rows = []
    for tap in TAPS[:-3]:
        cells = [tap_label(tap)]
        for moment in MOMENTS:
            r = gradient_reading(g.aux, tap, moment)
            if r is None or not r.share.finite or min(r.share.values) <= 0:
                cells += ["—", "—"]
                continue
            gm = 10 ** statistics.fmean(math.log10(v) if v > 0 else math.nan for v in r.share.values)
            cells += [sci(gm), f"{r.cosine.mean:+.2f}" if r.cosine.finite else "—"]
        rows.append(tuple(cells))
    header = [_("output")]
    for moment in MOMENTS:
        header += [
            _("aux share, {moment}").format(moment=_(moment)),
            _("cosine, {moment}").format(moment=_(moment)),
        ]
    return ReportTable(
        _("Aux share and direction of the gradient, {net}").format(net=g.aux.name),
        tuple(header),
        tuple(rows),
        _("Aux share ‖w·∂L_aux/∂y‖ ÷ ‖∂L_main/∂y‖ (geometric mean over seeds) and cos(∂L_aux/∂y, ∂L_main/∂y) "
          "(mean over seeds) at the output y of the stem and of every inception module the aux heads reach; "
          "training mode, the study's diagnostics batch, the same dropout masks; during: per seed the median over "
          "the probes between initialisation and the last step."),
    )  # fmt: skip


def sections(result: StudyResult) -> list[Section]:
    """The study's report sections: the training curves and errors, then the gradient at the lower layers."""
    gtable = _gradient_table(result)
    return [
        Section(
            "results",
            _("Training curves and final errors"),
            tables=(_errors_table(result),),
            figures=tuple(error_figures(result)),
        ),  # fmt: skip
        Section(
            "gradients",
            _("Gradient reaching the lower layers"),
            tables=(gtable,) if gtable else (),
            figures=tuple(gradient_figures(result)),
        ),  # fmt: skip
    ]
