"""Generic figures in the style of the ResNet paper (matplotlib on the Agg backend, imported on first use:
:func:`pyplot`), drawn by the studies, the analyses and `depthlab gradflow`.

Every function takes plain data (no run directories, no training) and returns a ``Figure``;
:func:`png_bytes` renders one. Colours follow depth, so plain-56 and ResNet-56 share a colour across
panels.

* :func:`plot_error_curves` — Fig. 6: error (%) vs iterations, training error thin, held-out error bold;
  plain nets left, residual nets right, both panels on one y-axis.
* :func:`plot_responses` — Fig. 7: std of each 3×3 layer's response (after BN, before the nonlinearity) by
  layer index (top) and sorted by magnitude (bottom).
* :func:`plot_gradflow` — ‖∂L/∂W‖ of every weighted layer (or ‖∂L/∂y‖ of every block output) vs its
  index, log scale, one line per model.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from depthlab.i18n import N_, _

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Fonts, in order of preference, that cover Japanese kana and kanji and Korean hangul (the pan-CJK Noto
# faces each hold all three).
CJK_FONTS = ("Noto Sans CJK JP", "Noto Sans CJK KR", "Noto Sans CJK SC")

__all__ = [
    "CJK_FONTS",
    "Curve",
    "Series",
    "plot_error_curves",
    "plot_responses",
    "plot_gradflow",
    "png_bytes",
    "pyplot",
]


@functools.cache
def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display), imported on first use: matplotlib takes most of
    a second to import, and most commands draw nothing."""
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot (harmless if already set)
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    # Japanese and Korean labels (--lang ja|ko): fall back to Noto Sans CJK (Debian's fonts-noto-cjk, which
    # `make fonts` installs) for the glyphs DejaVu Sans lacks; Latin text keeps DejaVu Sans.
    cjk = [f.name for f in font_manager.fontManager.ttflist if f.name in CJK_FONTS]
    if cjk:
        plt.rcParams["font.family"] = ["DejaVu Sans", *dict.fromkeys(n for n in CJK_FONTS if n in cjk)]
    return plt


@dataclass(frozen=True)
class Curve:
    """One model's error curves, in percent: (iteration, error %) points."""

    label: str  # e.g. "plain-56"
    depth: int
    residual: bool
    train: tuple[tuple[int, float], ...]
    held_out: tuple[tuple[int, float], ...]  # validation (or test) error over iterations


@dataclass(frozen=True)
class Series:
    """One line of a by-layer plot: ``values[i]`` belongs to layer ``index[i]`` (1-based)."""

    label: str
    depth: int
    residual: bool
    index: tuple[int, ...]
    values: tuple[float, ...]


def _colours(depths: Sequence[int]) -> dict[int, str]:
    plt = pyplot()
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {d: cycle[i % len(cycle)] for i, d in enumerate(sorted(set(depths)))}


def png_bytes(fig: Figure, dpi: int = 110) -> bytes:
    """The figure as PNG bytes; the figure is closed."""
    plt = pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def plot_error_curves(curves: Sequence[Curve], *, held_out_name: str = N_("validation")) -> Figure:
    """Fig. 6 style: thin = training error (on the fly), bold = ``held_out_name`` error (shown as
    ``_(held_out_name)``)."""
    plt = pyplot()
    if not curves:
        raise ValueError("plot_error_curves needs at least one curve")
    colours = _colours([c.depth for c in curves])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, residual, title in (
        (axes[0], False, _("plain networks")),
        (axes[1], True, _("residual networks")),
    ):
        mine = sorted((c for c in curves if c.residual == residual), key=lambda c: c.depth)
        for c in mine:
            colour = colours[c.depth]
            if c.train:
                xs, ys = zip(*c.train, strict=True)
                ax.plot(xs, ys, color=colour, lw=0.9, alpha=0.85, ls="--")
            if c.held_out:
                xs, ys = zip(*c.held_out, strict=True)
                ax.plot(xs, ys, color=colour, lw=2.4, marker="o" if len(xs) < 3 else None, label=c.label)
        ax.set_title(title)
        ax.set_xlabel(_("iterations"))
        ax.grid(alpha=0.3)
        if mine:
            # A net that diverged in every seed has no held-out curve, so nothing carries a label: no legend
            # then (matplotlib would warn and draw an empty box).
            if ax.get_legend_handles_labels()[1]:
                legend = _("bold: {held_out}; dashed: train").format(held_out=_(held_out_name))
                ax.legend(loc="upper right", fontsize=8, title=legend, title_fontsize=8)
        else:
            ax.text(0.5, 0.5, _("no runs"), ha="center", va="center", transform=ax.transAxes)
    axes[0].set_ylabel(_("error (%)"))
    fig.tight_layout()
    return fig


def _by_layer(
    series: Sequence[Series],
    ylabel: str,
    *,
    log: bool,
    sorted_panel: bool,
    title: str,
    xlabel: str = N_("layer index"),
) -> Figure:
    if not series:
        raise ValueError("a by-layer plot needs at least one series")
    plt = pyplot()
    colours = _colours([s.depth for s in series])
    nrows = 2 if sorted_panel else 1
    fig, axes = plt.subplots(nrows, 1, figsize=(9, 3.4 * nrows), squeeze=False)
    for s in sorted(series, key=lambda s: (s.residual, s.depth)):
        style = dict(
            color=colours[s.depth], lw=1.6, ls="-" if s.residual else "--", label=s.label, marker="."
        )
        axes[0][0].plot(s.index, s.values, **style)
        if sorted_panel:
            ranked = sorted(s.values, reverse=True)
            axes[1][0].plot(range(1, len(ranked) + 1), ranked, **style)
    xlabel = _(xlabel)
    axes[0][0].set_xlabel(_("{xlabel} (original order)").format(xlabel=xlabel) if sorted_panel else xlabel)
    axes[0][0].set_title(_(title))
    if sorted_panel:
        axes[1][0].set_xlabel(_("{xlabel} (sorted by magnitude)").format(xlabel=xlabel))
    for row in axes:
        ax = row[0]
        ax.set_ylabel(_(ylabel))
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def plot_responses(
    series: Sequence[Series], *, title: str = N_("3×3 layer responses (after BN, before ReLU)")
) -> Figure:
    """Fig. 7 style: response std by layer index and sorted; dashed plain, solid residual. Titles and labels
    are shown as ``_(text)``: mark one given here with ``N_``."""
    return _by_layer(series, N_("std"), log=False, sorted_panel=True, title=title)


def plot_gradflow(
    series: Sequence[Series],
    *,
    title: str = N_("gradient norm by layer"),
    ylabel: str = N_("‖∂L/∂W‖ (log)"),
    xlabel: str = N_("layer index"),
) -> Figure:
    """Gradient norms on a log axis (default: ‖∂L/∂W‖ per weighted layer); dashed plain, solid residual.
    Zeros are not drawn."""
    cleaned = [
        Series(s.label, s.depth, s.residual, *_positive(s.index, s.values))
        for s in series  # log axis
    ]
    return _by_layer(cleaned, ylabel, log=True, sorted_panel=False, title=title, xlabel=xlabel)


def _positive(index: Sequence[int], values: Sequence[float]) -> tuple[tuple[int, ...], tuple[float, ...]]:
    keep = [(i, v) for i, v in zip(index, values, strict=True) if v > 0]
    return tuple(i for i, _ in keep), tuple(v for _, v in keep)
