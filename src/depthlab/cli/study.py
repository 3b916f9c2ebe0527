"""``depthlab gradflow``, ``depthlab study degradation`` and ``depthlab report``: the degradation study."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from depthlab.analysis.gradients import gradflow_json, gradient_flow
from depthlab.cli.train import add_tensorboard_option, tensorboard_wanted
from depthlab.data import load_data, make_loader
from depthlab.errors import UsageError
from depthlab.i18n import LANGUAGES, _, language, resolve_language
from depthlab.io import read_json, write_json
from depthlab.present.plots import png_bytes
from depthlab.report import build_report
from depthlab.report.answers import group_findings
from depthlab.report.figures import gradflow_figure
from depthlab.report.html import export_figures
from depthlab.report.readme import answers_markdown, replication_markdown, results_markdown
from depthlab.runtime import select_device
from depthlab.studies.declare import StudyError, apply_preset_overrides
from depthlab.studies.plan import plan_study, study_status
from depthlab.studies.registry import get_study, list_studies
from depthlab.studies.replication import pool_studies, replicate
from depthlab.studies.results import read_study, recorded_settings, results_json
from depthlab.studies.run import EXECUTORS, run_study
from depthlab.train.tensorboard import LOG_SUBDIR, write_image

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

    p = subparsers.add_parser(
        "study",
        aliases=["experiment"],  # the command's name before issue 24; kept so old scripts keep working
        help="run a declared study (" + ", ".join(list_studies()) + "); alias: experiment",
        description="Train every run of the study's grid in its own run directory (re-running skips finished "
        "runs and resumes unfinished ones), then write results.json with computed findings. The same command "
        "started several times on one directory (on one machine, or on machines sharing the file system) "
        "splits the grid: each run is locked by the worker training it.",
    )
    p.add_argument("study", choices=list_studies(), help="the study to run")
    p.add_argument("--preset", default="quick", help="budget: quick, standard, paper, … (default: quick)")
    p.add_argument("--out", default=None, help="study directory (default: runs/STUDY-PRESET)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per condition (default: the preset's)")
    p.add_argument(
        "--seed-offset",
        type=int,
        default=0,
        metavar="N",
        help="run seeds N … N+seeds−1 (default 0): a replication on fresh seeds uses N past the original's",
    )
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
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local: one run after another (default); ray: each run a Ray task")  # fmt: skip
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local instance)")
    p.add_argument(
        "--analyses",
        default="",
        metavar="A,B",
        help="after training, run these analyses on the study's runs (e.g. lesion,landscape,attribute)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--status",
        action="store_true",
        help="list each run of the study directory as done, running (host and pid of its worker) or waiting",
    )
    mode.add_argument(
        "--dry-run",
        action="store_true",
        help="print the grid, the images it trains on and an estimated wall time from a few timed steps of "
        "each model on this machine; trains nothing",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="train the grid with N processes on this machine: this one and N−1 that it starts (each logs to "
        "OUT.workerK.log); each gets an equal share of the cores for torch's threads — one each on the CPU, so a "
        "run's bits do not depend on N — and on a GPU they share the device (default 1)",
    )
    p.add_argument(
        "--timed-steps",
        type=int,
        default=None,
        help="--dry-run: training steps timed per model (default 3 on the CPU, 30 on a GPU, where one "
        "replayed step takes milliseconds)",
    )
    p.add_argument(
        "--status-json",
        metavar="FILE",
        default=None,
        help="with --status: also write the runs' states and the counts to FILE as JSON (a record of how far "
        "a directory got)",
    )
    add_lang_option(p)
    p.set_defaults(func=run_experiment)

    p = subparsers.add_parser(
        "report",
        help="one self-contained HTML report from a study directory",
        description="Build the report from run directories and results.json only (never retrains).",
    )
    p.add_argument("dir", help="a study directory (from `depthlab study`) or a directory of runs")
    p.add_argument("--out", default=None, help="HTML file to write (default: DIR/report.html)")
    p.add_argument("--figures", default=None, metavar="DIR", help="also write every figure as DIR/NAME.png")
    p.add_argument(
        "--markdown",
        action="store_true",
        help="print DIR/results.json as the README quotes it (error table + findings) instead of writing HTML; "
        "under --lang ja|ko, DIR/results.<lang>.json where there is one (report --results), else the study read "
        "back in that language",
    )
    p.add_argument(
        "--answers",
        action="store_true",
        help="with --markdown: print the answers table alone (what the README's first screen quotes)",
    )
    p.add_argument(
        "--results",
        default=None,
        metavar="FILE",
        help="write DIR's results.json in the --lang language to FILE instead of writing HTML: the answers' "
        "questions, key numbers and the paper's claims translated (verdicts keep their English code words, "
        "findings stay English; what README.ja.md and README.ko.md quote)",
    )
    add_lang_option(p)
    p.set_defaults(func=run_report)

    p = subparsers.add_parser(
        "replicate",
        help="does a study's result replicate? match every resolved finding of DIR_A in DIR_B",
        description="Reads DIR_A/results.json and DIR_B/results.json (the same study and preset, ideally on "
        "fresh seeds: `depthlab study … --seed-offset N`) and lists, for every finding A resolved, "
        "whether B agrees, is compatible (the same within a bound vs a difference inside it), did not resolve it, found the opposite, or lacks it; then each question's verdict.",
    )
    p.add_argument("dir_a", metavar="DIR_A", help="the original study directory (or its results.json)")
    p.add_argument("dir_b", metavar="DIR_B", help="the replication (or its results.json)")
    p.add_argument("--out", default=None, metavar="FILE", help="also write the comparison as JSON to FILE")
    p.add_argument(
        "--markdown", action="store_true", help="print the comparison as the README quotes it (FILE's text)"
    )
    p.add_argument(
        "--pooled",
        default=None,
        metavar="DIR",
        help="a study directory pooling DIR_A's and DIR_B's runs (`depthlab pool`): each finding and verdict "
        "also shows what all the seeds together say",
    )
    p.set_defaults(func=run_replicate)

    p = subparsers.add_parser(
        "pool",
        help="one study on the seeds of several finished directories of it (no training)",
        description="Copies the runs of finished study directories (the same study, preset and --set values, "
        "disjoint consecutive seeds, e.g. an original and its replication) into OUT, computes the "
        "study-level analyses for all the seeds and writes OUT/results.json: the findings on every seed.",
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="study directories written by `depthlab study`")
    p.add_argument("--out", required=True, metavar="OUT", help="the pooled study directory to write")
    p.set_defaults(func=run_pool)


# ------------------------------------------------------------------------------------------- gradflow
def run_gradflow(args: argparse.Namespace) -> int:
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
    study = get_study(args.study)
    if args.preset not in study.presets:
        raise StudyError(
            f"unknown preset {args.preset!r} for {study.name}; choose from: {', '.join(study.presets)}"
        )
    preset = apply_preset_overrides(study.presets[args.preset], args.overrides)
    if args.seeds is not None:  # what the header prints is the count that runs (the preset's is a default)
        preset = dataclasses.replace(preset, seeds=args.seeds)
    out = Path(args.out or f"runs/{args.study}-{args.preset}")
    console = Console()
    if args.status:
        # Asking what a directory holds needs no settings: it describes itself (study.json). Only a command
        # that trains compares the command line's with the directory's.

        recorded = recorded_settings(out, study)
        preset = recorded.preset if recorded is not None else preset
    with language(args.lang):
        console.print(
            f"[bold]{_(study.title)}[/bold]"
            + _(", preset {name}: {description}").format(name=preset.name, description=preset.describe())
            + "\n"
            + _("study directory: {out}").format(out=out)
        )
    if args.status:
        return print_status(console, study, preset, out, args)
    if args.dry_run:
        return print_plan(console, study, preset, args)
    analyses = [a.strip() for a in args.analyses.split(",") if a.strip()]
    helpers = start_workers(args, out, console) if args.workers > 1 else []
    try:
        result = run_study(
            study,
            preset,
            out,
            seeds=args.seeds,
            seed_offset=args.seed_offset,
            device=args.device,
            data_dir=args.data_dir,
            overrides=args.overrides,
            progress=lambda line: console.print(line, highlight=False),
            executor=args.executor,
            address=args.address,
            analyses=analyses,
        )
    except BaseException:  # this worker stopped (an error, Ctrl-C): stop the ones it started, then report
        for process, _w in helpers:
            process.terminate()
        raise
    with language(args.lang) as lang:  # results.json stays English; what is printed follows --lang
        if lang != "en":
            result = read_study(out)
        print_answers(console, result)
        for section in study.sections(result)[:1]:
            for t in section.tables:
                table = Table(title=t.title)
                for col in t.header:
                    table.add_column(col, justify="right")
                for row in t.rows:
                    table.add_row(*row)
                console.print(table)
        if (
            lang != "en" and result.findings
        ):  # the findings' sentences are English in this version: say so once
            console.print(_("The findings below are in English in this version."), highlight=False)
        for question, findings in group_findings(result.answers, result.findings):
            console.print(f"[bold]{question}[/bold]", highlight=False)
            for finding in findings:
                console.print(f"  • {finding.text}", highlight=False)
        console.print(
            _("wrote {results}; next: depthlab report {out}").format(results=out / "results.json", out=out)
        )
        return wait_workers(helpers, console)


def worker_threads(workers: int, device: str, cores: int | None = None) -> int:
    """torch threads for each of ``workers`` processes: one on the CPU (a run's bits depend on its thread
    count, so every run of a study is single-threaded however the grid is split), an equal share of the
    cores (at least one) when the work is on a GPU."""
    if workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}")
    if select_device(device).type == "cpu":
        return 1
    return max(1, (cores or os.cpu_count() or 1) // workers)


def start_workers(args: argparse.Namespace, out: Path, console: Console) -> list[tuple[Any, Path]]:
    """Start ``args.workers − 1`` more processes of this study command on the same directory (the engine's
    run locks split the grid between them), each logging to ``OUT.workerK.log``; set this process's threads."""
    threads = worker_threads(args.workers, args.device)
    torch.set_num_threads(threads)
    argv = [sys.executable, "-m", "depthlab", "study", args.study, "--preset", args.preset, "--out", str(out),
            "--seed-offset", str(args.seed_offset), "--device", args.device]  # fmt: skip
    if args.seeds is not None:
        argv += ["--seeds", str(args.seeds)]
    if args.data_dir is not None:
        argv += ["--data-dir", args.data_dir]
    for item in args.overrides:
        argv.append(f"--set={item}")
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    out.parent.mkdir(parents=True, exist_ok=True)
    helpers = []
    for k in range(2, args.workers + 1):
        log = out.parent / f"{out.name}.worker{k}.log"
        with log.open("w") as handle:
            helpers.append((subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env), log))
    console.print(f"{args.workers} workers on {args.device}, {threads} torch thread(s) each; the others log to "
                  f"{out.parent / (out.name + '.worker*.log')}", highlight=False)  # fmt: skip
    return helpers


