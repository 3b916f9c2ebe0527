"""``build_report(directory)``: one self-contained HTML page from a study directory.

Inputs are run directories (config.json, environment.json, metrics.jsonl, summary.json, diagnostics.json)
and the study's study.json; nothing is trained or evaluated. The page holds the findings, the
depth × {plain, residual} error table, Fig. 6/7-style figures and gradient plots (PNG, base64 data URIs),
the models' parameters and MACs, per-run details, the environment and the commands that reproduce it all.
The template is rendered by jinja2 with autoescaping on, so nothing read from disk can inject markup.

MACs count multiply-accumulates of Conv2d and Linear layers for one image at the runs' image size, as
:func:`depthlab.analysis.summarize` counts them (FLOPs = 2 × MACs).
"""

from __future__ import annotations

import base64
import datetime as _dt
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from depthlab.experiments.degradation import (
    DegradationResult,
    StudyRun,
    pct,
    read_study,
    reproduce_commands,
)
from depthlab.report.figures import error_curves_figure, gradients_figure, responses_figure
from depthlab.report.plots import png_bytes

__all__ = ["Report", "Figure", "ModelCost", "build_report", "model_costs", "render"]


@dataclass(frozen=True)
class Figure:
    title: str
    caption: str
    png_base64: str


@dataclass(frozen=True)
class ModelCost:
    model: str
    params: int
    macs: int  # multiply-accumulates of Conv2d + Linear for one image
    input_shape: tuple[int, int, int]


@dataclass(frozen=True)
class Report:
    html: str
    num_runs: int
    figures: tuple[str, ...]  # titles, in page order


def _embed(fig: Any, title: str, caption: str) -> Figure:
    return Figure(title, caption, base64.b64encode(png_bytes(fig)).decode("ascii"))


def model_costs(runs: Sequence[StudyRun]) -> list[ModelCost]:
    """Parameters and MACs of each distinct model of ``runs``, built as the runs built them, for one image
    at the runs' image size (:func:`depthlab.analysis.summarize`)."""
    from depthlab import create_model
    from depthlab.analysis import summarize

    out: dict[str, ModelCost] = {}
    for r in runs:
        if r.model in out or not r.data:
            continue
        kwargs = dict(r.config.get("model_kwargs", {}))
        num_classes = kwargs.pop("num_classes", r.data["num_classes"])
        in_channels = kwargs.pop("in_channels", r.data["in_channels"])
        shape = (int(in_channels), int(r.data["image_size"]), int(r.data["image_size"]))
        model = create_model(r.model, num_classes=num_classes, in_channels=in_channels, **kwargs)
        summary = summarize(model, shape)
        out[r.model] = ModelCost(r.model, summary.params, summary.macs, shape)
    return sorted(out.values(), key=lambda c: (c.model.rstrip("0123456789"), c.params))


def _diagnostic_rows(runs: Sequence[StudyRun]) -> list[dict[str, str]]:
    rows = []
    for r in sorted(runs, key=lambda r: (r.depth, r.residual, r.seed)):
        row = {"run": f"{r.label} (seed {r.seed})"}
        for key, name in (("init", "init"), ("end", "end")):
            d = r.diagnostics.get(key)
            row[f"ratio_{name}"] = f"{d.grad_norm_ratio():.3g}" if d is not None else "—"
        end = r.diagnostics.get("end_eval")
        ratios = [b.branch_ratio for b in end.blocks if b.branch_ratio is not None] if end else []
        row["branch"] = f"{statistics.fmean(ratios):.3g}" if ratios else "—"
        row["response"] = (
            f"{statistics.fmean(s.std for s in end.responses):.3g}" if end and end.responses else "—"
        )
        rows.append(row)
    return rows


