"""Why residual networks train: the four analyses on run directories, and the report section they feed.

Run-level entry points (one per analysis; each loads the run's model and data, computes, and writes
``OUT/<name>.json`` + ``OUT/<name>.png``, where ``OUT`` = ``RUN_DIR/analysis`` unless ``out`` is given):

* :func:`run_lesion` → ``lesion.json`` / ``lesion.png`` (:mod:`depthlab.analysis.lesion`)
* :func:`run_paths` → ``paths.json`` / ``paths.png`` (:mod:`depthlab.analysis.paths`; residual nets only)
* :func:`run_landscape` → ``landscape.json`` / ``landscape.png`` (:mod:`depthlab.analysis.landscape`)
* :func:`run_attribution` → ``attribution.json`` / ``attribution.png`` (maps) / ``attribution-sanity.png``
  (:mod:`depthlab.analysis.attribution`)

Each is *idempotent*: the JSON stores a fingerprint (analysis, options, model, checkpoint step and weights
file); a call whose fingerprint matches the stored one returns the stored result without computing
(``force=True`` recomputes). Each is *resumable*: finished work items go to ``OUT/<name>.partial.json``
(atomic rewrites) while it runs, and a call after a kill computes only what is missing; the partial file is
deleted when the result is written.

Data: the model of the run's ``last`` checkpoint (or ``best``), in eval mode, on the CPU (or ``device``: every
entry point takes one; ``auto`` or ``cuda`` for a GPU), on a fixed subset of the run's *test* split — the *training* split for the loss landscape, the loss Li et al. plot
—: ``images`` images drawn by a permutation seeded with ``seed`` (the same images for every analysis and
every run of a dataset, on any device: the subset and every random draw are made on the CPU), normalised
with the run's training mean/std, on the model's device. The device is not part of a result's fingerprint: a
result computed on the GPU is reused on the CPU (they differ only by rounding).

:func:`why_section` turns the JSON files of several runs into the report's "Why it works" section: figures
(title, caption, PNG bytes) and sentences. It never computes anything.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from depthlab.analysis.attribution import (
    GRANULARITIES,
    METHODS,
    AttributionResult,
    attribute_images,
    display_maps,
)
from depthlab.analysis.evaluation import AnalysisError, PartialResults, Progress
from depthlab.analysis.landscape import LandscapeConfig, LandscapeResult, loss_landscape
from depthlab.analysis.lesion import LesionResult, lesion_study
from depthlab.analysis.paths import PathResult, path_study, residual_blocks
from depthlab.data import load_data, make_loader
from depthlab.errors import DepthlabError
from depthlab.i18n import N_, language
from depthlab.io import read_json, write_bytes, write_json
from depthlab.models.pretrained import imagenet_categories, pretrained_preprocessing
from depthlab.present.format import number
from depthlab.present.plots import png_bytes
from depthlab.registry import create_model
from depthlab.runtime import select_device
from depthlab.stats import Difference, Estimate, welch
from depthlab.studies import why_figures as wf
from depthlab.studies.why_figures import (
    plot_attributions,
    plot_landscape,
    plot_lesion,
    plot_paths,
    plot_sanity,
)
from depthlab.train.checkpoint import CheckpointError, load_pointer
from depthlab.train.rundir import load_run, load_run_model
from depthlab.train.setup import prepare_bundle

__all__ = [
    "ANALYSES",
    "DEFAULTS",
    "ImageReadError",
    "EvalSet",
    "RunModel",
    "open_run",
    "resolve_device",
    "load_eval_set",
    "load_image",
    "run_lesion",
    "run_paths",
    "run_landscape",
    "run_attribution",
    "attribute_files",
    "run_analyses",
    "read_result",
    "why_section",
    "landscape_comparisons",
    "landscape_comparison",
]

ANALYSES = ("lesion", "paths", "landscape", "attribution")
ANALYSIS_DIR = "analysis"
# The title of a run's attribution figure. why_section's titles are English (the report names the exported PNG
# after them) and marked for the catalogues: the report shows _(title), or _(ATTRIBUTIONS) for this one.
ATTRIBUTIONS = N_("Attributions: {label}")
ALIASES = {"attribute": "attribution"}  # the command's name
# Default numbers of test images per analysis (chosen for a 2-core CPU; see docs/design.md for timings).
DEFAULTS: dict[str, int] = {"lesion": 1000, "paths": 1000, "landscape": 300, "attribution": 8}
RESULT_TYPES: dict[str, Any] = {
    "lesion": LesionResult,
    "paths": PathResult,
    "landscape": LandscapeResult,
    "attribution": AttributionResult,
}


class ImageReadError(DepthlabError, ValueError):
    """An image file that cannot be opened or decoded."""


# ---------------------------------------------------------------------------------------------- inputs
@dataclass(frozen=True, eq=False)
class RunModel:
    """A run's model (eval mode) and what identifies it."""

    run_dir: Path
    model: nn.Module
    name: str  # registered model name
    checkpoint: str
    step: int
    weights: str  # checkpoint file name
    data: dict[str, Any]  # summary.json "data": name, num_classes, in_channels, image_size, mean, std, ...
    config: Any  # TrainConfig

    @property
    def device(self) -> torch.device:
        """Where the model lives (the analyses put their images there)."""
        return next(self.model.parameters()).device

    @property
    def residual(self) -> bool:
        return any(
            bool(getattr(type(m), "residual", False)) and getattr(m, "shortcut", None) is not None
            for m in self.model.modules()
        )

    def source(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir),
            "model": self.name,
            "residual": self.residual,
            "checkpoint": self.checkpoint,
            "step": self.step,
            "data": self.data.get("name"),
        }


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a torch.device: a torch.device as it is; ``auto``/``cpu``/``cuda`` as
    :func:`depthlab.runtime.select_device` chooses (an unknown name or ``cuda`` without a GPU is a one-line
    error naming the choices)."""

    return device if isinstance(device, torch.device) else select_device(device)


def open_run(
    run_dir: str | os.PathLike[str], checkpoint: str = "last", device: str | torch.device = "cpu"
) -> RunModel:
    """The run's model with the ``checkpoint`` weights, on ``device`` (:func:`resolve_device`). One-line
    errors (``FileNotFoundError`` / ``CheckpointError``) for a folder that is not a run directory or has no
    such checkpoint."""

    folder = Path(run_dir)
    device = resolve_device(device)  # a bad name fails before anything is read
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist (expected a run directory from `depthlab train`)")
    config, summary = load_run(folder)
    model = load_run_model(folder, checkpoint)  # refuses runs without checkpoints or summary
    pointer = load_pointer(folder / "checkpoints", checkpoint)
    model = model.to(device=device, memory_format=torch.channels_last).eval()
    if pointer is None or summary is None:  # load_run_model has refused both cases already
        raise CheckpointError(f"{folder} has no summary.json or no {checkpoint!r} checkpoint")
    return RunModel(
        folder, model, config.model, checkpoint, pointer.step, pointer.weights, dict(summary.data), config
    )


@dataclass(frozen=True, eq=False)
class EvalSet:
    """Normalised images (N, C, H, W, channels-last) and labels (N,) of a fixed test subset."""

    images: torch.Tensor
    labels: torch.Tensor
    indices: tuple[int, ...]  # positions in the test split
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]


@functools.lru_cache(maxsize=2)
def _bundle(name: str, data_dir: str | None, image_size: int, strict: bool) -> Any:
    # val_size=0: the test split does not depend on the validation split; only the test split is used.
    return load_data(name, data_dir=data_dir, val_size=0, image_size=image_size, strict=strict)


SPLITS = ("test", "train")


def load_eval_set(
    run: RunModel,
    images: int | None,
    seed: int = 0,
    device: str | torch.device | None = None,
    split: str = "test",
) -> EvalSet:
    """``images`` images of the run's ``split`` (all with ``None``), chosen by a permutation seeded with
    ``seed`` and kept in split order, without augmentation, on ``device`` (default: the model's).
    ``"train"`` is the split the run trained on (its validation images and ``train_subset`` taken out, as in
    training)."""

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if split == "train":
        bundle = prepare_bundle(run.config)
        test = bundle.train
    else:
        bundle = _bundle(
            run.data["name"], run.config.data_dir, int(run.data["image_size"]), bool(run.config.strict_data)
        )
        test = bundle.test
    if test is None or len(test) == 0:
        raise AnalysisError(
            f"{run.data['name']} has no {split} split (an image folder needs a {split}/ subfolder)"
        )
    total = len(test)
    if images is not None and (not isinstance(images, int) or images < 1):
        raise ValueError(f"the number of images must be a positive integer, got {images!r}")
    count = total if images is None else min(images, total)
    # Chosen on the CPU: the same images whatever device the model is on.
    perm = torch.randperm(total, generator=torch.Generator(device="cpu").manual_seed(seed), device="cpu")
    chosen = perm[:count].sort().values
    device = run.device if device is None else resolve_device(device)
    stats = dataclasses.replace(bundle, mean=tuple(run.data["mean"]), std=tuple(run.data["std"]))
    loader = make_loader(stats, test.subset(chosen), batch_size=500, device=device)
    xs, ys = [], []
    for x, y in loader.epoch(0):
        xs.append(x)
        ys.append(y)
    x = torch.cat(xs).contiguous(memory_format=torch.channels_last)
    return EvalSet(x, torch.cat(ys), tuple(chosen.tolist()), tuple(bundle.classes), stats.mean, stats.std)


def load_image(
    path: str | os.PathLike[str],
    *,
    size: int,
    channels: int,
    mean: Sequence[float],
    std: Sequence[float],
    resize: int | None = None,
) -> torch.Tensor:
    """One image file as a normalised (1, C, size, size) tensor: shorter side resized to ``resize`` (default
    ``size``; bilinear, antialiased), centre crop, [0, 1], (x − mean)/std. ``ImageReadError`` if unreadable."""
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms import functional as TF

    try:
        with Image.open(path) as im:
            im = im.convert("RGB" if channels == 3 else "L")
            im.load()
    except (OSError, ValueError, UnidentifiedImageError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ImageReadError(f"cannot read image {path}: {reason}") from None
    if channels not in (1, 3):
        raise ValueError(f"images can be explained for 1- or 3-channel models, not {channels}")
    im = TF.center_crop(TF.resize(im, resize or size, antialias=True), [size, size])
    x = TF.normalize(TF.to_tensor(im), list(mean), list(std))
    return x[None].contiguous(memory_format=torch.channels_last)


# ------------------------------------------------------------------------------------------ the driver
def _out_dir(run_dir: Path, out: str | os.PathLike[str] | None) -> Path:
    return Path(out) if out is not None else run_dir / ANALYSIS_DIR


def read_result(folder: str | os.PathLike[str], name: str) -> Any | None:
    """The stored result ``FOLDER/<name>.json`` (FOLDER = a run's analysis directory), or ``None``."""
    if name not in RESULT_TYPES:
        raise ValueError(f"unknown analysis {name!r}; choose from: {', '.join(ANALYSES)}")
    path = Path(folder) / f"{name}.json"
    if not path.is_file():
        return None
    try:
        return RESULT_TYPES[name].from_dict(read_json(path))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise AnalysisError(f"{path} is not a depthlab {name} result ({exc})") from None


def _run(
    name: str,
    run: RunModel,
    options: dict[str, Any],
    out: Path,
    force: bool,
    compute: Callable[[PartialResults], Any],
    draw: Callable[[Any], None],
) -> Any:
    # What was computed from what; not where the run lives, so a moved study directory keeps its results.
    identity = {k: v for k, v in run.source().items() if k != "run_dir"}
    fingerprint = json.loads(
        json.dumps({"analysis": name, "options": options, **identity, "weights": run.weights})
    )
    path = out / f"{name}.json"
    if not force and path.is_file():
        try:
            stored = read_json(path)
        except json.JSONDecodeError:
            stored = None
        if isinstance(stored, dict) and stored.get("source", {}).get("fingerprint") == fingerprint:
            return RESULT_TYPES[name].from_dict(stored)
    out.mkdir(parents=True, exist_ok=True)
    partial = PartialResults(out / f"{name}.partial.json", fingerprint)
    result = compute(partial)
    # The device is provenance, not identity: it is stored but not fingerprinted.
    source = {**run.source(), **options, "device": str(run.device), "fingerprint": fingerprint}
    result = dataclasses.replace(result, source=source)
    draw(result)  # figures first: a JSON on disk means the analysis is complete
    write_json(path, result.to_dict())
    partial.discard()
    return result


def _save(fig: Any, path: Path) -> None:
    write_bytes(path, png_bytes(fig))


def run_lesion(
    run_dir: str | os.PathLike[str],
    *,
    images: int = DEFAULTS["lesion"],
    mode: str = "auto",
    draws: int = 3,
    max_swaps: int = 8,
    seed: int = 0,
    checkpoint: str = "last",
    out: str | os.PathLike[str] | None = None,
    force: bool = False,
    progress: Progress | None = None,
    run: RunModel | None = None,
    device: str | torch.device = "cpu",
) -> LesionResult:
    """The lesion study of a run (:func:`depthlab.analysis.lesion.lesion_study`) → ``lesion.json``/``.png``."""

    run = run or open_run(run_dir, checkpoint, device)  # `run` given: its model's device
    options = {"images": images, "mode": mode, "draws": draws, "max_swaps": max_swaps, "seed": seed}
    folder = _out_dir(run.run_dir, out)

    def compute(partial: PartialResults) -> LesionResult:
        data = load_eval_set(run, images, seed)
        return lesion_study(
            run.model, data.images, data.labels, mode=mode, draws=draws, max_swaps=max_swaps, seed=seed,
            progress=progress, partial=partial,
        )  # fmt: skip

    return _run(
        "lesion", run, options, folder, force, compute,
        lambda r: _save(plot_lesion([(run.name, r)]), folder / "lesion.png"),
    )  # fmt: skip


def run_paths(
    run_dir: str | os.PathLike[str],
    *,
    images: int = DEFAULTS["paths"],
    samples: int = 5,
    batch: int = 32,
    mass: float = 0.9,
    seed: int = 0,
    checkpoint: str = "last",
    out: str | os.PathLike[str] | None = None,
    force: bool = False,
    progress: Progress | None = None,
    run: RunModel | None = None,
    device: str | torch.device = "cpu",
) -> PathResult:
    """Path lengths and per-length gradients of a residual run → ``paths.json``/``.png``;
    ``NoResidualBlocksError`` for a plain net."""

    run = run or open_run(run_dir, checkpoint, device)  # `run` given: its model's device
    residual_blocks(run.model)  # refuse a plain net before loading any data
    options = {"images": images, "samples": samples, "batch": batch, "mass": mass, "seed": seed}
    folder = _out_dir(run.run_dir, out)

    def compute(partial: PartialResults) -> PathResult:
        data = load_eval_set(run, images, seed)
        return path_study(
            run.model, data.images, data.labels, samples=samples, batch=batch, mass=mass, seed=seed,
            progress=progress, partial=partial,
        )  # fmt: skip

    return _run(
        "paths", run, options, folder, force, compute,
        lambda r: _save(plot_paths([(run.name, r)]), folder / "paths.png"),
    )  # fmt: skip


def run_landscape(
    run_dir: str | os.PathLike[str],
    *,
    images: int = DEFAULTS["landscape"],
    config: LandscapeConfig | None = None,
    checkpoint: str = "last",
    out: str | os.PathLike[str] | None = None,
    force: bool = False,
    progress: Progress | None = None,
    run: RunModel | None = None,
    device: str | torch.device = "cpu",
) -> LandscapeResult:
    """The loss landscape of a run on a fixed subset of its training split → ``landscape.json``/``.png``
    (resumable point by point)."""

    config = config or LandscapeConfig()
    run = run or open_run(run_dir, checkpoint, device)  # `run` given: its model's device
    options = {"images": images, "split": "train", **dataclasses.asdict(config)}
    folder = _out_dir(run.run_dir, out)

    def compute(partial: PartialResults) -> LandscapeResult:
        # The image subset is seeded by the direction seed too, so one seed fixes the whole landscape.
        data = load_eval_set(run, images, config.seed, split="train")
        return loss_landscape(run.model, data.images, data.labels, config, progress=progress, partial=partial)

    return _run(
        "landscape", run, options, folder, force, compute,
        lambda r: _save(plot_landscape([(run.name, r)]), folder / "landscape.png"),
    )  # fmt: skip


def _draw_attribution(
    label: str,
    result: AttributionResult,
    images: torch.Tensor,
    maps: dict[str, torch.Tensor],
    mean: Sequence[float],
    std: Sequence[float],
    folder: Path,
) -> None:
    shown = images.float().cpu()
    shown = shown * torch.tensor(std, device=shown.device).view(1, -1, 1, 1) + torch.tensor(
        mean, device=shown.device
    ).view(1, -1, 1, 1)
    ready = display_maps({m: v.cpu() for m, v in maps.items()}, tuple(images.shape[-2:]))
    _save(plot_attributions(label, result, shown.clamp(0, 1), ready), folder / "attribution.png")
    if result.sanity:
        _save(plot_sanity([(label, result)]), folder / "attribution-sanity.png")


def run_attribution(
    run_dir: str | os.PathLike[str],
    *,
    images: int = DEFAULTS["attribution"],
    methods: Sequence[str] = METHODS,
    granularity: str = "stage",
    ig_steps: int = 32,
    sanity: bool = True,
    seed: int = 0,
    checkpoint: str = "last",
    out: str | os.PathLike[str] | None = None,
    force: bool = False,
    progress: Progress | None = None,
    run: RunModel | None = None,
    device: str | torch.device = "cpu",
) -> AttributionResult:
    """Grad-CAM, integrated gradients and saliency for the first ``images`` images of the run's fixed test
    subset, and the cascading randomisation check → ``attribution.json``/``.png``/``-sanity.png``."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    run = run or open_run(run_dir, checkpoint, device)  # `run` given: its model's device
    options = {
        "images": images, "methods": list(methods), "granularity": granularity, "ig_steps": ig_steps,
        "sanity": sanity, "seed": seed,
    }  # fmt: skip
    folder = _out_dir(run.run_dir, out)
    drawing: dict[str, Any] = {}  # what compute() leaves for draw(): images, raw maps, mean, std

    def compute(partial: PartialResults) -> AttributionResult:
        data = load_eval_set(run, DEFAULTS["lesion"], seed)  # the lesion/paths subset; its first images
        x, y = data.images[:images], data.labels[:images]
        result, maps = attribute_images(
            run.model, x, labels=y.tolist(), sources=[f"test[{i}]" for i in data.indices[:images]],
            class_names=data.classes, methods=methods, granularity=granularity, ig_steps=ig_steps,
            seed=seed, sanity=sanity, progress=progress, partial=partial,
        )  # fmt: skip
        drawing.update(images=x, maps=maps, mean=data.mean, std=data.std)
        return result

    def draw(result: AttributionResult) -> None:
        _draw_attribution(
            run.name, result, drawing["images"], drawing["maps"], drawing["mean"], drawing["std"], folder
        )

    return _run("attribution", run, options, folder, force, compute, draw)


def attribute_files(
    paths: Sequence[str | os.PathLike[str]],
    *,
    model_name: str | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    checkpoint: str = "last",
    methods: Sequence[str] = METHODS,
    granularity: str = "stage",
    ig_steps: int = 32,
    sanity: bool = True,
    seed: int = 0,
    out: str | os.PathLike[str],
    progress: Progress | None = None,
    device: str | torch.device = "cpu",
) -> AttributionResult:
    """Explain the user's own image files with a run's model (``run_dir``) or a pretrained ImageNet model
    (``model_name``; torchvision's preprocessing and class names) on ``device`` →
    ``OUT/attribution.json``/``.png``."""
    if (model_name is None) == (run_dir is None):
        raise ValueError("attribute_files needs exactly one of model_name (pretrained) or run_dir")
    if not paths:
        raise ValueError("no image given")
    folder = Path(out)
    device = resolve_device(device)
    if model_name is not None:
        prep = pretrained_preprocessing(model_name)
        batch = torch.cat([
            load_image(p, size=prep.crop, channels=3, mean=prep.mean, std=prep.std, resize=prep.resize) for p in paths
        ])  # fmt: skip
        model = create_model(model_name, pretrained=True).eval()
        classes: Sequence[str] = imagenet_categories(model_name)
        mean, std = prep.mean, prep.std
        source: dict[str, Any] = {"model": model_name, "pretrained": True, "weights": "torchvision DEFAULT"}
        label = f"{model_name} (ImageNet)"
    else:
        run = open_run(run_dir, checkpoint, device)  # type: ignore[arg-type]
        size, channels = int(run.data["image_size"]), int(run.data["in_channels"])
        mean, std = tuple(run.data["mean"]), tuple(run.data["std"])
        batch = torch.cat([load_image(p, size=size, channels=channels, mean=mean, std=std) for p in paths])
        model = run.model
        classes = _class_names(run)
        source = run.source()
        label = run.name
    # The files are read on the CPU; model and images meet on ``device``.
    model = model.to(device=device, memory_format=torch.channels_last)
    batch = batch.to(device)
    result, maps = attribute_images(
        model, batch, sources=[str(p) for p in paths], class_names=classes, methods=methods,
        granularity=granularity, ig_steps=ig_steps, seed=seed, sanity=sanity, progress=progress,
    )  # fmt: skip
    result = dataclasses.replace(
        result, source={**source, "images": [str(p) for p in paths], "device": str(device)}
    )
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "attribution.json", result.to_dict())
    _draw_attribution(label, result, batch, maps, mean, std, folder)
    return result


def _class_names(run: RunModel) -> tuple[str, ...]:
    try:
        return tuple(
            _bundle(run.data["name"], run.config.data_dir, int(run.data["image_size"]), False).classes
        )
    except (DepthlabError, OSError, ValueError):
        return tuple(str(i) for i in range(int(run.data["num_classes"])))


def run_analyses(
    run_dir: str | os.PathLike[str],
    names: Sequence[str] = ANALYSES,
    *,
    checkpoint: str = "last",
    options: dict[str, dict[str, Any]] | None = None,
    progress: Callable[[str], Progress | None] | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Run the analyses ``names`` on one run (the study engine's entry point), its model opened once on
    ``device``. ``paths`` is skipped for plain nets (the value is then the reason, a string); ``"attribute"``
    means ``"attribution"``. ``options[name]`` passes keyword arguments to ``run_<name>``; ``progress(name)``
    may return a callback per analysis."""
    names = [ALIASES.get(n, n) for n in names]
    unknown = [n for n in names if n not in ANALYSES]
    if unknown:
        raise ValueError(f"unknown analysis {', '.join(unknown)}; choose from: {', '.join(ANALYSES)}")
    options = options or {}
    run = open_run(run_dir, checkpoint, device)
    functions: dict[str, Callable[..., Any]] = {
        "lesion": run_lesion, "paths": run_paths, "landscape": run_landscape, "attribution": run_attribution,
    }  # fmt: skip
    results: dict[str, Any] = {}
    for n in names:
        if n == "paths" and not run.residual:
            results[n] = "skipped: a plain net has a single path"
            continue
        callback = progress(n) if progress is not None else None
        results[n] = functions[n](run.run_dir, run=run, progress=callback, **options.get(n, {}))
    return results


# ------------------------------------------------------------------------------------------ the report
def _labels(run_dirs: Sequence[Path], models: Sequence[str]) -> list[str]:
    """Model names, made unique with the run directory's name where two runs share a model."""
    out = []
    for d, m in zip(run_dirs, models, strict=True):
        out.append(m if models.count(m) == 1 else f"{m} ({d.name})")
    return out


def _depth(model: str) -> int:
    m = re.search(r"(\d+)$", model)
    return int(m.group(1)) if m else 0


def why_section(
    run_dirs: Sequence[str | os.PathLike[str]],
) -> tuple[list[tuple[str, str, bytes]], list[str]]:
    """The "Why it works" section from the stored results of ``run_dirs`` (``RUN_DIR/analysis/*.json``):
    (figures as (title, caption, PNG bytes), sentences). Runs without results are left out; with no result
    at all both lists are empty. Nothing is computed or trained."""

    found: dict[str, list[tuple[Path, Any]]] = {n: [] for n in ANALYSES}
    for d in map(Path, run_dirs):
        for n in ANALYSES:
            r = read_result(d / ANALYSIS_DIR, n)
            if r is not None:
                found[n].append((d, r))
    figures: list[tuple[str, str, bytes]] = []
    sentences: list[str] = []

    def labelled(items: list[tuple[Path, Any]]) -> list[tuple[str, Path, Any]]:
        # Shallow before deep, plain before residual at one depth (the order of the study's tables).
        items = sorted(
            items, key=lambda dr: (_depth(dr[1].source.get("model", "")), bool(dr[1].source.get("residual")))
        )
        names = _labels([d for d, _ in items], [r.source.get("model", d.name) for d, r in items])
        return [(name, d, r) for name, (d, r) in zip(names, items, strict=True)]

    plots = {
        "lesion": (N_("Lesion study"), wf.lesion_caption, wf.plot_lesion),
        "paths": (N_("Path lengths"), wf.paths_caption, wf.plot_paths),
        "landscape": (N_("Loss landscape"), wf.landscape_caption, wf.plot_landscape),
    }
    for name, (title, caption, plot) in plots.items():
        if not found[name]:
            continue
        items = [(label, r) for label, _, r in labelled(found[name])]
        figures.append((title, caption(items), png_bytes(plot(items))))
        with language("en"):  # findings stay English (issue 25, first version); figures follow the reader's
            for label, r in items:
                sentences += r.findings(label)
            if name == "landscape":
                sentences += landscape_comparison(items)
    if found["attribution"]:
        triples = labelled(found["attribution"])
        for label, d, r in triples:
            png = d / ANALYSIS_DIR / "attribution.png"
            if png.is_file():
                figures.append(
                    (ATTRIBUTIONS.format(label=label), wf.attribution_caption(label, r), png.read_bytes())
                )
        with_sanity = [(label, r) for label, _, r in triples if r.sanity]
        if with_sanity:
            figures.append(
                (
                    N_("Attribution sanity check"),
                    wf.sanity_caption(with_sanity),
                    png_bytes(wf.plot_sanity(with_sanity)),
                )
            )
        with language("en"):
            for label, _d, r in triples:
                sentences += r.findings(label)
    return figures, sentences


@dataclass(frozen=True)
class LandscapeComparison:
    """Plain − residual sharpness at one depth (Welch t): per direction pair when each side is one run,
    per run (the mean over its pairs) when a side has several runs."""

    depth: int
    unit: str  # "direction pairs" or "runs"
    difference: Difference

    @property
    def outcome(self) -> str:
        return self.difference.outcome


def landscape_comparisons(items: Sequence[tuple[str, LandscapeResult]]) -> list[LandscapeComparison]:
    """Plain vs residual at each depth that has both (Li et al.'s comparison). One run on each side: its
    direction pairs are the replicates; more runs on a side: the runs (seeds), each its mean over pairs."""
    by_depth: dict[int, dict[bool, list[tuple[str, LandscapeResult]]]] = {}
    for label, r in items:
        sides = by_depth.setdefault(_depth(r.source.get("model", "")), {})
        sides.setdefault(bool(r.source.get("residual")), []).append((label, r))
    out = []
    for depth, sides in sorted(by_depth.items()):
        if True not in sides or False not in sides:
            continue
        plain, resnet = sides[False], sides[True]
        if len(plain) == 1 and len(resnet) == 1:
            unit = "direction pairs"
            a, b = Estimate(plain[0][1].pair_sharpness), Estimate(resnet[0][1].pair_sharpness)
            a_label, b_label = plain[0][0], resnet[0][0]
        else:
            unit = "runs"
            a, b = (
                Estimate(tuple(r.sharpness for _, r in plain)),
                Estimate(tuple(r.sharpness for _, r in resnet)),
            )
            a_label, b_label = f"plain-{depth}", f"ResNet-{depth}"
        out.append(LandscapeComparison(depth, unit, welch(a_label, a, b_label, b)))
    return out


def landscape_comparison(items: Sequence[tuple[str, LandscapeResult]]) -> list[str]:
    """One sentence per depth with a plain and a residual landscape: which minimum is sharper, with the
    Welch t interval of the difference; "as Li et al. found" only when resolved across runs (seeds)."""
    out = []
    for c in landscape_comparisons(items):
        d = c.difference
        head = (
            f"Depth {c.depth}: sharpness {number(d.a.mean, '.3f')} ({d.a_label}) vs {number(d.b.mean, '.3f')} "
            f"({d.b_label}), {d.a.seeds} vs {d.b.seeds} {c.unit}"
        )
        if d.ci is None:
            # Two causes, said apart: a non-finite sharpness (read back as NaN, unknown), or too few replicates.
            why = "a non-finite sharpness, so" if d.unknown else f"fewer than 2 {c.unit} on a side,"
            out.append(f"{head}: not resolved ({why} no CI).")
            continue
        interval = f"difference {d.difference:+.3f}, 95% CI [{d.ci.low:+.3f}, {d.ci.high:+.3f}], {d.method}"
        if c.unit != "runs" and d.outcome in ("higher", "lower"):
            # One trained net per side: the interval is over random directions of these two nets, which says
            # nothing about plain against residual nets across seeds, so no agreement with the paper is drawn.
            sharper = "shortcut-free" if d.outcome == "higher" else "residual"
            out.append(
                f"{head}: along random directions, the {sharper} net's minimum is the sharper of these two nets "
                f"({interval}); one run per side, so not resolved across seeds."
            )
        elif d.outcome == "higher":
            out.append(
                f"{head}: the shortcut-free net sits in the sharper minimum ({interval}), as Li et al. found for "
                "ResNet-56 vs its plain twin."
            )
        elif d.outcome == "lower":
            out.append(
                f"{head}: the residual net sits in the sharper minimum ({interval}), unlike Li et al.'s "
                "ResNet-56 vs its plain twin."
            )
        else:
            out.append(f"{head}: which minimum is sharper is not resolved ({interval}).")
    return out