def wait_workers(helpers: list[tuple[Any, Path]], console: Console) -> int:
    """Wait for the started workers; 1 (naming their logs) if any failed."""
    failed = [log for process, log in helpers if process.wait() != 0]
    if failed:
        console.print(f"{len(failed)} worker(s) failed: see {', '.join(map(str, failed))}", highlight=False)
        return 1
    return 0


def add_lang_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--lang",
        choices=LANGUAGES,
        default=None,
        help="the reader's language for answers, figures and headings (default: from the locale, LANG…; "
        "else en). results.json stays English",
    )


def print_answers(console: Console, result: Any) -> None:
    """The study's questions, each with its verdict, key numbers and the paper's claim: first, on purpose."""
    if not result.answers:
        return
    table = Table(title=_("answers"), show_lines=True)
    for col in (_("question"), _("verdict"), _("key numbers (95% CI)"), _("the paper")):
        table.add_column(col, overflow="fold")
    for a in result.answers:
        table.add_row(a.question, _(a.verdict), a.numbers, a.paper)
    console.print(table)


def print_status(console: Console, study: Any, preset: Any, out: Path, args: argparse.Namespace) -> int:
    """``--status``: one line per run — done, running (its worker and heartbeat) or waiting — then the counts.
    Plain lines, not a table: a worker's description is long and a table would wrap it."""

    states = study_status(study, preset, out, seeds=args.seeds, seed_offset=args.seed_offset,
                          data_dir=args.data_dir)  # fmt: skip
    width = max(len(s.name) for s in states)
    now = time.time()
    for s in states:
        state = f"done ({s.status})" if s.state == "done" else s.state
        where = f"step {s.step}/{s.total_steps}" + (f", checkpoint at {s.checkpoint}" if s.checkpoint else "")
        worker = ""
        if s.state == "running":
            worker = (
                f"  by {s.holder.describe()}, heartbeat {now - s.holder.heartbeat:.0f} s ago"
                if s.holder is not None
                else "  by a process that left no record"
            )
        print(f"{s.name:<{width}}  {state:<16}  {where}{worker}")
    counts = {k: sum(s.state == k for s in states) for k in ("done", "running", "waiting")}
    results = out / "results.json"
    written = ""
    if results.is_file():
        written = f"; results.json written {time.strftime('%Y-%m-%d %H:%M', time.localtime(results.stat().st_mtime))}"
    print(", ".join(f"{n} {k}" for k, n in counts.items()) + written)
    if args.status_json:
        finished = sum(s.state == "done" and s.status == "completed" for s in states)
        write_json(Path(args.status_json), {
            "study": study.name, "preset": preset.name, "directory": str(out),
            "seeds": sorted({int(s.name.rsplit("-s", 1)[1]) for s in states if "-s" in s.name}),
            "runs": [{"name": s.name, "state": s.state, "status": s.status, "step": s.step,
                      "total_steps": s.total_steps} for s in states],
            "counts": counts, "completed": finished, "total": len(states),
        })  # fmt: skip
    return 0


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def print_plan(console: Console, study: Any, preset: Any, args: argparse.Namespace) -> int:
    """``--dry-run``: the grid, the images it trains on, and the estimated time of its training steps."""

    timed = args.timed_steps
    if timed is None:
        timed = 30 if select_device(args.device).type == "cuda" else 3
    plan = plan_study(study, preset, seeds=args.seeds, seed_offset=args.seed_offset, device=args.device,
                      data_dir=args.data_dir, timed=timed)  # fmt: skip
    table = Table(title=f"the grid: {len(plan.runs)} runs")
    for col in ("run", "model", "steps", "batch", "images"):
        table.add_column(col, justify="left" if col in ("run", "model") else "right")
    for r in plan.runs:
        table.add_row(r.name, r.variant, f"{r.steps:,}", str(r.batch_size), f"{r.images:,}")
    console.print(table)
    console.print(
        f"{len(plan.runs)} runs, {plan.total_steps:,} training steps, {plan.total_images:,} training images "
        f"(steps × batch, summed over runs)",
        highlight=False,
    )
    timing = Table(title="measured training step (this machine)")
    for col in ("model", "ms / step", "images / s", "device", "precision", "threads"):
        timing.add_column(col, justify="left" if col == "model" else "right")
    for t in plan.timings.values():
        timing.add_row(t.variant, f"{1000 * t.seconds_per_step:.1f}", f"{t.batch_size / t.seconds_per_step:,.0f}",
                       t.device, t.precision, str(t.threads))  # fmt: skip
    console.print(timing)
    first = next(iter(plan.timings.values()))
    console.print(
        f"estimated wall time of the training steps: ~{_duration(plan.estimated_seconds())} — an estimate "
        f"from {first.timed} timed steps of each model after {first.warmup} warm-up, in one process here; "
        f"evaluations, probes and checkpoints come on top, and other work on the machine slows it down",
        highlight=False,
    )
    return 0


