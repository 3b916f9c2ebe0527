"""Figures of the "why it works" analyses (matplotlib, Agg), drawn from results only, never from models.

Every ``plot_*`` takes ``(label, result)`` pairs (or one result) and returns a ``Figure``; every ``*_caption``
says what is plotted, on which data and in which mode. Figures a reader compares share axes and scales: one
error axis (0–100%) for all lesion panels, one set of contour levels and one loss axis for all landscapes,
one ρ axis (−1…1) for the sanity check. As in :mod:`depthlab.present.plots`, colour follows depth and residual
nets are drawn solid, plain nets dashed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from depthlab.analysis.attribution import METHOD_TITLES, AttributionResult, variant_title
from depthlab.analysis.landscape import LandscapeResult
from depthlab.analysis.lesion import LesionResult
from depthlab.analysis.paths import PathResult
from depthlab.i18n import _
from depthlab.present.plots import _colours, pyplot

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "plot_lesion",
    "plot_paths",
    "plot_landscape",
    "plot_attributions",
    "plot_sanity",
    "lesion_caption",
    "paths_caption",
    "landscape_caption",
    "attribution_caption",
    "sanity_caption",
]

Item = tuple[str, Any]


def _depth_of(r: Any) -> int:
    m = re.search(r"(\d+)$", str(r.source.get("model", "")))
    return int(m.group(1)) if m else 0


def _style(items: Sequence[Item]) -> list[dict[str, Any]]:
    plt = pyplot()
    colours = _colours([_depth_of(r) for _, r in items])
    styles = []
    for i, (_label, r) in enumerate(items):
        residual = bool(r.source.get("residual", getattr(r, "mode", "") == "residual"))
        colour = colours[_depth_of(r)]
        # Two runs of one depth and kind (seeds) would be indistinguishable: shift to the next colours.
        same = [j for j, (_, o) in enumerate(items[:i]) if _depth_of(o) == _depth_of(r)
                and bool(o.source.get("residual")) == residual]  # fmt: skip
        if same:
            cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
            colour = cycle[(list(colours).index(_depth_of(r)) + 3 * len(same)) % len(cycle)]
        styles.append({"color": colour, "ls": "-" if residual else "--"})
    return styles


def _data_note(results: Sequence[Any]) -> str:
    def kind(r: Any) -> str:
        data = r.source.get("data", "?")
        if r.source.get("split", "test") == "train":
            return _("{data} training split").format(data=data)
        return _("{data} test split").format(data=data)

    return ", ".join(sorted({kind(r) for r in results}))


# ----------------------------------------------------------------------------------------------- lesion
def plot_lesion(items: Sequence[tuple[str, LesionResult]]) -> Figure:
    """Three panels on one error axis: single-block deletion by block, error vs k deleted blocks (mean and
    spread of the draws; k = 0 is the intact net), error vs k swapped pairs."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator  # matplotlib: imported on first use, as pyplot()

    if not items:
        raise ValueError("plot_lesion needs at least one result")
    styles = _style(items)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3), sharey=True)
    chance = max(r.chance_error for _, r in items)
    for (label, r), st in zip(items, styles, strict=True):
        idx = [s.index for s in r.single]
        err = [100 * s.error for s in r.single]
        mode = _("{label} (residual mode)") if r.mode == "residual" else _("{label} (plain mode)")
        axes[0].plot(idx, err, marker=".", lw=1.4, label=mode.format(label=label), **st)
        axes[0].axhline(100 * r.intact_error, color=st["color"], lw=0.8, ls=":")
        down = [(s.index, 100 * s.error) for s in r.single if s.downsampling]
        if down:
            xs, ys = zip(*down, strict=True)
            axes[0].scatter(xs, ys, s=90, facecolors="none", edgecolors=st["color"], linewidths=1.6, zorder=3)
        ks = [0] + [d.k for d in r.deletions]
        means = [100 * r.intact_error] + [100 * d.mean for d in r.deletions]
        spread = [0.0] + [100 * d.spread for d in r.deletions]
        axes[1].errorbar(ks, means, yerr=spread, marker=".", lw=1.4, capsize=2, label=label, **st)
        if r.swaps:
            ks = [0] + [d.k for d in r.swaps]
            means = [100 * r.intact_error] + [100 * d.mean for d in r.swaps]
            spread = [0.0] + [100 * d.spread for d in r.swaps]
            axes[2].errorbar(ks, means, yerr=spread, marker=".", lw=1.4, capsize=2, label=label, **st)
    for ax in axes:
        ax.axhline(100 * chance, color="0.5", lw=1, ls="-.")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0].set_title(_("delete one block (○ = downsampling; dotted = intact)"))
    axes[0].set_xlabel(_("block (execution order among deletable blocks)"))
    axes[0].set_ylabel(_("test error (%)"))
    axes[1].set_title(_("delete k random blocks"))
    axes[1].set_xlabel(_("k (blocks deleted)"))
    axes[2].set_title(_("swap k random pairs of same-stage blocks"))
    for ax in axes[1:]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[2].set_xlabel(_("k (pairs swapped)"))
    if not any(r.swaps for _x, r in items):
        axes[2].text(
            0.5, 0.5, _("no swappable blocks"), ha="center", va="center", transform=axes[2].transAxes
        )
    axes[0].text(0.99, 100 * chance - 1, _("chance"), ha="right", va="top", fontsize=8, color="0.4",
                 transform=axes[0].get_yaxis_transform())  # fmt: skip
    axes[0].legend(fontsize=8, loc="center right")
    fig.tight_layout()
    return fig


