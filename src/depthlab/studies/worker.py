"""A worker's part of running a study: train, resume or skip one run of the grid with its probes under the
run's lock (:func:`run_one`), and the local executor, which works through the whole grid (:func:`run_local`).

Several processes may work on one study directory at once (the same command started N times, on one machine
or on machines sharing the file system): each run is locked by the process training it
(:mod:`depthlab.train.runlock`); a local worker trains the runs nobody holds and then waits for the others
(taking over any whose holder died). Ctrl-C stops after the current run's checkpoint; running the same
command again resumes. The Ray executor (:mod:`.executors`) calls :func:`run_one` in each of its tasks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from depthlab.data import make_loader
from depthlab.io import read_json, write_json
from depthlab.present.format import pct
from depthlab.runtime import seed_everything, select_device
from depthlab.studies.declare import ProbeContext, Progress, Recipe, RunSpec, Study, StudyError
from depthlab.studies.results import FINISHED, run_status
from depthlab.train import TrainingDivergedError, load_run_model, train
from depthlab.train.runlock import (
    ThreadShare,
    acquire_run,
    environment_errors,
    lock_status,
    took_over_message,
    try_acquire_run,
)
from depthlab.train.setup import build_model, prepare_bundle, warm_start

__all__ = ["HELD", "diagnostics_batch", "initial_model", "run_local", "run_one"]

HELD = "held"  # run_one(wait=False): another live process is training the run


def initial_model(config: Any, bundle: Any) -> Any:
    """The model a run starts from: seeded and built exactly as :func:`depthlab.train.train` does, so its
    weights equal the run's step-0 weights, warm start included (a test checks this against the trainer)."""

    seed_everything(config.seed)
    model = build_model(config, bundle)
    if config.init_from is not None:
        warm_start(model, config)
    return model


def diagnostics_batch(preset: Recipe, bundle: Any, device: Any) -> tuple[Any, Any]:
    """The first ``diag_batch`` held-out images (validation split, else test): the same for every run."""

    held = bundle.val if bundle.val is not None else bundle.test
    if held is None:
        raise StudyError(f"{preset.data} has neither a validation nor a test split for the diagnostics")
    loader = make_loader(bundle, held, batch_size=min(preset.diag_batch, len(held)), device=device)
    return next(iter(loader.epoch()))


def run_one(
    study: Study,
    preset: Recipe,
    spec: RunSpec,
    root: Path,
    *,
    device: str = "auto",
    say: Progress | None = None,
    tag: str = "",
    wait: bool = True,
    threads: Any = None,
) -> str:
    """Train (or resume, or skip) one run of the grid with its probes, holding the run's lock
    (:mod:`depthlab.train.runlock`); returns its final status.

    ``wait``: when another live process holds the run, wait for it (``True``; a holder that dies is taken
    over) or return :data:`HELD` at once (``False``). ``threads``: a
    :class:`~depthlab.train.runlock.ThreadShare`; once the run's lock is held, torch takes this process's
    share of the machine's cores. An error of the environment (full disk, ...) is raised as an
    :class:`~depthlab.errors.EnvironmentFault` naming the file and the run's last good checkpoint.
    """

    say = say or (lambda line: None)
    tag = tag or spec.name
    run_dir = root / "runs" / spec.name
    held = acquire_run(run_dir, wait=True) if wait else try_acquire_run(run_dir)
    if held is None:
        return HELD
    with held, environment_errors(run_dir, held):
        if held.took_over is not None:
            say(f"{tag}: warning: {took_over_message(run_dir, held.took_over)}")
        if threads is not None:
            import torch

            before = torch.get_num_threads()
            count, trainers, cores = threads.apply()
            if count != before:
                say(
                    f"{tag}: {count} torch thread(s), a share of {cores} cores among {trainers} training processes"
                )
        return _train_one(study, preset, spec, root, device=device, say=say, tag=tag)


def _in_study(spec: RunSpec, root: Path) -> RunSpec:
    """``spec`` with a relative warm-start source (``config.init_from``) resolved inside the study directory:
    a grid names another run of its study as ``runs/NAME`` (it does not know where the directory is)."""
    source = getattr(spec.config, "init_from", None)
    if source is None or Path(source).is_absolute():
        return spec
    return dataclasses.replace(spec, config=dataclasses.replace(spec.config, init_from=str(root / source)))