# --------------------------------------------------------------------------------------------- report
def run_report(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    lang = resolve_language(args.lang)
    if args.results:  # results.json, read back in the reader's language (DIR/results.json stays English)
        with language(lang):
            record = {"language": lang, **results_json(read_study(directory))}
        write_json(Path(args.results), record)
        print(f"{args.results}: {len(record['answers'])} answers ({lang})")
        return 0
    if args.markdown:
        render = answers_markdown if args.answers else results_markdown
        if lang != "en":  # results.json is English: results.<lang>.json (report --results), else the study
            translated = directory / f"results.{lang}.json"  # read back in the reader's language
            with language(lang):
                print(
                    render(
                        read_json(translated) if translated.is_file() else results_json(read_study(directory))
                    )
                )
            return 0
        path = directory / "results.json"
        if not path.is_file():
            raise StudyError(f"{path} does not exist: run the study (depthlab study …) first")
        print(render(read_json(path)))
        return 0
    out = Path(args.out) if args.out else directory / "report.html"
    report = build_report(directory, lang=lang)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.html, encoding="utf-8")
    if args.figures:
        export_figures(report, args.figures)
    with language(lang):
        print(_("report: {path} ({n} runs, {size:.0f} KiB)").format(path=out.resolve(), n=report.num_runs,
                                                                    size=len(report.html) / 1024))  # fmt: skip
    return 0