def _joined(values: Iterable[int]) -> str:
    """The distinct values, in numeric order, as "300/1,000" (a caption naming what several runs used)."""
    return "/".join(f"{v:,}" for v in sorted(set(values)))


def lesion_caption(items: Sequence[tuple[str, LesionResult]]) -> str:
    results = [r for _, r in items]
    n, draws = sorted({r.images for r in results}), sorted({r.draws for r in results})
    return _(
        "Lesion study (Veit et al. 2016, Fig. 3 and 5): test error after deleting blocks of the trained "
        "network — residual mode keeps the shortcut and drops the residual branch, plain mode replaces a "
        "shape-preserving block by the identity — on {images} fixed images of the {data}, eval mode (BN running "
        "statistics). Left: each block alone; middle: k random blocks at once ({draws} draws per k, bars = spread "
        "of the draws); right: k random swaps of two blocks of one stage. Solid lines residual nets, dashed plain "
        "nets; dash-dot = chance. One error axis for all panels."
    ).format(images=_joined(n), data=_data_note(results), draws=_joined(draws))


# ------------------------------------------------------------------------------------------------ paths
def plot_paths(items: Sequence[tuple[str, PathResult]]) -> Figure:
    """Veit et al. Fig. 6: path-length distribution, gradient per path length (log), and total gradient
    magnitude per length (normalised to sum 1) with the effective range shaded."""
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator  # matplotlib: imported on first use, as pyplot()

    if not items:
        raise ValueError("plot_paths needs at least one result")
    styles = _style(items)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for (label, r), st in zip(items, styles, strict=True):
        axes[0].plot(r.lengths, r.probability, marker=".", lw=1.4, label=f"{label} (n = {r.blocks})", **st)
        g = np.array(r.gradient)
        axes[1].plot(r.lengths, np.where(g > 0, g, np.nan), marker=".", lw=1.4, label=label, **st)
        total = np.array(r.total)
        share = total / total.sum() if total.sum() > 0 else total
        axes[2].plot(
            r.lengths, share, marker=".", lw=1.4, label=_("{label}: gradient").format(label=label), **st
        )
        # Where the paths are, for comparison: a gradient that ignores length would follow this line.
        axes[2].plot(r.lengths, r.probability, lw=1.0, color=st["color"], ls=":",
                     label=_("{label}: paths").format(label=label))  # fmt: skip
        a, b = r.effective
        axes[2].axvspan(a - 0.5, b + 0.5, color=st["color"], alpha=0.12)
    axes[0].set_title(_("distribution of path lengths"))
    axes[0].set_ylabel(_("fraction of paths"))
    axes[1].set_title(_("gradient magnitude of one path"))
    axes[1].set_ylabel(_("mean per-image ‖∂L/∂x₀‖ (log)"))
    axes[1].set_yscale("log")
    axes[2].set_title(
        _("total gradient magnitude (shaded: {pct:.0f}% range)").format(pct=100 * items[0][1].mass)
    )
    axes[2].set_ylabel(_("share of Σ P(k)·|g_k| (dotted: share of paths, P(k))"))
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel(_("path length k (residual branches on the path)"))
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def paths_caption(items: Sequence[tuple[str, PathResult]]) -> str:
    results = [r for _, r in items]
    return _(
        "Path lengths (Veit et al. 2016, Fig. 6). Left: of the 2ⁿ paths through n residual blocks, the "
        "fraction with k residual branches, Binomial(n, ½). Middle: gradient of the cross-entropy reaching the "
        "first block's input through single paths of length k (backward pass through the branch at k random "
        "blocks and through the shortcut at the others), mean per-image norm, {samples} samples of {batch} {data} "
        "images per k, eval mode. Right: the two multiplied — the gradient each length contributes in total; the "
        "shaded band is the effective path range; dotted: the path-length distribution again, which the gradient "
        "would follow if one path's gradient did not depend on its length."
    ).format(samples=_joined(r.samples[1] for r in results),
             batch=_joined(r.batch for r in results), data=_data_note(results))  # fmt: skip


