"""Where a study stands and what it would cost, without training: :func:`study_status` (``depthlab study
… --status``: every run of the grid done, running or waiting, read without writing) and :func:`plan_study`
(``--dry-run``: the grid, the images it trains on, and the seconds its training steps take on this machine).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depthlab.data import make_loader
from depthlab.runtime import select_device
from depthlab.studies.declare import Recipe, Study, StudyError, seed_list
from depthlab.studies.results import FINISHED, recorded_settings, run_status
from depthlab.train.optim import build_optimizer
from depthlab.train.precision import resolve_precision
from depthlab.train.rundir import last_good_step
from depthlab.train.runlock import lock_status
from depthlab.train.setup import build_model, prepare_bundle
from depthlab.train.step import GRAPH_WARMUP, TrainStep

__all__ = ["PlannedRun", "RunState", "StepTiming", "StudyPlan", "plan_study", "study_status"]


@dataclass(frozen=True)
class RunState:
    """Where one run of a study stands (:func:`study_status`).

    ``state``: ``done`` (finished: completed or diverged), ``running`` (a live process holds its lock;
    ``holder`` names it, ``None`` for a holder that left no record) or ``waiting`` (nobody holds it: a worker
    will take it). ``status``: its summary.json status (``missing`` before it starts). ``step``: the step of
    its last metrics row; ``checkpoint``: the step of its last good checkpoint (``None``: none).
    """

    name: str
    state: str
    status: str
    step: int
    total_steps: int
    checkpoint: int | None
    holder: Any = None  # depthlab.train.runlock.Holder


def study_status(
    study: Study,
    preset: Recipe,
    out_dir: str | Path,
    *,
    seeds: int | None = None,
    seed_offset: int = 0,
    data_dir: str | None = None,
) -> list[RunState]:
    """Every run of the grid as done, running (by whom) or waiting, read from ``out_dir`` without writing
    to it. The grid is the one the directory was made with, read from its study.json (the preset, ``--set``
    values and seeds); ``preset``, ``seeds`` and ``seed_offset`` only describe a directory that has none yet
    (nothing started). Asking needs no settings: only a command that trains compares them with the
    directory's. A directory holding another study is a :class:`StudyError`."""

    root = Path(out_dir)
    recorded = recorded_settings(root, study)
    if recorded is not None:
        preset, seeds, seed_offset = recorded.preset, recorded.seeds, recorded.seed_offset
    seeds = preset.seeds if seeds is None else seeds
    states = []
    for spec in study.grid(preset, seed_list(seeds, seed_offset), "auto", data_dir):
        run_dir = root / "runs" / spec.name
        status = run_status(run_dir)
        holder, state = None, "done"
        if status not in FINISHED:
            lock = lock_status(run_dir)
            state, holder = ("running", lock.holder) if lock.held else ("waiting", None)
        states.append(RunState(spec.name, state, status, _last_step(run_dir), int(spec.config.steps),
                               last_good_step(run_dir), holder))  # fmt: skip
    return states


def _last_step(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return 0
    for line in reversed(path.read_text().splitlines()):
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):  # a line torn by a kill mid-write
            continue
    return 0


@dataclass(frozen=True)
class PlannedRun:
    """One run of a dry run: ``variant`` names its model and options (what a step's cost depends on)."""

    name: str
    model: str
    variant: str
    steps: int
    batch_size: int

    @property
    def images(self) -> int:
        """Images the run trains on: steps × batch (an image seen twice counts twice)."""
        return self.steps * self.batch_size


@dataclass(frozen=True)
class StepTiming:
    """A variant's training step as measured on this machine: ``timed`` steps after ``warmup``."""

    variant: str
    batch_size: int
    seconds_per_step: float
    device: str
    precision: str
    threads: int
    timed: int
    warmup: int


