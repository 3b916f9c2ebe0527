"""``depthlab lesion``, ``depthlab paths``, ``depthlab landscape``, ``depthlab attribute``: why residual nets train.

Each analysis command takes run directories (from ``depthlab train`` or a study's ``runs/``) and writes, per
run, ``<name>.json`` + ``<name>.png`` into ``RUN_DIR/analysis/`` (with ``--out DIR`` and one run: into DIR; with
several runs: into ``DIR/<run-name>/``). With several runs it also draws them side by side on one scale into
``<name>-compare.png`` — in ``--out`` if given, else in the runs' common parent directory. Finished results are
reused when asked again with the same options (``--force`` recomputes); an interrupted analysis resumes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from depthlab.analysis.attribution import GRANULARITIES, METHODS
from depthlab.analysis.landscape import LandscapeConfig
from depthlab.analysis.lesion import NoResidualBlocksError
from depthlab.errors import UsageError
from depthlab.present.plots import png_bytes
from depthlab.registry import model_info
from depthlab.runtime import DEVICES
from depthlab.studies import why_figures as wf
from depthlab.studies.why import (
    DEFAULTS,
    attribute_files,
    landscape_comparison,
    run_attribution,
    run_landscape,
    run_lesion,
    run_paths,
)

CHECKPOINTS = ("last", "best")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads", default="auto",
        help="intra-op CPU threads (default auto: 1 when the load average already exceeds the cores, else "
        "torch's default)",
    )  # fmt: skip


def set_threads(value: str) -> int:
    """Apply ``--threads`` and return the thread count used.

    ``auto``: on a machine whose 1-minute load average already exceeds its cores, intra-op threads spend
    their time spin-waiting for one another; one thread is then several times faster (measured here: ResNet-56
    evaluation at load 6.5 on 2 cores, 34 img/s with 2 threads vs 300 with 1). Otherwise torch's default.
    """
    import torch

    if value == "auto":
        try:
            busy = os.getloadavg()[0] >= (os.cpu_count() or 1)
        except OSError:  # no load average on this platform
            busy = False
        if busy:
            torch.set_num_threads(1)
        return torch.get_num_threads()
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"--threads expects 'auto' or a positive integer, got {value!r}") from None
    if n < 1:
        raise ValueError(f"--threads expects 'auto' or a positive integer, got {value!r}")
    torch.set_num_threads(n)
    return n


def _device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device", choices=DEVICES, default="cpu",
        help="where the model and images go (default cpu; auto: CUDA when available)",
    )  # fmt: skip


def _common(p: argparse.ArgumentParser, name: str, images: int, split: str = "test") -> None:
    p.add_argument(
        "run_dirs", nargs="+", metavar="RUN_DIR", help="run directories written by `depthlab train`"
    )
    p.add_argument(
        "--images", type=_positive, default=images,
        help=f"fixed {split} images to evaluate on (default {images}; the same images for every run)",
    )  # fmt: skip
    p.add_argument(
        "--checkpoint", choices=CHECKPOINTS, default="last", help="weights to analyse (default last)"
    )
    p.add_argument("--out", help=f"output directory (default RUN_DIR/analysis/{name}.json|png)")
    p.add_argument("--force", action="store_true", help="recompute even if a matching result exists")
    _threads_option(p)
    _device_option(p)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "lesion",
        help="delete / re-order blocks of trained nets and measure test error (Veit et al. 2016)",
        description="Residual mode deletes one residual block at a time (shortcut kept, branch dropped), "
        "plain mode replaces a shape-preserving block by the identity; then k random blocks at once and k "
        "random swaps within a stage. Test error on fixed images, eval-mode BN.",
    )
    _common(p, "lesion", DEFAULTS["lesion"])
    p.add_argument("--mode", choices=("auto", "residual", "plain"), default="auto",
                   help="auto: residual for nets with residual blocks, else plain")  # fmt: skip
    p.add_argument("--draws", type=_positive, default=3, help="random draws per k (default 3)")
    p.add_argument(
        "--max-swaps", type=int, default=8, help="largest number of swapped pairs (default 8; 0: none)"
    )
    p.add_argument("--seed", type=int, default=0, help="image subset and random draws (default 0)")
    p.set_defaults(func=run_lesion_cmd)

    p = subparsers.add_parser(
        "paths",
        help="path-length distribution and gradient per path length of residual nets (Veit et al. Fig. 6)",
        description="Gradient reaching the first block's input through single paths of each length "
        "(backward through the branch at k random blocks, the shortcut at the others), and the effective "
        "path range carrying most of the total gradient. Residual nets only.",
    )
    _common(p, "paths", DEFAULTS["paths"])
    p.add_argument("--samples", type=_positive, default=5, help="random paths per length (default 5)")
    p.add_argument("--batch", type=_positive, default=32, help="images per sample (default 32)")
    p.add_argument(
        "--mass", type=float, default=0.9, help="share of the gradient in the effective range (0.9)"
    )
    p.add_argument("--seed", type=int, default=0, help="image subset and random paths (default 0)")
    p.set_defaults(func=run_paths_cmd)

    d = LandscapeConfig()
    p = subparsers.add_parser(
        "landscape",
        help="loss landscape along filter-normalised random directions (Li et al. 2018)",
        description="1-D slices and a 2-D grid of the training loss (a fixed subset of the run's training "
        "split, as Li et al. plot) around the trained weights along seeded random filter-normalised direction "
        "pairs (BN and bias parameters not moved), eval-mode BN, and a sharpness with its 95% interval over "
        "the pairs. Resumable: a killed grid continues where it stopped.",
    )
    _common(p, "landscape", DEFAULTS["landscape"], "training")
    p.add_argument(
        "--pairs", type=_positive, default=d.pairs,
        help=f"random direction pairs (default {d.pairs}); pair 0 gets the grid, the others their 1-D slice and the grid points within the radius",
    )  # fmt: skip
    p.add_argument(
        "--grid", type=int, default=d.grid, help=f"2-D grid side, odd; 0 for none (default {d.grid})"
    )
    p.add_argument("--points", type=int, default=d.points, help=f"1-D slice points, odd (default {d.points})")
    p.add_argument(
        "--span", type=float, default=d.span, help=f"coordinates in [-span, span] (default {d.span:g})"
    )
    p.add_argument("--radius", type=float, default=d.radius, help=f"sharpness radius (default {d.radius:g})")
    p.add_argument("--seed", type=int, default=d.seed, help="directions and image subset (default 0)")
    p.set_defaults(func=run_landscape_cmd)

    p = subparsers.add_parser(
        "attribute",
        help="Grad-CAM, integrated gradients, saliency and their randomisation sanity check (Captum)",
        description="Attribution maps for the predicted class of N test images of a run (or your own images, "
        "or a pretrained ImageNet model's prediction on a photo), and Adebayo et al.'s cascading model "
        "randomisation: Spearman correlation of each method's maps before/after re-initialising layers.",
    )
    p.add_argument(
        "target", metavar="RUN_DIR|MODEL", help="a run directory, or a model name with --pretrained"
    )
    p.add_argument("--pretrained", action="store_true", help="MODEL with torchvision's ImageNet weights")
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--images", type=_positive, help=f"test images of the run (default {DEFAULTS['attribution']})"
    )
    source.add_argument("--image", action="append", metavar="PATH", help="an image file (repeatable)")
    p.add_argument(
        "--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}"
    )
    p.add_argument("--granularity", choices=GRANULARITIES, default="stage",
                   help="randomise stage by stage (default) or block by block")  # fmt: skip
    p.add_argument("--ig-steps", type=_positive, default=32, help="integrated-gradients steps (default 32)")
    p.add_argument("--no-sanity", action="store_true", help="skip the randomisation check")
    p.add_argument(
        "--checkpoint", choices=CHECKPOINTS, default="last", help="weights of a run (default last)"
    )
    p.add_argument("--seed", type=int, default=0, help="image subset and re-initialisation (default 0)")
    p.add_argument("--out", help="output directory (default RUN_DIR/analysis, or runs/attribute/MODEL-IMAGE)")
    p.add_argument("--force", action="store_true", help="recompute even if a matching result exists")
    _threads_option(p)
    _device_option(p)
    p.set_defaults(func=run_attribute_cmd)


# -------------------------------------------------------------------------------------------- helpers
@contextmanager
def _progress(description: str) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar on a terminal (None otherwise: logs stay clean)."""
    if not sys.stdout.isatty():
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def _destinations(
    run_dirs: Sequence[str], out: str | None, name: str
) -> tuple[list[Path | None], Path | None]:
    """(per-run output directory or None for RUN_DIR/analysis, comparison PNG path or None)."""
    dirs = [Path(d) for d in run_dirs]
    if len(dirs) == 1:
        return [Path(out) if out else None], None
    per_run: list[Path | None] = [Path(out) / d.resolve().name for d in dirs] if out else [None] * len(dirs)
    if out:
        compare = Path(out) / f"{name}-compare.png"
    else:
        compare = Path(os.path.commonpath([str(d.resolve()) for d in dirs])) / f"{name}-compare.png"
    return per_run, compare


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _report(name: str, folder: Path, result: Any, seconds: float, label: str, reused: bool) -> None:
    cached = " (stored result reused: same options and weights; --force recomputes)" if reused else ""
    print(f"{label}: {name} → {folder / f'{name}.json'} + .png  [{seconds:.1f} s{cached}]")
    for line in result.findings(label):
        print(f"  {line}")


