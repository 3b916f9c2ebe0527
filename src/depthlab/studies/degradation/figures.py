"""Figures of the degradation study, drawn from what its runs recorded (never retrains).

Each function returns :class:`~depthlab.studies.engine.ReportFigure` objects with a caption saying what
is plotted, on what data and in which mode. Figures a reader compares share axes and scales.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt

from depthlab.report.plots import Curve, Series, _colours, plot_error_curves, plot_responses, png_bytes
from depthlab.report.types import ReportFigure
from depthlab.studies.engine import StudyResult

__all__ = ["error_figures", "gradient_figures", "shattered_figures", "response_figures"]


def _key(c: Any) -> tuple[int, bool]:
    from depthlab.studies.degradation import parse_model

    if "depth" in c.factors:
        return int(c.factors["depth"]), bool(c.factors["residual"])
    return parse_model(c.runs[0].model)


def _mean_curve(curves: Sequence[tuple[tuple[int, float], ...]]) -> tuple[tuple[int, float], ...]:
    """Point-wise mean (in %) over the steps every curve has."""
    curves = [c for c in curves if c]
    if not curves:
        return ()
    common = set.intersection(*(set(s for s, _ in c) for c in curves))
    maps = [dict(c) for c in curves]
    return tuple((s, 100 * sum(m[s] for m in maps) / len(maps)) for s in sorted(common))


def error_figures(result: StudyResult) -> list[ReportFigure]:
    conditions = result.conditions()
    if not conditions:
        return []
    eval_train = all("train_eval" in r.curves for c in conditions for r in c.runs)
    held = "val" if all("val" in r.curves for c in conditions for r in c.runs) else "test"
    curves = []
    for c in conditions:
        depth, residual = _key(c)
        seeds = f" ({c.seeds} seeds)" if c.seeds > 1 else ""
        train_split = "train_eval" if eval_train else "train"
        curves.append(
            Curve(
                c.name + seeds, depth, residual,
                _mean_curve([r.curves.get(train_split, ()) for r in c.runs]),
                _mean_curve([r.curves.get(held, ()) for r in c.runs]),
            )
        )  # fmt: skip
    points = min((len(x.held_out) for x in curves), default=0)
    name = {"val": "held-out validation subset", "test": "test"}[held]
    fig = plot_error_curves(curves, held_out_name=name)
    train_what = (
        "dashed: training error in eval mode over the training images the net fits (intermediate points on a "
        "fixed subset of them, the last on all)"
        if eval_train
        else "dashed: running training error of the batches since the previous row"
    )
    caption = (
        f"Mean over seeds. {train_what}; bold: {name} error ({points} points; intermediate points on a fixed "
        f"subset, the last on the whole split). Plain networks left, residual right, same y-axis; colours follow "
        f"depth."
    )
    out = [
        ReportFigure(
            "Training and held-out error vs iterations (ResNet paper Fig. 6)",
            caption,
            png_bytes(fig),
            "fig6_error_curves",
        )
    ]
    if eval_train and all("train" in r.curves for c in conditions for r in c.runs):
        running = [
            Curve(c.name, *_key(c), _mean_curve([r.curves.get("train", ()) for r in c.runs]), ())
            for c in conditions
        ]
        fig = plot_error_curves(running, held_out_name="—")
        out.append(
            ReportFigure(
                "Running training error (the paper's on-the-fly measure)",
                "Mean over seeds of the error of the training batches since the previous logged row, in training "
                "mode (BN on batch statistics), as the ResNet paper plots it; plain left, residual right, same "
                "y-axis.",
                png_bytes(fig),
                "running_train_error",
            )
        )
    return out


def _first_seed_diag(c: Any, moment: str, key: str, step: int | None = None) -> Any:
    from depthlab.analysis.gradients import Diagnostics

    for r in c.runs:
        entry = r.diagnostics.get(moment) if step is None else r.diagnostics.get("steps", {}).get(str(step))
        if isinstance(entry, dict) and key in entry:
            return Diagnostics.from_dict(entry[key])
    return None


def _mid_step(c: Any) -> int | None:
    steps = sorted(int(s) for s in c.runs[0].diagnostics.get("steps", {})) if c.runs else []
    last = int(c.runs[0].config.get("steps") or 0) if c.runs else 0
    steps = [s for s in steps if s < last]
    return steps[len(steps) // 2] if steps else None


def gradient_figures(result: StudyResult) -> list[ReportFigure]:
    conditions = sorted(result.conditions(), key=lambda c: (_key(c)[1], _key(c)[0]))
    panels: list[tuple[str, list[Series]]] = []
    for title, moment, key, mid in (
        ("init, BN (training mode)", "init", "train", False),
        ("mid-training, BN", None, "train", True),
        ("init, no BN (ResNets: SkipInit)", "init", "no_bn", False),
    ):
        series = []
        for c in conditions:
            depth, residual = _key(c)
            d = _first_seed_diag(c, "steps", key, _mid_step(c)) if mid else _first_seed_diag(c, moment, key)
            if d is None or not d.blocks:
                continue
            pairs = [(b.index, b.output_grad_norm) for b in d.blocks if b.output_grad_norm > 0]
            if pairs:
                series.append(
                    Series(c.name, depth, residual, tuple(i for i, _ in pairs), tuple(v for _, v in pairs))
                )
        if series:
            panels.append((title, series))
    out = []
    if panels:
        colours = _colours([s.depth for _, ss in panels for s in ss])
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), sharey=True, squeeze=False)
        for ax, (title, series) in zip(axes[0], panels, strict=True):
            for s in series:
                ax.plot(
                    s.index,
                    s.values,
                    color=colours[s.depth],
                    ls="-" if s.residual else "--",
                    marker=".",
                    lw=1.4,
                    label=s.label,
                )
            ax.set_yscale("log")
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("block index (input → output)")
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=7)
        axes[0][0].set_ylabel("‖∂L/∂y‖ at the block output (log)")
        fig.tight_layout()
        out.append(
            ReportFigure(
                "One gradient measure for every condition: ‖∂L/∂y‖ at each block's output",
                "First seed of each condition, on the study's diagnostics batch of held-out images, cross-entropy "
                "loss. Left: at initialisation with BN in training mode; middle: at the middle probe during "
                "training; right: the same architecture built without BN from the same seed (ResNets with "
                "SkipInit), untrained. Dashed: plain, solid: ResNet; shared log y-axis. A line falling toward "
                "block 1 is a vanishing gradient, rising an exploding one.",
                png_bytes(fig),
                "gradient_blocks",
            )
        )
    # The ratio over training.
    lines = []
    for c in conditions:
        depth, residual = _key(c)
        for r in c.runs[:1]:
            pts = []
            from depthlab.analysis.gradients import Diagnostics

            init = r.diagnostics.get("init", {})
            if "train" in init:
                pts.append((0, Diagnostics.from_dict(init["train"]).block_grad_ratio()))
            for s, v in sorted(r.diagnostics.get("steps", {}).items(), key=lambda kv: int(kv[0])):
                if "train" in v:
                    pts.append((int(s), Diagnostics.from_dict(v["train"]).block_grad_ratio()))
            pts = [(s, v) for s, v in pts if v > 0 and v == v and v != float("inf")]
            if pts:
                lines.append((c.name, depth, residual, pts))
    if lines:
        from depthlab.studies.stats import EXPLODE, VANISH

        colours = _colours([d for _, d, _, _ in lines])
        fig, ax = plt.subplots(figsize=(8, 4))
        for name, depth, residual, pts in lines:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, color=colours[depth], ls="-" if residual else "--", marker=".", label=name)
        ax.axhline(VANISH, color="grey", lw=0.8, ls=":")
        ax.axhline(EXPLODE, color="grey", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel("iterations")
        ax.set_ylabel("‖∂L/∂y₁‖ ÷ ‖∂L/∂y_last‖ (log)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        fig.tight_layout()
        out.append(
            ReportFigure(
                "First/last block gradient ratio during training",
                f"First seed of each condition, BN in training mode, on the diagnostics batch at initialisation "
                f"(iteration 0) and at every evaluation step. Dotted lines: the outcome thresholds {VANISH:g} "
                f"(below: vanishing) and {EXPLODE:g} (above: exploding).",
                png_bytes(fig),
                "gradient_ratio_during",
            )
        )
    return out


def shattered_figures(result: StudyResult) -> list[ReportFigure]:
    data = result.analysis("shattered")
    if not data or not data.get("results"):
        return []
    rows = [r for r in data["results"] if r["seed"] == 0]
    depths = sorted({r["depth"] for r in rows})
    colours = _colours(depths)
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5), squeeze=False)
    for col, bn in enumerate((True, False)):
        ax = axes[0][col]
        for r in sorted((r for r in rows if r["bn"] == bn), key=lambda r: (r["residual"], r["depth"])):
            g = r["directional"]
            scale = max(abs(v) for v in g) or 1.0
            t = [i / (len(g) - 1) for i in range(len(g))]
            ax.plot(t, [v / scale for v in g], color=colours[r["depth"]], ls="-" if r["residual"] else "--", lw=0.9,
                    label=r["label"].split(",")[0])  # fmt: skip
        ax.set_title("with BN" if bn else "without BN (ResNets: SkipInit)", fontsize=10)
        ax.set_xlabel("position t on the line between two images")
        ax.set_ylabel("∂logit/∂t (scaled to max 1)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    ax = axes[1][0]
    names, corr, err = [], [], []
    groups: dict[tuple[int, bool, bool], list[float]] = {}
    for r in data["results"]:
        groups.setdefault((r["depth"], r["residual"], r["bn"]), []).append(r["neighbour_correlation"])
    for (depth, residual, bn), vals in sorted(
        groups.items(), key=lambda kv: (not kv[0][2], kv[0][1], kv[0][0])
    ):
        names.append(f"{'ResNet' if residual else 'plain'}-{depth}\n{'BN' if bn else 'no BN'}")
        corr.append(statistics.fmean(vals))
        err.append(statistics.stdev(vals) if len(vals) > 1 else 0.0)
    ax.bar(
        range(len(names)), corr, yerr=err, color=["#4c72b0" if "ResNet" in n else "#dd8452" for n in names]
    )
    ax.set_xticks(range(len(names)), names, fontsize=7)
    ax.set_ylabel("neighbour gradient correlation")
    ax.set_ylim(min(0.0, min(corr) - 0.05), 1.0)
    ax.grid(alpha=0.3, axis="y")
    ax = axes[1][1]
    slopes: dict[tuple[int, bool, bool], list[float]] = {}
    for r in data["results"]:
        slopes.setdefault((r["depth"], r["residual"], r["bn"]), []).append(r["spectral_slope"])
    keys = sorted(slopes, key=lambda k: (not k[2], k[1], k[0]))
    ax.bar(range(len(keys)), [statistics.fmean(slopes[k]) for k in keys],
           color=["#4c72b0" if k[1] else "#dd8452" for k in keys])  # fmt: skip
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.axhline(-2, color="grey", lw=0.8, ls=":")
    ax.set_xticks(
        range(len(keys)),
        [f"{'ResNet' if k[1] else 'plain'}-{k[0]}\n{'BN' if k[2] else 'no BN'}" for k in keys],
        fontsize=7,
    )
    ax.set_ylabel("spectral slope β (0 white, −2 brown)")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    caption = (
        f"At initialisation: the derivative of the logit of the first image's class along a "
        f"{data['settings']['points']}-point straight line between two held-out images (top; seed 0; dashed plain, "
        f"solid ResNet); bottom left: mean correlation of the full input gradients at neighbouring points (mean ± "
        f"std over {data['settings']['seeds']} seeds); bottom right: slope of the power spectrum of the top "
        f"signal (0 = white noise, −2 = brown noise). BN normalises with the statistics of a held-out batch (eval "
        f"mode with those statistics)."
    )
    return [
        ReportFigure(
            "Shattered gradients (Balduzzi et al. 2017)", caption, png_bytes(fig), "shattered_gradients"
        )
    ]


def response_figures(result: StudyResult) -> list[ReportFigure]:
    series = []
    for c in sorted(result.conditions(), key=lambda c: (_key(c)[1], _key(c)[0])):
        d = _first_seed_diag(c, "end", "eval")
        if d is not None and d.responses:
            depth, residual = _key(c)
            series.append(
                Series(
                    c.name,
                    depth,
                    residual,
                    tuple(s.index for s in d.responses),
                    tuple(s.std for s in d.responses),
                )
            )
    if not series:
        return []
    return [
        ReportFigure(
            "Layer responses (ResNet paper Fig. 7)",
            "Standard deviation of each 3×3 layer's response after BN and before the ReLU/addition, trained models "
            "(first seed) in eval mode on the diagnostics batch of held-out images; top: in network order, bottom: "
            "sorted. Dashed: plain, solid: ResNet.",
            png_bytes(plot_responses(series)),
            "fig7_responses",
        )
    ]