@dataclass(frozen=True)
class StudyPlan:
    """What ``depthlab study … --dry-run`` reports: the grid, the images it trains on and an
    estimate of the time its training steps take here (evaluations, probes and checkpoints not included)."""

    runs: tuple[PlannedRun, ...]
    timings: Mapping[str, StepTiming]  # by variant

    @property
    def total_images(self) -> int:
        return sum(r.images for r in self.runs)

    @property
    def total_steps(self) -> int:
        return sum(r.steps for r in self.runs)

    def estimated_seconds(self) -> float:
        """Σ over runs of steps × the measured seconds per step of the run's variant."""
        return sum(r.steps * self.timings[r.variant].seconds_per_step for r in self.runs)


def _variant(config: Any) -> str:
    kwargs = dict(config.model_kwargs)
    return config.model + (f" {json.dumps(kwargs, sort_keys=True)}" if kwargs else "")


def plan_study(
    study: Study,
    preset: Recipe,
    *,
    seeds: int | None = None,
    seed_offset: int = 0,
    device: str = "auto",
    data_dir: str | None = None,
    timed: int = 3,
    warmup: int = 1,
) -> StudyPlan:
    """The grid of ``study`` under ``preset`` and, for each distinct model variant, ``timed`` training
    steps measured after ``warmup`` untimed ones on this machine (its device, the run's precision, this
    process's torch threads). Nothing is written; the dataset is loaded to build the batches."""

    if timed < 1 or warmup < 0:
        raise StudyError(f"timed must be ≥ 1 and warmup ≥ 0, got timed={timed}, warmup={warmup}")
    seeds = preset.seeds if seeds is None else seeds
    specs = study.grid(preset, seed_list(seeds, seed_offset), device, data_dir)
    runs = tuple(
        PlannedRun(s.name, s.config.model, _variant(s.config), int(s.config.steps), int(s.config.batch_size))
        for s in specs
    )
    dev = select_device(device)
    bundles: dict[str, Any] = {}
    timings: dict[str, StepTiming] = {}
    for spec in specs:
        variant = _variant(spec.config)
        if variant in timings:
            continue
        c = spec.config
        data_key = json.dumps([c.data, c.data_dir, c.image_size, c.val_size, c.train_subset, c.normalize])
        if data_key not in bundles:
            bundles[data_key] = prepare_bundle(c)
        timings[variant] = _time_steps(c, bundles[data_key], dev, variant, timed, warmup)
    return StudyPlan(runs, timings)


def _time_steps(config: Any, bundle: Any, dev: Any, variant: str, timed: int, warmup: int) -> StepTiming:
    """Seconds per training step of ``config``'s model: the trainer's own step
    (:class:`depthlab.train.step.TrainStep`: forward, loss with auxiliary heads, backward, update; replayed
    from a CUDA graph where the trainer would, after its eager warm-up steps) on one training batch."""
    import time

    import torch

    precision = resolve_precision(config.precision, dev).used
    graph = dev.type == "cuda" and bool(config.cuda_graph) and not bundle.streamed
    if graph:  # time replays, not the eager warm-up and the capture
        warmup = max(warmup, GRAPH_WARMUP + 1)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(config.seed)
        model = build_model(config, bundle).to(device=dev, memory_format=torch.channels_last).train()
        optimizer = build_optimizer(model, config)
        loader = make_loader(bundle, bundle.train, batch_size=config.batch_size, device=dev, train=True,
                             seed=config.seed)  # fmt: skip
        x, y = next(iter(loader.epoch(0)))
        step = TrainStep(model, model, optimizer, precision=precision, device=dev, aux_weight=config.aux_weight,
                         label_smoothing=config.label_smoothing, clip_grad=config.clip_grad, graph=graph)  # fmt: skip
        for _ in range(warmup):
            step(x, y)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        start = time.perf_counter()
        for _ in range(timed):
            step(x, y)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = (time.perf_counter() - start) / timed
    return StepTiming(variant, int(config.batch_size), seconds, str(dev), precision, torch.get_num_threads(),
                      timed, warmup)  # fmt: skip