def _compare(name: str, compare: Path | None, items: list[tuple[str, Any]]) -> None:
    if compare is None or len(items) < 2:
        return

    plot = {"lesion": wf.plot_lesion, "paths": wf.plot_paths, "landscape": wf.plot_landscape}[name]
    compare.parent.mkdir(parents=True, exist_ok=True)
    compare.write_bytes(png_bytes(plot(items)))
    print(f"side by side: {compare}")
    if name == "landscape":
        for line in landscape_comparison(items):
            print(f"  {line}")


def _each(name: str, args: argparse.Namespace, call: Callable[..., Any]) -> int:
    set_threads(args.threads)
    per_run, compare = _destinations(args.run_dirs, args.out, name)
    items = []
    for run_dir, out in zip(args.run_dirs, per_run, strict=True):
        folder = out or Path(run_dir) / "analysis"
        before = _mtime(folder / f"{name}.json")
        start = time.perf_counter()
        with _progress(f"{name} {Path(run_dir).name}") as progress:
            try:
                result = call(
                    run_dir, out=out, force=args.force, checkpoint=args.checkpoint, progress=progress,
                    device=args.device,
                )  # fmt: skip
            except NoResidualBlocksError as exc:
                if len(args.run_dirs) == 1:
                    raise
                print(f"{run_dir}: skipped ({exc})")  # e.g. the plain twins among a study's runs
                continue
        label = result.source.get("model", Path(run_dir).name)
        reused = before is not None and before == _mtime(folder / f"{name}.json")
        _report(name, folder, result, time.perf_counter() - start, label, reused)
        items.append((label, result))
    _compare(name, compare, items)
    return 0