# -------------------------------------------------------------------------------------------- landscape
def _levels(items: Sequence[tuple[str, LandscapeResult]]) -> np.ndarray:
    # Only the finite losses set the scale: a non-finite one (read back as NaN, unknown) is left blank.
    grids = [g[np.isfinite(g)] for g in (np.array(r.grid_loss, dtype=float) for _, r in items if r.grid_loss)]
    grids = [g for g in grids if g.size]
    lo = max(min(float(g.min()) for g in grids), 1e-6)  # cross-entropy is positive: log-spaced levels
    # Cap the shared scale at 20× the lowest loss (Li et al. draw 0.1–10) or where the least chaotic surface
    # ends, whichever is lower: far out the loss explodes to 10³–10⁴ and would flatten the basin's detail.
    hi = min(min(float(np.percentile(g, 95)) for g in grids), 20 * lo)
    return np.geomspace(lo, max(hi, lo * 1.01), 25)


def _sharpness_title(label: str, r: LandscapeResult) -> str:
    e = r.sharpness_estimate()
    ci = e.ci() if e is not None else None
    interval = f" [{ci.low:.3f}, {ci.high:.3f}]" if ci is not None else ""
    value = f"{r.sharpness:.3f}" if np.isfinite(r.sharpness) else _("unknown (non-finite)")
    return _("{label}: sharpness {value}").format(label=label, value=value) + interval


