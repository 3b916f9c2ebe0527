"""``depthlab gradflow``, ``depthlab experiment degradation`` and ``depthlab report``: the degradation study."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from depthlab.cli.train import add_tensorboard_option, tensorboard_wanted
from depthlab.errors import UsageError

DEFAULT_GRADFLOW_MODELS = ("plain20", "plain56", "resnet20", "resnet56")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "gradflow",
        help="per-layer gradient norms of freshly initialised models (gradflow.png + gradflow.json)",
        description="Gradient norm of every conv/linear weight, and activation std, of each model at "
        "initialisation on one batch (training mode: BN on batch statistics).",
    )
    p.add_argument("models", nargs="*", metavar="MODEL", help=f"default: {' '.join(DEFAULT_GRADFLOW_MODELS)}")
    p.add_argument("--data", default="fashion-mnist", help="dataset name (default: fashion-mnist)")
    p.add_argument("--data-dir", default=None, help="where to look for the dataset files")
    p.add_argument("--batch", type=int, default=128, help="images in the batch (default: 128)")
    p.add_argument("--no-bn", action="store_true", help="build the models without batch norm")
    p.add_argument("--seed", type=int, default=0, help="initialisation seed (default: 0)")
    p.add_argument("--out", default="runs/gradflow", help="output directory (default: runs/gradflow)")
    add_tensorboard_option(p, "OUT/tensorboard (the figure as an image)")
    p.set_defaults(func=run_gradflow)

    from depthlab.experiments.degradation import PRESETS, STUDIES

    p = subparsers.add_parser(
        "experiment",
        help="run a declared study (degradation: plain vs residual nets at several depths)",
        description="Train every model of the study in its own run directory (re-running skips finished "
        "runs and resumes unfinished ones), then write results.json with computed findings.",
    )
    p.add_argument("study", choices=STUDIES, help="the study to run")
    p.add_argument("--preset", choices=sorted(PRESETS), default="quick", help="budget (default: quick)")
    p.add_argument("--out", default=None, help="study directory (default: runs/STUDY-PRESET)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per model (default: the preset's)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="(default: auto)")
    p.add_argument("--data-dir", default=None, help="where to look for the dataset files")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a preset field, e.g. --set steps=200 (repeatable; unknown keys are rejected)",
    )
    p.set_defaults(func=run_experiment)

    p = subparsers.add_parser(
        "report",
        help="one self-contained HTML report from a study directory",
        description="Build the report from run directories and results.json only (never retrains).",
    )
    p.add_argument("dir", help="a study directory (from `depthlab experiment`) or a directory of runs")
    p.add_argument("--out", default=None, help="HTML file to write (default: DIR/report.html)")
    p.set_defaults(func=run_report)


# ------------------------------------------------------------------------------------------- gradflow
def run_gradflow(args: argparse.Namespace) -> int:
    from depthlab.analysis.gradients import gradflow_json, gradient_flow
    from depthlab.data import load_data, make_loader
    from depthlab.report.figures import gradflow_figure
    from depthlab.report.plots import png_bytes

    names = list(args.models) or list(DEFAULT_GRADFLOW_MODELS)
    if args.batch < 1:
        raise UsageError(f"--batch must be a positive integer, got {args.batch}")
    bundle = load_data(args.data, data_dir=args.data_dir, val_size=0)
    n = min(args.batch, len(bundle.train))
    images, labels = next(iter(make_loader(bundle, bundle.train, batch_size=n).epoch()))
    norm = None if args.no_bn else "batch"
    flows = gradient_flow(names, images, labels, num_classes=bundle.num_classes, norm=norm, seed=args.seed)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gradflow.json").write_text(json.dumps(gradflow_json(flows), indent=1) + "\n")
    title = f"gradient norm by layer at init — {bundle.name}, batch {n}, {'no BN' if args.no_bn else 'BN'}"
    png = png_bytes(gradflow_figure(flows, title=title))
    (out / "gradflow.png").write_bytes(png)
    if tensorboard_wanted(args):
        from depthlab.train.tensorboard import LOG_SUBDIR, write_image

        write_image(out / LOG_SUBDIR, f"gradflow/{'no-bn' if args.no_bn else 'bn'}", png)

    table = Table(title=title)
    for col in ("model", "layers", "‖∂L/∂W‖ first", "‖∂L/∂W‖ last", "first / last", "loss"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for f in flows:
        d = f.diagnostics
        table.add_row(
            f.name,
            str(len(d.layers)),
            f"{d.layers[0].grad_norm:.3g}",
            f"{d.layers[-1].grad_norm:.3g}",
            f"{d.grad_norm_ratio():.3g}",
            f"{d.loss:.3f}",
        )
    console = Console()
    console.print(table)
    console.print(f"wrote {out / 'gradflow.png'} and {out / 'gradflow.json'}")
    return 0


# ----------------------------------------------------------------------------------------- experiment
def run_experiment(args: argparse.Namespace) -> int:
    from depthlab.experiments.degradation import PRESETS, apply_preset_overrides, run_degradation

    preset = apply_preset_overrides(PRESETS[args.preset], args.overrides)
    out = Path(args.out or f"runs/{args.study}-{args.preset}")
    console = Console()
    console.print(
        f"[bold]{args.study}[/bold] study, preset {preset.name}: {preset.describe()}\nstudy directory: {out}"
    )
    result = run_degradation(
        preset,
        out,
        seeds=args.seeds,
        device=args.device,
        data_dir=args.data_dir,
        overrides=args.overrides,
        progress=lambda line: console.print(line, highlight=False),
    )
    table = Table(title="final error (%) — mean ± std over seeds where more than one")
    for col in ("depth", "plain train", "plain test", "residual train", "residual test"):
        table.add_column(col, justify="right")
    for row in result.table():
        table.add_row(*row)
    console.print(table)
    console.print("[bold]findings[/bold]")
    for sentence in result.findings:
        console.print(f"• {sentence}", highlight=False)
    console.print(f"wrote {out / 'results.json'}; next: depthlab report {out}")
    return 0


# --------------------------------------------------------------------------------------------- report
def run_report(args: argparse.Namespace) -> int:
    from depthlab.report import build_report

    directory = Path(args.dir)
    out = Path(args.out) if args.out else directory / "report.html"
    report = build_report(directory)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.html, encoding="utf-8")
    print(f"report: {out.resolve()} ({report.num_runs} runs, {len(report.html) / 1024:.0f} KiB)")
    return 0