def _environment(runs: Sequence[StudyRun]) -> tuple[list[tuple[str, str]], list[str]]:
    """The first run's environment as (key, value) rows, and notes on keys where runs differ."""
    envs = [r.environment for r in runs if r.environment]
    if not envs:
        return [], []
    first = envs[0]
    rows = []
    for key, value in first.items():
        if isinstance(value, Mapping):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        rows.append((key, str(value)))
    notes = [
        f"runs differ in {key}: {', '.join(sorted({str(e.get(key)) for e in envs}))}"
        for key in first
        if key not in ("hostname",) and len({str(e.get(key)) for e in envs}) > 1
    ]
    return rows, notes


def build_report(directory: str | Path, *, reproduce_dir: str | None = None) -> Report:
    """Render the report of the study (or directory of runs) at ``directory``.

    ``reproduce_dir`` is the directory named in the reproduce commands (default: ``directory`` as given).
    """
    root = Path(directory)
    result = read_study(root)
    return render(result, reproduce_dir or str(directory))


def render(result: DegradationResult, directory: str) -> Report:
    runs = list(result.runs)
    figures: list[Figure] = []
    fig6, split = error_curves_figure(runs)
    figures.append(
        _embed(
            fig6,
            "Training and held-out error vs iterations (ResNet paper Fig. 6)",
            f"Dashed thin lines: training error on the fly (running error of the training batches); bold "
            f"lines: {split} error. Plain networks left, residual networks right; colours follow depth.",
        )
    )
    fig7 = responses_figure(runs)
    if fig7 is not None:
        figures.append(
            _embed(
                fig7,
                "Layer responses (ResNet paper Fig. 7)",
                "Standard deviation of each 3×3 layer's response after BN and before the ReLU/addition, "
                "trained models in eval mode on held-out images; top: in network order, bottom: sorted. "
                "Dashed: plain, solid: ResNet.",
            )
        )
    for key, when in (("init", "at initialisation"), ("end", "after training")):
        fig = gradients_figure(runs, key, f"‖∂L/∂W‖ per layer {when}")
        if fig is not None:
            figures.append(
                _embed(
                    fig,
                    f"Gradient norms {when}",
                    "Norm of the loss gradient with respect to each conv/linear weight, by layer index from "
                    "input (1) to classifier, on one held-out batch in training mode; log scale.",
                )
            )
    fig = gradients_figure(
        runs, "init_no_bn", "‖∂L/∂y‖ per block output at initialisation, without batch norm", per="block"
    )
    if fig is not None:
        figures.append(
            _embed(
                fig,
                "Backward signal without batch norm",
                "The same architectures built without batch norm (same seed, untrained): norm of the loss "
                "gradient with respect to each block's output, from the first block to the last, on the "
                "same batch; log scale. This is where vanishing gradients would show.",
            )
        )
    env_rows, env_notes = _environment(runs)
    preset = result.preset
    context = {
        "title": f"Degradation study — {result.dataset}" + (f", preset {preset.name}" if preset else ""),
        "generated": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "preset": preset,
        "seeds": result.seeds,
        "overrides": result.overrides,
        "findings": result.findings,
        "table": result.table(),
        "figures": figures,
        "runs": [
            {
                "label": r.label,
                "model": r.model,
                "seed": r.seed,
                "status": r.status,
                "step": r.step,
                "train": pct(r.final_train_error),
                "val": pct(r.final_val_error),
                "test": pct(r.final_test_error),
                "wall": f"{r.wall_seconds:.0f} s",
                "speed": f"{r.images_per_s:.0f}" if r.images_per_s else "—",
                "dir": str(r.run_dir),
            }
            for r in runs
        ],
        "costs": model_costs(runs),
        "diagnostics": _diagnostic_rows(runs),
        "environment": env_rows,
        "environment_notes": env_notes,
        "commands": reproduce_commands(result, directory),
    }
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("depthlab.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    html = env.get_template("report.html").render(**context)
    return Report(html=html, num_runs=len(runs), figures=tuple(f.title for f in figures))