def plot_landscape(items: Sequence[tuple[str, LandscapeResult]]) -> Figure:
    """Top: one 2-D contour plot per run (direction pair 0) with shared levels and axes, the figure as wide
    as its panels; bottom: every run's 1-D slices on one axis (pair 0 thick, the other pairs thin)."""
    plt = pyplot()
    if not items:
        raise ValueError("plot_landscape needs at least one result")
    # A grid with no finite loss (every value read back as NaN) has nothing to draw.
    with_grid = [
        (label, r)
        for label, r in items
        if r.grid_loss and np.isfinite(np.array(r.grid_loss, dtype=float)).any()
    ]
    cols = len(with_grid)
    # Each contour panel is square, ~4.4 in, plus ~1.4 in for the colour bar: a figure any wider would
    # leave an empty band beside a single panel.
    width = 4.4 * cols + 1.4 if with_grid else 7.5
    fig = plt.figure(figsize=(max(width, 5.8), 8.2 if with_grid else 4.2), layout="constrained")
    styles = _style(items)
    if with_grid:
        gs = fig.add_gridspec(2, cols, height_ratios=[1.15, 1])
        levels = _levels(with_grid)
        first = None
        mappable = None
        contour_axes = []
        for c, (label, r) in enumerate(with_grid):
            ax = fig.add_subplot(gs[0, c], sharex=first, sharey=first)
            first = first or ax
            contour_axes.append(ax)
            coords = np.array(r.grid_coords)
            z = np.array(r.grid_loss)
            mappable = ax.contourf(
                coords, coords, np.minimum(z, levels[-1]), levels=levels, cmap="viridis", extend="max"
            )
            ax.contour(coords, coords, z, levels=levels, colors="white", linewidths=0.4, alpha=0.6)
            ax.plot([0], [0], marker="+", color="red", ms=10)
            ax.set_title(_sharpness_title(label, r), fontsize=9)
            ax.set_xlabel(_("α (direction 1 of pair 0)"))
            ax.set_aspect("equal")
            if c == 0:
                ax.set_ylabel(_("β (direction 2 of pair 0)"))
        if mappable is not None:
            fig.colorbar(mappable, ax=contour_axes, shrink=0.9, label=_("loss (shared levels, capped)"))
        bottom = fig.add_subplot(gs[1, :])
    else:
        bottom = fig.add_subplot(1, 1, 1)
    for (label, r), st in zip(items, styles, strict=True):
        bottom.plot(r.slice_t, r.slice_loss, lw=1.8, label=_("{label} (pair 0)").format(label=label), **st)
        others = r.pair_slice_loss[1:]
        for k, losses in enumerate(others):
            bottom.plot(r.slice_t, losses, lw=0.8, alpha=0.6,
                        label=_("{label}, pairs 1–{n}").format(label=label, n=len(others)) if k == 0 else None,
                        **st)  # fmt: skip
    bottom.set_xlabel(_("t (filter-normalised direction 1 of each pair)"))
    bottom.set_ylabel(_("loss"))
    bottom.set_yscale("log")
    bottom.set_title(_("1-D slices (one loss axis for all runs)"))
    bottom.grid(alpha=0.3, which="both")
    bottom.legend(fontsize=8)
    return fig


def landscape_caption(items: Sequence[tuple[str, LandscapeResult]]) -> str:
    results = [r for _, r in items]
    c = results[0].config
    grid = _("{n}×{n} grid").format(n=c.grid) if c.grid else _("no grid")
    pairs = _joined(r.pairs for r in results)
    return _(
        "Loss landscape (Li et al. 2018): mean cross-entropy of the trained weights moved along random "
        "filter-normalised directions (each conv filter / linear row of a direction scaled to the norm of the "
        "same filter of the weights; BN and bias parameters not moved), {pairs} seeded direction pair(s) per "
        "run; contours: pair 0 on a {grid} over [−{span:g}, {span:g}]²; on {images} fixed images of the {data}, "
        "eval mode (BN running statistics). Contours share one set of log-spaced levels from the lowest loss to "
        "20× that (or the 95th percentile of the least rough surface, if lower; higher losses take the top "
        "colour); the 1-D slices along each pair's first direction share one axis (pair 0 thick). Sharpness = "
        "mean loss rise within radius {radius:g} of the trained weights, mean over the pairs with its 95% t "
        "interval over the pairs in brackets."
    ).format(pairs=pairs, grid=grid, span=c.span, images=_joined(r.images for r in results),
             data=_data_note(results), radius=c.radius)  # fmt: skip


# ------------------------------------------------------------------------------------------ attribution
def plot_attributions(
    label: str, result: AttributionResult, images: torch.Tensor, maps: dict[str, torch.Tensor]
) -> Figure:
    """One row per image: the image, then each method's map (Grad-CAM as an overlay), each scaled to [0, 1]
    per image. ``images`` (N, C, H, W) in [0, 1]; ``maps`` from :func:`~depthlab.analysis.attribution.
    display_maps`."""
    plt = pyplot()
    n = images.shape[0]
    cols = 1 + len(result.methods)
    fig, axes = plt.subplots(n, cols, figsize=(2.3 * cols, 2.3 * n + 0.4), squeeze=False)
    for i in range(n):
        img = images[i].permute(1, 2, 0).detach().cpu().numpy()
        gray = img.shape[2] == 1
        shown = img[:, :, 0] if gray else img
        rec = result.images[i]
        axes[i][0].imshow(shown, cmap="gray" if gray else None, vmin=0, vmax=1)
        truth = _("true {name}").format(name=rec.label_name) + "\n" if rec.label_name is not None else ""
        predicted = _("pred {name} ({pct:.0f}%)").format(name=rec.prediction_name, pct=100 * rec.probability)
        axes[i][0].set_title(truth + predicted, fontsize=8)
        for j, m in enumerate(result.methods, start=1):
            ax = axes[i][j]
            v = maps[m][i].detach().cpu().numpy()
            if m == "gradcam":
                ax.imshow(shown, cmap="gray" if gray else None, vmin=0, vmax=1)
                ax.imshow(v, cmap="jet", alpha=0.5, vmin=0, vmax=1)
            else:
                ax.imshow(v, cmap="inferno", vmin=0, vmax=1)
            if i == 0:
                ax.set_title(METHOD_TITLES[m], fontsize=9)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(_("{label}: attributions for the predicted class").format(label=label), fontsize=10)
    fig.tight_layout()
    return fig