# ------------------------------------------------------------------------------------------- commands
def run_lesion_cmd(args: argparse.Namespace) -> int:
    if args.max_swaps < 0:
        raise UsageError(f"--max-swaps must be 0 or more, got {args.max_swaps}")

    def call(run_dir: str, **kw: Any) -> Any:
        return run_lesion(
            run_dir, images=args.images, mode=args.mode, draws=args.draws, max_swaps=args.max_swaps,
            seed=args.seed, **kw,
        )  # fmt: skip

    return _each("lesion", args, call)


def run_paths_cmd(args: argparse.Namespace) -> int:
    if not 0 < args.mass <= 1:
        raise UsageError(f"--mass must be in (0, 1], got {args.mass}")

    def call(run_dir: str, **kw: Any) -> Any:
        return run_paths(
            run_dir, images=args.images, samples=args.samples, batch=args.batch, mass=args.mass, seed=args.seed,
            **kw,
        )  # fmt: skip

    return _each("paths", args, call)


def run_landscape_cmd(args: argparse.Namespace) -> int:
    config = LandscapeConfig(
        span=args.span,
        points=args.points,
        grid=args.grid,
        radius=args.radius,
        seed=args.seed,
        pairs=args.pairs,
    )

    def call(run_dir: str, **kw: Any) -> Any:
        return run_landscape(run_dir, images=args.images, config=config, **kw)

    return _each("landscape", args, call)


def _methods(text: str) -> list[str]:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise UsageError(
            f"--methods: unknown {', '.join(unknown) or '(empty)'}; choose from {', '.join(METHODS)}"
        )
    return methods


def run_attribute_cmd(args: argparse.Namespace) -> int:
    methods = _methods(args.methods)
    set_threads(args.threads)
    target = Path(args.target)
    is_run = target.is_dir()
    if args.pretrained and is_run:
        raise UsageError(f"--pretrained takes a model name, but {args.target} is a directory")
    if not is_run and not args.pretrained:
        model_info(args.target)  # an unknown name gets the registry's "closest names" error
        raise UsageError(
            f"{args.target} is not a run directory; for a model name add --pretrained (ImageNet weights)"
        )
    if args.pretrained and not args.image:
        raise UsageError("--pretrained explains your own photos: add --image PATH")
    common = dict(methods=methods, granularity=args.granularity, ig_steps=args.ig_steps,
                  sanity=not args.no_sanity, seed=args.seed, device=args.device)  # fmt: skip
    start = time.perf_counter()
    with _progress("attribute") as progress:
        if args.image:
            stem = Path(args.image[0]).stem
            if args.pretrained:
                out = Path(args.out) if args.out else Path("runs") / "attribute" / f"{args.target}-{stem}"
                result = attribute_files(
                    args.image, model_name=args.target, out=out, progress=progress, **common
                )
            else:
                out = Path(args.out) if args.out else target / "analysis" / f"image-{stem}"
                result = attribute_files(
                    args.image,
                    run_dir=target,
                    checkpoint=args.checkpoint,
                    out=out,
                    progress=progress,
                    **common,
                )
        else:
            out = Path(args.out) if args.out else target / "analysis"
            images = args.images or DEFAULTS["attribution"]
            result = run_attribution(
                target, images=images, checkpoint=args.checkpoint, out=args.out, force=args.force,
                progress=progress, **common,
            )  # fmt: skip
    label = result.source.get("model", str(args.target))
    print(f"{label}: attribution → {out / 'attribution.json'} + attribution.png"
          f"{' + attribution-sanity.png' if result.sanity else ''}  [{time.perf_counter() - start:.1f} s]")  # fmt: skip
    for rec in result.images:
        truth = f" (true: {rec.label_name})" if rec.label_name is not None else ""
        top = ", ".join(f"{name} {100 * p:.1f}%" for name, p in rec.top5)
        print(f"  {rec.source}{truth}: top-5 {top}")
    for line in result.findings(label):
        print(f"  {line}")
    return 0
