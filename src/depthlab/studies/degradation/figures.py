"""Figures and report sections of the degradation study, drawn from what its runs recorded (never retrains).

Each figure has a caption saying what is plotted, on what data and in which mode; figures a reader compares
share axes and scales. Gradients are per element (RMS), as in the findings (:mod:`.evidence`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from depthlab.analysis.gradients import Diagnostics
from depthlab.i18n import _
from depthlab.present.format import pct, sci
from depthlab.present.plots import (
    Curve,
    Series,
    _colours,
    plot_error_curves,
    plot_responses,
    png_bytes,
    pyplot,
)
from depthlab.present.types import ReportFigure, ReportTable, Section
from depthlab.studies.common import PLATEAU_FRACTION
from depthlab.studies.degradation.evidence import (
    EXPLODE,
    VANISH,
    GradientMeasure,
    conditions,
    during_probes,
    gradient_evidence,
    shattered_evidence,
    train_split,
)
from depthlab.studies.degradation.grid import NO_BN_TWIN, ConditionKey, parse_model
from depthlab.studies.results import Condition, StudyResult

__all__ = ["error_figures", "gradient_figures", "shattered_figures", "response_figures", "sections"]


def _mean_curve(curves: Sequence[tuple[tuple[int, float], ...]]) -> tuple[tuple[int, float], ...]:
    """Point-wise mean (in %) over the steps every curve has."""
    curves = [c for c in curves if c]
    if not curves:
        return ()
    common = set.intersection(*(set(s for s, _ in c) for c in curves))
    maps = [dict(c) for c in curves]
    return tuple((s, 100 * sum(m[s] for m in maps) / len(maps)) for s in sorted(common))


def _seeds(c: Condition) -> str:
    return " " + (_("({n} seed)") if c.seeds == 1 else _("({n} seeds)")).format(n=c.seeds)


# ------------------------------------------------------------------------------------------------- errors
def error_figures(result: StudyResult) -> list[ReportFigure]:
    by = conditions(result)
    if not by:
        return []
    eval_train = train_split(by) == "train_eval"
    held = "val" if all("val" in r.curves for c in by.values() for r in c.runs) else "test"
    train = "train_eval" if eval_train else "train"
    curves = [
        Curve(c.name + _seeds(c), k.depth, k.residual, _mean_curve([r.curves.get(train, ()) for r in c.runs]),
              _mean_curve([r.curves.get(held, ()) for r in c.runs]))
        for k, c in by.items()
    ]  # fmt: skip
    points = min((len(x.held_out) for x in curves), default=0)
    name = {"val": _("held-out validation subset"), "test": _("test")}[held]
    train_what = (
        _("dashed: training error in eval mode over the training images the net fits (intermediate points on a "
          "fixed subset of them, the last on all)")
        if eval_train
        else _("dashed: running training error of the batches since the previous row")
    )  # fmt: skip
    out = [
        ReportFigure(
            _("Training and held-out error vs iterations (ResNet paper Fig. 6)"),
            _(
                "Mean over seeds. {train_what}; bold: {name} error ({points} points; intermediate points on a fixed "
                "subset, the last on the whole split), eval mode. Plain networks left, residual right, same y-axis; "
                "colours follow depth."
            ).format(train_what=train_what, name=name, points=points),
            png_bytes(plot_error_curves(curves, held_out_name=name)),
            "fig6_error_curves",
        )
    ]
    if all("train" in r.curves for c in by.values() for r in c.runs):
        out.append(_running_figure(result, by))
    return out


def _running_figure(result: StudyResult, by: dict[ConditionKey, Condition]) -> ReportFigure:
    plt = pyplot()
    colours = _colours([k.depth for k in by])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    steps = max((int(r.config.get("steps") or r.step) for c in by.values() for r in c.runs), default=0)
    for ax, residual, title in (
        (axes[0], False, _("plain networks")),
        (axes[1], True, _("residual networks")),
    ):
        for k, c in by.items():
            if k.residual != residual:
                continue
            curve = _mean_curve([r.curves.get("train", ()) for r in c.runs])
            if curve:
                xs, ys = zip(*curve, strict=True)
                ax.plot(xs, ys, color=colours[k.depth], lw=1.4, label=c.name + _seeds(c))
        if steps:
            ax.axvspan((1 - PLATEAU_FRACTION) * steps, steps, color="grey", alpha=0.15, lw=0)
        ax.set_title(title)
        ax.set_xlabel(_("iterations"))
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[1]:  # empty when every net on this side diverged in every seed
            ax.legend(loc="upper right", fontsize=8)
    axes[0].set_ylabel(_("running training error (%)"))
    fig.tight_layout()
    return ReportFigure(
        _("Running training error (the paper's on-the-fly measure)"),
        _(
            "Mean over seeds of the error of the training batches since the previous logged row, in training mode "
            "(BN on batch statistics), as the ResNet paper plots it. Shaded: the last {pct:.0f}% of iterations, the "
            "window of the plateau check. Plain left, residual right, same y-axis."
        ).format(pct=100 * PLATEAU_FRACTION),
        png_bytes(fig),
        "running_train_error",
    )


# ---------------------------------------------------------------------------------------------- gradients
def _first_seed(c: Condition, moment: str, key: str) -> Series | None:
    for r in c.runs:
        entry = r.diagnostics.get(moment)
        if isinstance(entry, dict) and key in entry:
            d = Diagnostics.from_dict(entry[key])
            pairs = [(b.index, b.grad_rms) for b in d.blocks if b.grad_rms > 0 and math.isfinite(b.grad_rms)]
            return _series(c, pairs)
    return None


def _series(c: Condition, pairs: Sequence[tuple[int, float]]) -> Series | None:
    if not pairs:
        return None
    depth, residual = (
        (int(c.factors["depth"]), bool(c.factors["residual"]))
        if "depth" in c.factors
        else (parse_model(c.runs[0].model))
    )
    return Series(c.name, depth, residual, tuple(i for i, _ in pairs), tuple(v for _, v in pairs))


def _mid_series(c: Condition) -> Series | None:
    for r in c.runs:
        probes = during_probes(r)
        if probes:
            d = probes[len(probes) // 2][1]
            pairs = [(b.index, b.grad_rms) for b in d.blocks if b.grad_rms > 0 and math.isfinite(b.grad_rms)]
            return _series(c, pairs)
    return None


def gradient_figures(result: StudyResult) -> list[ReportFigure]:
    plt = pyplot()
    by = dict(sorted(conditions(result).items(), key=lambda kv: (kv[0].residual, kv[0].depth)))
    panels: list[tuple[str, list[Series]]] = []
    for title, pick in (
        (_("init, BN (training mode)"), lambda c: _first_seed(c, "init", "train")),
        (_("middle probe during training, BN"), _mid_series),
        (_("init, {no_bn}").format(no_bn=_(NO_BN_TWIN)), lambda c: _first_seed(c, "init", "no_bn")),
    ):
        series = [s for s in (pick(c) for c in by.values()) if s is not None]
        if series:
            panels.append((title, series))
    out = []
    if panels:
        colours = _colours([s.depth for _, ss in panels for s in ss])
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), sharey=True, squeeze=False)
        for ax, (title, series) in zip(axes[0], panels, strict=True):
            for s in series:
                ax.plot(s.index, s.values, color=colours[s.depth], ls="-" if s.residual else "--", marker=".",
                        lw=1.4, label=s.label)  # fmt: skip
            ax.set_yscale("log")
            ax.set_title(title, fontsize=9)
            ax.set_xlabel(_("block index (input → output)"))
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7)
        axes[0][0].set_ylabel(_("RMS of ∂L/∂y per element at the block output (log)"))
        fig.tight_layout()
        out.append(
            ReportFigure(
                _(
                    "One gradient measure for every condition: the per-element (RMS) gradient at each block's output"
                ),
                _(
                    "‖∂L/∂y‖/√(elements) — per element, because the blocks' outputs differ in size — for the first "
                    "seed of each condition, on the study's diagnostics batch of held-out images, cross-entropy loss. "
                    "Left: at initialisation with BN in training mode; middle: at the middle probe during training "
                    "(BN, training mode); right: the same architecture at initialisation {no_bn}, same seed. Dashed: "
                    "plain, solid: ResNet; shared log y-axis. A line falling toward block 1 is a vanishing gradient, "
                    "rising an exploding one."
                ).format(no_bn=_(NO_BN_TWIN)),
                png_bytes(fig),
                "gradient_blocks",
            )
        )
    ratio = _ratio_figure(by)
    if ratio is not None:
        out.append(ratio)
    return out


def _ratio_figure(by: dict[ConditionKey, Condition]) -> ReportFigure | None:
    plt = pyplot()

    lines = []
    for k, c in by.items():
        for r in c.runs[:1]:
            pts = []
            init = r.diagnostics.get("init", {})
            if "train" in init:
                pts.append((0, Diagnostics.from_dict(init["train"]).block_grad_ratio()))
            pts += [(s, d.block_grad_ratio()) for s, d in during_probes(r)]
            pts = [(s, v) for s, v in pts if v > 0 and math.isfinite(v)]
            if pts:
                lines.append((c.name, k, pts))
    if not lines:
        return None
    colours = _colours([k.depth for _, k, _ in lines])
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, k, pts in lines:
        xs, ys = zip(*pts, strict=True)
        ax.plot(xs, ys, color=colours[k.depth], ls="-" if k.residual else "--", marker=".", label=name)
    ax.axhline(VANISH, color="grey", lw=0.8, ls=":")
    ax.axhline(EXPLODE, color="grey", lw=0.8, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel(_("iterations"))
    ax.set_ylabel(_("RMS ∂L/∂y, first block ÷ last (log)"))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return ReportFigure(
        _("First/last block gradient ratio (per element) during training"),
        _(
            "First seed of each condition, BN in training mode, on the diagnostics batch: at initialisation "
            "(iteration 0) and at every probe during training (evaluation steps before the last). Dotted lines: the "
            "outcome thresholds {vanish:g} (below: vanishing) and {explode:g} (above: exploding)."
        ).format(vanish=VANISH, explode=EXPLODE),
        png_bytes(fig),
        "gradient_ratio_during",
    )


# --------------------------------------------------------------------------------------------- shattered
def shattered_figures(result: StudyResult) -> list[ReportFigure]:
    plt = pyplot()
    ev = shattered_evidence(result)
    data = result.analysis("shattered")
    if ev is None or not data:
        return []
    first_seed = min(int(r["seed"]) for r in data["results"])
    rows = [r for r in data["results"] if int(r["seed"]) == first_seed]
    colours = _colours(sorted({int(r["depth"]) for r in rows}))
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5), squeeze=False)
    for col, bn in enumerate((True, False)):
        ax = axes[0][col]
        for r in sorted((r for r in rows if r["bn"] == bn), key=lambda r: (r["residual"], r["depth"])):
            g = r["directional"]
            scale = max(abs(v) for v in g) or 1.0
            t = [i / (len(g) - 1) for i in range(len(g))]
            ax.plot(t, [v / scale for v in g], color=colours[int(r["depth"])], ls="-" if r["residual"] else "--",
                    lw=0.9, label=r["label"].split(",")[0])  # fmt: skip
        ax.set_title(_("with BN") if bn else _(NO_BN_TWIN), fontsize=9)
        ax.set_xlabel(_("position t on the line between two images"))
        ax.set_ylabel(_("∂logit/∂t (scaled to max 1)"))
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    order = sorted(ev.conditions, key=lambda kb: (not kb[1], kb[0].residual, kb[0].depth))
    no_bn = _("no BN")
    names = [f"{k.label}\n{'BN' if bn else no_bn}" for k, bn in order]
    colour = ["#4c72b0" if k.residual else "#dd8452" for k, _ in order]
    for ax, measure, ylabel in ((axes[1][0], "lag1", _("lag-1 autocorrelation of ∂logit/∂t")),
                                (axes[1][1], "slope", _("spectral slope β (0 white, −2 brown)"))):  # fmt: skip
        means, lows, highs = [], [], []
        for kb in order:
            e = getattr(ev.conditions[kb], measure)
            ci = e.ci()
            means.append(e.mean)
            lows.append(e.mean - ci.low if ci is not None else 0.0)
            highs.append(ci.high - e.mean if ci is not None else 0.0)
        ax.bar(range(len(order)), means, yerr=[lows, highs], color=colour, capsize=3)
        ax.set_xticks(range(len(order)), names, fontsize=7)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
        ax.axhline(0, color="grey", lw=0.8, ls=":")
    axes[1][1].axhline(-2, color="grey", lw=0.8, ls=":")
    fig.tight_layout()
    caption = _(
        "At initialisation: the derivative of the logit of the first image's class along a {points}-point "
        "straight line between two held-out images (top; seed {seed}; dashed plain, solid ResNet); bottom "
        "left: its lag-1 autocorrelation (≈ 0 white noise, → 1 smooth), bottom right: the slope of its power "
        "spectrum (0 white, −2 brown); bars: mean over {seeds} seeds with the 95% t interval. With BN, BN "
        "normalises with the statistics of a held-out batch (eval mode with those statistics); no BN: {no_bn}."
    ).format(points=ev.points, seed=first_seed, seeds=ev.seeds, no_bn=_(NO_BN_TWIN))
    return [
        ReportFigure(
            _("Shattered gradients (Balduzzi et al. 2017)"), caption, png_bytes(fig), "shattered_gradients"
        )
    ]


# --------------------------------------------------------------------------------------------- responses
def response_figures(result: StudyResult) -> list[ReportFigure]:
    series = []
    for k, c in sorted(conditions(result).items(), key=lambda kv: (kv[0].residual, kv[0].depth)):
        for r in c.runs[:1]:
            entry = r.diagnostics.get("end", {})
            if "eval" in entry:
                d = Diagnostics.from_dict(entry["eval"])
                if d.responses:
                    series.append(Series(c.name, k.depth, k.residual, tuple(s.index for s in d.responses),
                                         tuple(s.std for s in d.responses)))  # fmt: skip
    if not series:
        return []
    return [
        ReportFigure(
            _("Layer responses (ResNet paper Fig. 7)"),
            _(
                "Standard deviation of each 3×3 layer's response after BN and before the ReLU/addition, trained "
                "models (first seed) in eval mode on the diagnostics batch of held-out images; top: in network order, "
                "bottom: sorted. Dashed: plain, solid: ResNet."
            ),
            png_bytes(plot_responses(series)),
            "fig7_responses",
        )
    ]


# ------------------------------------------------------------------------------------------------ report
def _measure_cell(m: GradientMeasure) -> str:
    if m.ratio is None:
        return "—"
    return f"{', '.join(sci(v) for v in m.ratio.values)} ({_(m.outcome)})"


def _growth_cell(m: GradientMeasure) -> str:
    if m.growth is None:
        return "—"
    ci = m.growth.ci()
    return f"{m.growth.mean:+.3f}" + (f" [{ci.low:+.3f}, {ci.high:+.3f}]" if ci is not None else "")


def sections(result: StudyResult) -> list[Section]:
    """The report's sections: the final errors by depth, the gradient measurements, the shattered gradients and
    the layer responses, each with its tables and figures."""
    by = conditions(result)
    split = train_split(by)
    rows = []
    for depth in sorted({k.depth for k in by}):
        cells = [str(depth)]
        for residual in (False, True):
            c = by.get(ConditionKey(depth, residual))
            for s in (split, "test"):
                e = c.error(s) if c else None
                ci = e.ci() if e else None
                cells.append(
                    pct(e.mean) + (f" [{100 * ci.low:.1f}, {100 * ci.high:.1f}]" if ci else "") if e else "—"
                )
        rows.append(tuple(cells))
    measure = (
        _("eval-mode error over the training (sub)set each net fits")
        if split == "train_eval"
        else _("running error of the last logged batches")
    )
    table = ReportTable(
        _("Final error by depth"),
        (_("depth"), _("plain train"), _("plain test"), _("residual train"), _("residual test")),
        tuple(rows),
        _("Train: {measure}, at the last step; test: the full test split at the end. Mean over seeds [95% t "
          "interval].").format(measure=measure),
    )  # fmt: skip
    out = [
        Section("results", _("Final error by depth"), tables=(table,), figures=tuple(error_figures(result)))
    ]
    ev_rows = []
    for k, c in by.items():
        g = gradient_evidence(c, k)
        ev_rows.append((c.name, _measure_cell(g.init_bn), _growth_cell(g.init_bn), _measure_cell(g.during_bn),
                        _measure_cell(g.init_no_bn), _growth_cell(g.init_no_bn)))  # fmt: skip
    gtable = ReportTable(
        _("Gradient measurements (per element)"),
        (
            _("condition"),
            _("RMS grad first ÷ last, init, BN"),
            _("growth per block [95% CI]"),
            _("… during training (median)"),
            _("… init, no BN"),
            _("growth per block, no BN"),
        ),  # fmt: skip
        tuple(ev_rows),
        _("One ratio per seed; growth: the slope of log10 RMS gradient per block toward the input, mean over seeds "
          "with its 95% t interval. Outcomes from the 95% interval of the log10 ratio against {vanish:g} "
          "(vanishing) and {explode:g} (exploding). BN in training mode on the diagnostics batch; no BN: the same "
          "net {no_bn}, same seed, untrained.").format(vanish=VANISH, explode=EXPLODE, no_bn=_(NO_BN_TWIN)),
    )  # fmt: skip
    out.append(Section("gradients", _("Gradients: vanishing, exploding or neither?"), tables=(gtable,),
                       figures=tuple(gradient_figures(result))))  # fmt: skip
    shat = shattered_figures(result)
    if shat:
        out.append(Section("shattered", _("Shattered gradients at initialisation"), figures=tuple(shat)))
    resp = response_figures(result)
    if resp:
        out.append(Section("responses", _("Layer responses (Fig. 7)"), figures=tuple(resp)))
    return out