def attribution_caption(label: str, result: AttributionResult) -> str:
    return _(
        "Attributions of {label} for its predicted class on {n} image(s), eval mode: Grad-CAM at the output of "
        "{layer} (ReLU, upsampled, over the image), integrated gradients (|Σ over channels|, zero baseline = the "
        "mean image, {steps} steps) and saliency (max over channels of |∂logit/∂x|); each map scaled to [0, 1] per "
        "image (Captum)."
    ).format(label=label, n=len(result.images), layer=result.layer, steps=result.ig_steps)


def plot_sanity(items: Sequence[tuple[str, AttributionResult]]) -> Figure:
    """One panel per run: mean Spearman ρ (original vs randomised maps) after each cut, one colour per method,
    solid for the absolute (shown) map and dashed for the signed one, shaded with the 95% t interval over
    images; the ρ axis is −1…1 for every run."""
    plt = pyplot()
    if not items:
        raise ValueError("plot_sanity needs at least one result")
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    methods = list(dict.fromkeys(m for _, r in items for m in r.methods))
    fig, axes = plt.subplots(
        1, len(items), figsize=(max(5.5 * len(items), 6), 4.4), sharey=True, squeeze=False
    )
    for c, (label, r) in enumerate(items):
        ax = axes[0][c]
        cuts: list[str] = []
        for method, variant in r.variants():
            rows = r.rows(method, variant)
            cuts = ["none"] + [row.cut for row in rows]
            x = np.arange(len(cuts))
            rho = np.array([1.0] + [row.mean for row in rows])
            colour = cycle[methods.index(method) % len(cycle)]
            ls = "--" if variant == "signed" and method != "gradcam" else "-"
            ax.plot(x, rho, marker="o", ms=4, color=colour, ls=ls, label=variant_title(method, variant))
            low = [1.0] + [row.ci.low if row.ci is not None else np.nan for row in rows]
            high = [1.0] + [row.ci.high if row.ci is not None else np.nan for row in rows]
            ax.fill_between(x, low, high, color=colour, alpha=0.12, lw=0)
        ax.set_xticks(range(len(cuts)))
        ax.set_xticklabels(cuts, rotation=45, ha="right", fontsize=8)
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_ylim(-1.05, 1.05)
        ax.set_title(f"{label}", fontsize=10)
        ax.set_xlabel(_("re-initialised from the head down to"))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel(_("mean Spearman ρ vs original map"))
    fig.tight_layout()
    return fig


def sanity_caption(items: Sequence[tuple[str, AttributionResult]]) -> str:
    results = [r for _, r in items]
    return _(
        "Cascading model-parameter randomisation (Adebayo et al. 2018): the layers are re-initialised from the "
        "head down, {unit} by {unit}, and each method's map is recomputed for the original model's predicted "
        "class; y = Spearman rank correlation with the original map, mean over {n} image(s), shaded: 95% t "
        "interval over the images; solid: absolute maps (Grad-CAM: its signed map), dashed: signed maps (no "
        "absolute value); eval mode. A map that stays correlated after the weights are destroyed does not explain "
        "the model."
    ).format(unit=results[0].granularity, n=_joined(len(r.images) for r in results))