def _train_one(
    study: Study, preset: Recipe, spec: RunSpec, root: Path, *, device: str, say: Progress, tag: str
) -> str:
    """The body of :func:`run_one`, under the run's lock."""
    import torch

    spec = _in_study(spec, root)

    say = say or (lambda line: None)
    tag = tag or spec.name
    run_dir = root / "runs" / spec.name
    diag_path = run_dir / "diagnostics.json"
    diags: dict[str, Any] = read_json(diag_path) if diag_path.is_file() else {}
    status = run_status(run_dir)
    dev = select_device(device)
    bundle = images = labels = None

    def batch() -> tuple[Any, Any, Any]:
        nonlocal bundle, images, labels
        if bundle is None:
            bundle = prepare_bundle(spec.config)
            images, labels = diagnostics_batch(preset, bundle, dev)
        return bundle, images, labels

    study_probe = study.probe

    def probe(model: Any, moment: str, step: int) -> dict[str, Any]:
        # Only called when study_probe is set; the RNG is forked so probing never changes the run.
        b, x, y = batch()
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            return study_probe(ProbeContext(model, x, y, moment, step, spec, b))  # type: ignore[misc]

    if status in FINISHED:
        say(f"{tag}: already {status}, skipped")
    else:
        if study_probe is not None and "init" not in diags:
            b, _, _ = batch()
            diags["init"] = probe(initial_model(spec.config, b).to(dev), "init", 0)
            write_json(diag_path, diags)
        resume = (run_dir / "checkpoints" / "last.json").is_file()
        if not resume:
            _clear_unstarted(run_dir)

        def monitor(model: Any, step: int) -> None:
            diags.setdefault("steps", {})[str(step)] = probe(model, "step", step)
            write_json(diag_path, diags)

        say(f"{tag}: {'resuming' if resume else 'training'} for {spec.config.steps} iterations")
        try:
            summary = train(
                spec.config,
                run_dir,
                resume=resume,
                callback=_reporter(say, tag, spec.config),
                monitor=monitor if study_probe is not None else None,
            )
        except TrainingDivergedError as exc:
            say(f"{tag}: {exc}")
            return "diverged"
        say(f"{tag}: {summary.status} at step {summary.step} after {summary.wall_time_s:.0f} s")
        if summary.status == "interrupted":
            return "interrupted"
    if study_probe is not None and run_status(run_dir) == "completed" and "end" not in diags:
        trained = load_run_model(run_dir, "last").to(dev)
        diags["end"] = probe(trained, "end", int(spec.config.steps))
        write_json(diag_path, diags)
    return run_status(run_dir)


def _clear_unstarted(run_dir: Path) -> None:
    """A run directory without a checkpoint (killed in its first interval) is started again: remove the
    files the trainer wrote (and only those), keep diagnostics.json."""
    for name in ("config.json", "environment.json", "metrics.jsonl", "summary.json"):
        (run_dir / name).unlink(missing_ok=True)


def _reporter(say: Progress, tag: str, config: Any) -> Callable[[Any], None]:
    every = max(config.log_every, config.steps // 4 // config.log_every * config.log_every)

    def on_event(event: Any) -> None:
        if event.kind == "train" and (event.step % every == 0 or event.step == event.total_steps):
            say(
                f"{tag}: step {event.step}/{event.total_steps}, running training error {pct(event.values['error'])}"
            )
        elif event.kind == "eval" and event.step == event.total_steps:
            say(f"{tag}: step {event.step}, {event.values['split']} error {pct(event.values['error'])}")

    return on_event


WAIT_POLL_S = 1.0  # how often a worker whose remaining runs are all held tries them again


def run_local(study: Study, preset: Recipe, specs: Sequence[RunSpec], root: Path, *, device: str,
               say: Progress) -> str:  # fmt: skip
    """The local executor, safe to run as several workers on one directory: train, in grid order, every run
    nobody holds, skipping held ones; then come back for those, polling until each is finished — by its
    holder, or by this worker when the holder died (its lock is taken over and the run resumes). Each run
    takes this process's share of the machine's cores. Returns ``"interrupted"`` (Ctrl-C) or ``"done"``."""
    import torch

    threads = torch.get_num_threads()
    share = ThreadShare(threads)
    try:
        return _work_through(study, preset, specs, root, device=device, say=say, share=share)
    finally:
        torch.set_num_threads(threads)  # the caller's setting, whatever the shares were


def _work_through(study: Study, preset: Recipe, specs: Sequence[RunSpec], root: Path, *, device: str,
                  say: Progress, share: Any) -> str:  # fmt: skip
    import time

    tags = {s.name: f"[{k}/{len(specs)}] {s.name}" for k, s in enumerate(specs, start=1)}
    pending, told = list(specs), False
    while True:
        held = []
        for spec in pending:
            status = run_one(study, preset, spec, root, device=device, say=say, tag=tags[spec.name],
                             wait=False, threads=share)  # fmt: skip
            if status == "interrupted":
                say("interrupted: run the same command again to resume")
                return "interrupted"
            if status == HELD:
                held.append(spec)
                if not told:
                    holder = lock_status(root / "runs" / spec.name).holder
                    who = holder.describe() if holder is not None else "another process"
                    say(f"{tags[spec.name]}: being trained by {who}; skipped for now")
        if not held:
            return "done"
        if not told:
            say(
                f"waiting for {len(held)} run(s) that other workers are training: {', '.join(s.name for s in held)}"
            )
            told = True
        time.sleep(WAIT_POLL_S)
        pending = held
