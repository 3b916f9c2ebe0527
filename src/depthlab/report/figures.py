"""Study objects → figures: the bridge between :mod:`depthlab.experiments` / gradient diagnostics and
:mod:`depthlab.report.plots`. Only reads what runs recorded."""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.figure import Figure

from depthlab.analysis.gradients import Diagnostics, ModelFlow
from depthlab.experiments.degradation import StudyRun, parse_model
from depthlab.report.plots import Curve, Series, plot_error_curves, plot_gradflow, plot_responses

__all__ = ["error_curves_figure", "responses_figure", "gradients_figure", "gradflow_figure"]


def _first_seed(runs: Sequence[StudyRun]) -> list[StudyRun]:
    seen: dict[tuple[int, bool], StudyRun] = {}
    for r in sorted(runs, key=lambda r: r.seed):
        seen.setdefault((r.depth, r.residual), r)
    return list(seen.values())


def _mean_curve(curves: Sequence[tuple[tuple[int, float], ...]]) -> tuple[tuple[int, float], ...]:
    """Point-wise mean (in %) over the steps every curve has."""
    if not curves:
        return ()
    common = set.intersection(*(set(s for s, _ in c) for c in curves))
    maps = [dict(c) for c in curves]
    return tuple((s, 100 * sum(m[s] for m in maps) / len(maps)) for s in sorted(common))


def error_curves_figure(runs: Sequence[StudyRun]) -> tuple[Figure, str]:
    """Fig. 6 from the runs' metrics (mean over seeds), and the held-out split it shows in bold: the
    test error when the runs evaluated the test split more than once, else validation."""
    groups: dict[tuple[int, bool], list[StudyRun]] = {}
    for r in runs:
        groups.setdefault((r.depth, r.residual), []).append(r)
    use_test = all(len(r.test_curve) > 1 for r in runs)
    split = "test" if use_test else "validation"
    curves = []
    for (depth, residual), rs in sorted(groups.items()):
        held = [r.test_curve if use_test else r.val_curve for r in rs]
        label = rs[0].label + (f" ({len(rs)} seeds)" if len(rs) > 1 else "")
        curves.append(
            Curve(label, depth, residual, _mean_curve([r.train_curve for r in rs]), _mean_curve(held))
        )
    return plot_error_curves(curves, held_out_name=split), split


def _series(label: str, depth: int, residual: bool, index: Sequence[int], values: Sequence[float]) -> Series:
    return Series(label, depth, residual, tuple(index), tuple(values))


def responses_figure(runs: Sequence[StudyRun], key: str = "end_eval") -> Figure | None:
    """Fig. 7 from each configuration's first seed (``None`` if no run has these diagnostics)."""
    series = []
    for r in sorted(_first_seed(runs), key=lambda r: (r.residual, r.depth)):
        d: Diagnostics | None = r.diagnostics.get(key)
        if d is not None and d.responses:
            series.append(
                _series(
                    r.label, r.depth, r.residual, [s.index for s in d.responses], [s.std for s in d.responses]
                )
            )
    if not series:
        return None
    return plot_responses(series)


def gradients_figure(runs: Sequence[StudyRun], key: str, title: str, *, per: str = "layer") -> Figure | None:
    """Gradient norms of each configuration's first seed at ``key`` ("init", "end", "init_no_bn"):
    ``per="layer"``: ‖∂L/∂W‖ of every weighted layer; ``per="block"``: ‖∂L/∂y‖ of every block output."""
    if per not in ("layer", "block"):
        raise ValueError(f"per must be 'layer' or 'block', got {per!r}")
    series = []
    for r in sorted(_first_seed(runs), key=lambda r: (r.residual, r.depth)):
        d = r.diagnostics.get(key)
        if d is None:
            continue
        if per == "layer" and d.layers:
            index, values = [s.index for s in d.layers], [s.grad_norm for s in d.layers]
        elif per == "block" and d.blocks:
            index, values = [b.index for b in d.blocks], [b.output_grad_norm for b in d.blocks]
        else:
            continue
        series.append(_series(r.label, r.depth, r.residual, index, values))
    if not series:
        return None
    if per == "block":
        return plot_gradflow(series, title=title, ylabel="‖∂L/∂y‖ (log)", xlabel="block index")
    return plot_gradflow(series, title=title)


def gradflow_figure(flows: Sequence[ModelFlow], *, title: str) -> Figure:
    """The ``depthlab gradflow`` figure: one line per model (dashed plain, solid residual)."""
    series = []
    for f in flows:
        try:
            depth, _ = parse_model(f.name)
        except ValueError:
            depth = len(f.diagnostics.layers)
        residual = any(b.residual for b in f.diagnostics.blocks)
        layers = f.diagnostics.layers
        series.append(
            _series(f.name, depth, residual, [s.index for s in layers], [s.grad_norm for s in layers])
        )
    return plot_gradflow(series, title=title)