# ------------------------------------------------------------------------------------------ replicate
def run_replicate(args: argparse.Namespace) -> int:
    rep = replicate(args.dir_a, args.dir_b, pooled=args.pooled)
    record = rep.to_dict()
    if args.out:
        write_json(Path(args.out), record)
    if args.markdown:
        print(replication_markdown(record))
        return 0
    console = Console()
    fresh = "fresh seeds" if rep.fresh else "[bold red]overlapping seeds[/bold red]"
    console.print(
        f"[bold]{rep.study}[/bold] ({rep.preset}): {rep.a} (seeds {list(rep.seeds_a)}) vs {rep.b} "
        f"(seeds {list(rep.seeds_b)}), {fresh}"
    )
    if rep.answers:
        table = Table(title="questions")
        pooled = ("pooled estimate (shown, not counted)",) if rep.pooled else ()
        for col in ("question", "A", "B", "status", *pooled):
            table.add_column(col, overflow="fold")
        for a in rep.answers:
            table.add_row(a.question, a.verdict_a, a.verdict_b or "—", a.status,
                          *((a.numbers_pooled or "—",) if rep.pooled else ()))  # fmt: skip
        console.print(table)
    table = Table(title="findings A resolved")
    pooled = (f"pooled estimate (seeds {list(rep.seeds_pooled)})",) if rep.pooled else ()
    for col in ("finding (A)", "A", "B", "status", *pooled):
        table.add_column(col, overflow="fold")
    for f in rep.findings:
        if f.status != "unresolved in A":
            table.add_row(f.text_a, f.outcome_a or "—", f.outcome_b or "—", f.status,
                          *((f.outcome_pooled or "—",) if rep.pooled else ()))  # fmt: skip
    console.print(table)
    counts = ", ".join(f"{n} {s}" for s, n in rep.counts().items() if n)
    verdict = "replicated" if rep.replicated else "not replicated"
    console.print(f"{verdict}: {counts}", highlight=False)
    return 0


# ----------------------------------------------------------------------------------------------- pool
def run_pool(args: argparse.Namespace) -> int:
    console = Console()
    result = pool_studies(args.dirs, args.out, progress=lambda line: console.print(line, highlight=False))
    print_answers(console, result)
    seeds = sorted({r.seed for r in result.runs})
    console.print(
        f"pooled {len(result.runs)} runs on seeds {seeds} into {args.out}; wrote {Path(args.out) / 'results.json'}",
        highlight=False,
    )
    return 0
