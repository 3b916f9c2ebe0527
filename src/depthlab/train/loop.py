"""The training loop: ``train(config, out_dir, resume=False, callback=None, monitor=None) -> RunSummary``.

Set-up, in order (each a method of ``_Trainer`` called once from its constructor; the functions it calls are
those of :mod:`depthlab.train.setup`):
  1. data — refuse an unknown model or a run directory that cannot be written or resumed, then
     :func:`~depthlab.train.setup.prepare_bundle` (the splits, fixed subsets, normalisation);
  2. model — seeded, :func:`~depthlab.train.setup.build_model` (+ ``config.init``),
     :func:`~depthlab.train.setup.preflight`, the warm start of
     ``config.init_from`` (fresh runs only), the device and memory format, the optimizer;
  3. loaders — training batches, full evaluation splits, and the ``eval_subset`` parts;
  then the :class:`~depthlab.train.optim.Schedule` (length, lr, periods) and the one :class:`TrainState`,
  fresh or restored from the ``last`` checkpoint (:meth:`TrainState.restore`; :meth:`TrainState.to_checkpoint`
  writes one: the keys are those of :class:`~depthlab.train.checkpoint.TrainerState`).

Each step: lr = ``schedule.lr_at(step)``; forward and backward under the run's precision; update. Then,
each asking ``due(step, every, total)`` (:func:`depthlab.train.optim.due`; everything is due after the last
step):
  1. non-finite check — every step on a single CPU process (free: the loss is already on the host), else
     at every row/eval/checkpoint boundary (one reduction, so all ranks decide together);
  2. a ``train`` row every ``log_every`` steps;
  3. evaluation (:func:`depthlab.train.evaluation.evaluate`) on val and test every ``eval_every`` steps
     (default: each epoch), then the ``best`` checkpoint when validation error improved; the last step's
     evaluation covers every image and writes ``correct-<split>.npy`` (see
     :func:`depthlab.train.evaluation.load_correct`);
  4. the ``monitor`` at every evaluation step;
  5. the ``last`` checkpoint every ``checkpoint_every`` steps (default: each epoch), on Ctrl-C, and at the
     end — only after checking every parameter is finite, so a diverged run never overwrites good weights.

Resuming loads the ``last`` checkpoint, drops metrics rows after its step and continues; because data
order and augmentation are stateless functions of (seed, epoch, batch) (see :mod:`depthlab.data.loader`)
and every RNG state is restored, a resumed CPU run ends with bit-identical weights, in fp32 and in bf16.

Precision (:mod:`depthlab.train.precision`): ``fp32``, or ``bf16`` autocast around each training forward
pass and each evaluation; ``auto`` is bf16 on CUDA and on CPUs with native bf16 (AVX512-BF16, AMX), fp32
elsewhere. Parameters, gradients, optimizer state and the loss stay fp32. Everything a study measures is
fp32: the ``monitor`` (the study engine's gradient diagnostics and probes) is called between steps, outside
every autocast region, on the fp32 parameters, and analyses load the fp32 checkpoints into fresh models.
The precision used is written to ``config.json`` (resolved, never ``auto``) and ``environment.json``.

Devices: channels-last tensors everywhere; CUDA adds cudnn.benchmark and TF32; ``compile=True`` applies
``torch.compile``. Progress is reported through ``callback(TrainEvent)`` (the CLI prints; this module never
does).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from depthlab import model_info
from depthlab.data import Augment, InMemoryLoader, Loader, StreamLoader, make_loader
from depthlab.errors import CheckpointError, DepthlabError, MissingFileError, UsageTypeError
from depthlab.io import atomic_write, write_json
from depthlab.runtime import seed_everything
from depthlab.train import distributed
from depthlab.train.checkpoint import (
    Pointer,
    TrainerState,
    capture_rng,
    fit_weights,
    load_pointer,
    load_trainer_state,
    load_weights,
    model_state,
    restore_rng,
    save_checkpoint,
)
from depthlab.train.config import ConfigError, TrainConfig, config_to_dict
from depthlab.train.evaluation import Evaluation, correct_path, evaluate, round_metric
from depthlab.train.optim import Schedule, build_optimizer, due, match_implementation
from depthlab.train.rundir import MetricsLog, RunSummary, environment_info, load_run_config, read_metrics
from depthlab.train.setup import build_model, preflight, prepare_bundle, session_precision, warm_start
from depthlab.train.step import TrainStep

__all__ = ["Monitor", "TrainEvent", "TrainState", "TrainingDivergedError", "train"]

# Fields that may differ between a run and its resumption: they change where or how fast it runs, not what
# it computes (on CPU, results are bit-identical; on GPU they are not promised).
RESUMABLE_CHANGES = ("device", "compile", "cuda_graph", "workers", "data_dir", "download")


class TrainingDivergedError(DepthlabError):
    """The loss or the weights became NaN/Inf; ``summary`` describes the stopped run (status ``diverged``,
    ``summary.diverged`` the step and the offending value; summary.json holds the same)."""

    def __init__(self, message: str, summary: RunSummary) -> None:
        super().__init__(message)
        self.summary = summary


@dataclass(frozen=True)
class TrainEvent:
    """A progress report. ``kind``: ``start`` (values: dataset and model facts), ``step`` (values:
    images_per_s), ``train`` / ``eval`` (a metrics row), ``checkpoint``, ``warning``, ``end``."""

    kind: str
    step: int
    total_steps: int
    epoch: float
    values: dict[str, Any] = field(default_factory=dict)
    message: str = ""


Callback = Callable[[TrainEvent], None]
# monitor(model, step): called on the main process at every evaluation step, before the checkpoint, outside
# any autocast region (fp32, whatever the run's precision); it must not change the model or the RNG streams
# (wrap random work in torch.random.fork_rng).
Monitor = Callable[[nn.Module, int], None]


# ------------------------------------------------------------------------------------------------ helpers
def _all_finite(model: nn.Module) -> bool:
    """Whether every floating-point weight and buffer of ``model`` is finite, decided with one copy from the
    device (of one number per tensor). A check per tensor waited for the device once per tensor: ~340 waits
    per ResNet-56 check, which cost a GPU study shared by several processes 14 s per run."""
    tensors = [t.detach() for t in model.state_dict().values() if t.is_floating_point()]
    if not tensors:
        return True
    # The max-abs norm of each tensor: NaN or inf exactly when the tensor holds one, without a copy of the
    # weights and without overflow for large finite values.
    norms = torch._foreach_norm(tensors, math.inf)
    return bool(torch.stack([n.float() for n in norms]).isfinite().all())


def _non_finite_tensors(model: nn.Module, most: int = 5) -> list[str]:
    """The names of the first ``most`` weights or buffers holding a NaN or an infinity (state_dict order)."""
    state = model.state_dict()
    names = [k for k, t in state.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    return names[:most]


def _number_text(value: float) -> str:
    """A loss as a diverged run's summary names it: ``nan``, ``inf``, ``-inf`` or its 6 significant digits."""
    return str(value) if not math.isfinite(value) else f"{value:.6g}"


class _Interrupt:
    """Turns the first Ctrl-C (SIGINT) into a flag checked after each step; a second one aborts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self) -> _Interrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _check_resume(config: TrainConfig, run_dir: Path) -> TrainConfig:
    """The stored config of the run in ``run_dir``, after checking ``config`` asks for the same run.

    ``precision=auto`` accepts the precision the run chose when it started (a run that started in bf16
    continues in bf16 on any machine); an explicit one must equal it."""
    if not (run_dir / "config.json").is_file():
        raise MissingFileError(f"cannot resume: {run_dir} is not a run directory (no config.json)")
    stored = load_run_config(run_dir)
    a, b = config_to_dict(stored), config_to_dict(config)
    if b["precision"] == "auto":
        b["precision"] = a["precision"]
    differ = [k for k in a if a[k] != b[k] and k not in RESUMABLE_CHANGES]
    if differ:
        shown = ", ".join(f"{k}: {a[k]!r} → {b[k]!r}" for k in differ)
        raise ConfigError(f"cannot resume {run_dir} with a different configuration ({shown})")
    return stored


# ------------------------------------------------------------------------------------------------- train
def train(
    config: TrainConfig,
    out_dir: str | os.PathLike[str],
    resume: bool = False,
    callback: Callback | None = None,
    monitor: Monitor | None = None,
) -> RunSummary:
    """Train ``config.model`` on ``config.data``, writing the run directory ``out_dir``.

    ``resume=True`` continues the run in ``out_dir`` from its last checkpoint (``config`` must match the
    stored one except for :data:`RESUMABLE_CHANGES`). Returns the summary; status ``interrupted`` after
    Ctrl-C (a resumable checkpoint is saved). ``monitor(model, step)`` is called at every evaluation step
    (see :data:`Monitor`): studies use it to record diagnostics during training. Raises
    :class:`TrainingDivergedError` on a NaN/Inf loss, and ``ConfigError``/``ValueError``/``DataError``
    before training for anything that cannot work.
    """
    if not isinstance(config, TrainConfig):
        raise UsageTypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    ctx = distributed.setup(config.device)
    try:
        summary = _Trainer(config, Path(out_dir), resume, callback, ctx, monitor).run()
        # Every rank has finished before any tears the group down: a gloo rank whose peer destroyed the group
        # while it was still finishing was seen to abort ("terminate called without an active exception").
        distributed.barrier(ctx)
        return summary
    finally:
        distributed.teardown(ctx)


@dataclass
class TrainState:
    """Everything that changes while a run trains: created once, before any set-up, and updated in place.

    ``step`` … ``warm_start`` are saved in every ``last`` checkpoint and restored by a resume; the rest
    describe this session. ``running`` holds the sums since the last training row (loss sum, errors,
    images; after a resume, rank 0 carries the sum over ranks). ``elapsed`` is wall time of earlier
    sessions; ``train_time`` the seconds spent in training steps (not evaluation or checkpoints).
    """

    running: torch.Tensor
    step: int = 0
    best: dict[str, float] | None = None
    elapsed: float = 0.0
    train_time: float = 0.0
    images_seen: int = 0
    warm_start: dict[str, Any] | None = None
    session_start: float = field(default_factory=time.perf_counter)
    final: dict[str, float] = field(default_factory=dict)  # the newest value of each split's loss and error
    last_row_time: float = 0.0
    last_row_images: int = 0
    skipped_steps: int = 0  # steps whose streamed batch had no decodable image (this session)
    last_good: Pointer | None = None  # the newest checkpoint written or loaded: a resume's fallback
    failed_everywhere: list[str] = field(default_factory=list)  # every rank's decode failures, at the end
    # seconds per phase, every session (summary.json's time_s)
    phases: dict[str, float] = field(default_factory=dict)

    def wall_time(self) -> float:
        """Seconds of every session so far: earlier ones and this one."""
        return self.elapsed + (time.perf_counter() - self.session_start)

    def to_checkpoint(self, optimizer: torch.optim.Optimizer, schedule: str, running: torch.Tensor,
                      rng: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
        """The trainer state of a ``last`` checkpoint (:class:`~depthlab.train.checkpoint.TrainerState`):
        this state with the optimizer's, the running sums over every rank and each rank's RNG states."""
        return TrainerState(
            step=self.step,
            optimizer=optimizer.state_dict(),
            scheduler={"name": schedule, "step": self.step},
            running=running,
            elapsed_s=self.wall_time(),
            train_time_s=self.train_time,
            images_seen=self.images_seen,
            warm_start=self.warm_start,
            phases_s=dict(self.phases),
            rng=rng,
        ).to_dict()

    def restore(self, saved: TrainerState, device: torch.device, rank: int, main: bool) -> None:
        """Continue from ``saved`` (the optimizer's state is loaded with the weights): its counters, times,
        warm-start record and phases; the running sums on the main process (which carries the sum over
        ranks); this rank's RNG states (rank 0's when the checkpoint has fewer ranks)."""
        self.step = int(saved.step)
        if main:
            self.running = saved.running.to(device)
        self.elapsed = float(saved.elapsed_s)
        self.train_time = float(saved.train_time_s)
        self.images_seen = int(saved.images_seen)
        self.warm_start = saved.warm_start
        self.phases = {k: float(v) for k, v in dict(saved.phases_s or {}).items()}
        self.last_row_time, self.last_row_images = self.train_time, self.images_seen
        restore_rng(saved.rng[rank] if rank < len(saved.rng) else saved.rng[0])


@dataclass(frozen=True)
class _Loaders:
    train: Loader
    full: dict[str, Loader]  # every image of each evaluated split: the last step's evaluation
    partial: dict[str, Loader]  # the first eval_subset images, for evaluations before the last step
    sizes: dict[str, int]  # images in each evaluated split


class _Trainer:
    """One training session of a run. The constructor does the whole set-up (module docstring), so every
    attribute exists from then on; :meth:`run` trains."""

    def __init__(
        self,
        config: TrainConfig,
        run_dir: Path,
        resume: bool,
        callback: Callback | None,
        ctx: distributed.DistContext,
        monitor: Monitor | None = None,
    ) -> None:
        self.state = TrainState(running=torch.zeros(3, dtype=torch.float64, device=ctx.device))
        self.run_dir, self.ckpt_dir, self.resume, self.ctx = run_dir, run_dir / "checkpoints", resume, ctx
        self.monitor = monitor if ctx.is_main else None
        self.callback = callback if (callback is not None and ctx.is_main) else None
        self.device = ctx.device
        stored = self._check_run_dir(config)
        self.precision = session_precision(config.precision, stored, self.device)
        self.config = config = dataclasses.replace(config, precision=self.precision.used)
        self.bundle = prepare_bundle(config)
        self.model, self.optimizer = self._prepare_model()
        self.loaders = self._prepare_loaders()
        self.schedule = Schedule.of(config, len(self.loaders.train))
        self.metrics = MetricsLog(run_dir / "metrics.jsonl", ctx.is_main)
        if resume:
            self._load_last()
        elif ctx.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_json(run_dir / "config.json", config_to_dict(config))
            (run_dir / "metrics.jsonl").write_text("")
        self.net, self.eval_net = self._wrap(self.model)
        self.step = TrainStep(
            self.net, self.model, self.optimizer, precision=self.precision.used, device=self.device,
            aux_weight=config.aux_weight, label_smoothing=config.label_smoothing, clip_grad=config.clip_grad,
            graph=self._use_graph(),
        )  # fmt: skip
        if ctx.is_main:
            environment = environment_info(self.device, ctx.world_size)
            environment["precision"] = self.precision.to_dict()
            environment["train_step"] = self.step.mode
            write_json(run_dir / "environment.json", environment)

    def emit(self, kind: str, values: dict[str, Any] | None = None, message: str = "") -> None:
        if self.callback is not None:
            step = self.state.step
            self.callback(
                TrainEvent(kind, step, self.schedule.total_steps, self._epoch(), values or {}, message)
            )

    # ---------------------------------------------------------------------------------------- set-up
    def _check_run_dir(self, config: TrainConfig) -> TrainConfig | None:
        """Refuse an unknown model, a resume that does not match its run, or a new run over an old one;
        returns the stored config of a resumed run."""
        model_info(config.model)  # unknown names fail before any data is read
        stored = None
        if self.resume:
            stored = _check_resume(config, self.run_dir)
        elif (self.run_dir / "config.json").exists():
            raise ConfigError(
                f"{self.run_dir} already holds a run; resume it with --resume {self.run_dir} or choose "
                f"another --out"
            )
        distributed.barrier(self.ctx)  # every rank has checked before rank 0 writes config.json
        return stored

    def _prepare_model(self) -> tuple[nn.Module, torch.optim.Optimizer]:
        """The model with its step-0 weights (seeded build, ``init``, warm start), on the device, and its
        optimizer. The unwrapped module: its state_dict is what checkpoints hold."""
        config, bundle, ctx = self.config, self.bundle, self.ctx
        seed_everything(config.seed)
        model = build_model(config, bundle)
        preflight(model, bundle, config.model)
        if config.init_from is not None and not self.resume:  # a resume restores its checkpoint instead
            self.state.warm_start = warm_start(model, config).to_dict()
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        model = model.to(device=self.device, memory_format=torch.channels_last)
        if ctx.distributed and config.sync_bn and self.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return model, build_optimizer(model, config)

    def _prepare_loaders(self) -> _Loaders:
        config, bundle, ctx = self.config, self.bundle, self.ctx
        if config.batch_size % ctx.world_size:
            raise ConfigError(
                f"batch_size {config.batch_size} must be divisible by the {ctx.world_size} processes"
            )
        if config.batch_size > len(bundle.train):
            raise ConfigError(
                f"batch_size {config.batch_size} is larger than the training split ({len(bundle.train)} images)"
            )

        def loader(split: Any, **kwargs: Any) -> Loader:
            return make_loader(
                bundle, split, device=self.device, rank=ctx.rank, world_size=ctx.world_size,
                workers=config.workers, strict=config.strict_data, **kwargs,
            )  # fmt: skip

        augment = Augment(config.crop_padding, flip=True) if config.augment else None
        batches = loader(
            bundle.train, batch_size=config.batch_size, train=True, augment=augment, seed=config.seed
        )
        splits = [("val", bundle.val), ("test", bundle.test)]
        if config.eval_train:
            splits.insert(0, ("train_eval", bundle.train))
        full = {name: loader(s, batch_size=config.eval_batch_size) for name, s in splits if s is not None}
        sizes = {name: len(s) for name, s in splits if s is not None}
        partial: dict[str, Loader] = {}
        if config.eval_subset is not None:  # a fixed held-out part: the first eval_subset images
            for name, s in splits:
                if s is not None and len(s) > config.eval_subset:
                    part = s.subset(torch.arange(config.eval_subset))
                    partial[name] = loader(part, batch_size=config.eval_batch_size)
        return _Loaders(batches, full, partial, sizes)

    def _use_graph(self) -> bool:
        """Replay each step from a CUDA graph (:mod:`depthlab.train.step`) where one can hold it: on CUDA, one
        process, in-memory data (every training batch the same shape), unless ``cuda_graph=False``."""
        return (
            self.config.cuda_graph
            and self.device.type == "cuda"
            and not self.ctx.distributed
            and isinstance(self.loaders.train, InMemoryLoader)
        )

    def _wrap(self, model: nn.Module) -> tuple[nn.Module, nn.Module]:
        """(the module a training step calls, the one evaluation calls): compiled if asked; training goes
        through DDP under torchrun, evaluation bypasses it (ranks hold shards of different sizes, and DDP's
        forward would broadcast buffers once per batch)."""
        net: nn.Module = model
        if self.config.compile:
            net = torch.compile(net)  # type: ignore[assignment]
        eval_net = net
        if self.ctx.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            net = nn.parallel.DistributedDataParallel(net, device_ids=ids)
        return net, eval_net

    def _read_checkpoint(self, pointer: Pointer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Weights and trainer state of ``pointer``, checked against each other and this run's model."""
        named_by = "last.json"
        if pointer.state is None:
            raise CheckpointError(
                f"{self.ckpt_dir / named_by}: names no trainer state; cannot resume from it"
            )
        weights_path, state_path = self.ckpt_dir / pointer.weights, self.ckpt_dir / pointer.state
        weights, step = load_weights(weights_path, named_by)
        state = load_trainer_state(state_path, named_by)
        if step != pointer.step or state["step"] != pointer.step:
            raise CheckpointError(
                f"{weights_path}: step {step} and trainer state step {state['step']} do not match the "
                f"step {pointer.step} named by {named_by}"
            )
        return weights, state

    def _apply_checkpoint(
        self, pointer: Pointer, weights: dict[str, torch.Tensor], state: dict[str, Any]
    ) -> None:
        weights_path = self.ckpt_dir / pointer.weights
        fit_weights(self.model, weights, weights_path, self.config.model)
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError, TypeError, RuntimeError) as exc:  # torch's checks of a foreign state
            why = str(exc).split("\n", 1)[0]
            raise CheckpointError(
                f"{self.ckpt_dir / pointer.state}: optimizer state of a different model or optimizer ({why})"
            ) from None
        match_implementation(self.optimizer, self.model)

    def _load_last(self) -> None:
        """Restore the newest good ``last`` checkpoint; if the newest is damaged, fall back to the one
        before it (``last.json``'s ``previous``) with a warning. Nothing is written unless one loads."""
        pointer = load_pointer(self.ckpt_dir, "last")
        best = load_pointer(self.ckpt_dir, "best")  # a damaged best.json stops the resume here, unchanged
        if pointer is None:
            raise CheckpointError(
                f"cannot resume: {self.ckpt_dir / 'last.json'} is missing (the run has no checkpoint yet; "
                f"start a new run)"
            )
        errors: list[CheckpointError] = []
        candidate: Pointer | None = pointer
        while candidate is not None:
            try:
                weights, saved = self._read_checkpoint(candidate)
                self._apply_checkpoint(candidate, weights, saved)
                break
            except CheckpointError as exc:
                errors.append(exc)
                candidate = candidate.previous
        if candidate is None:
            raise errors[0]  # the newest checkpoint's problem, and no earlier one to fall back to
        if errors:
            first_error = errors[0]
            self.emit(
                "warning",
                {"damaged": str(first_error), "resumed_from": candidate.step},
                f"the newest checkpoint (step {pointer.step}) is damaged: {first_error}; resuming from the "
                f"previous one (step {candidate.step})",
            )
        state = self.state
        state.last_good = candidate
        state.restore(TrainerState.from_dict(saved), self.device, self.ctx.rank, self.ctx.is_main)
        state.best = dict(best.extra["record"]) if best is not None and "record" in best.extra else None
        self.metrics.truncate_after(state.step)
        if self.ctx.is_main:
            for row in read_metrics(self.run_dir):
                state.final[f"{row['split']}_loss"] = row["loss"]
                state.final[f"{row['split']}_error"] = row["error"]

    # ------------------------------------------------------------------------------------ checkpoints
    def _gather_rng(self) -> list[dict[str, Any]]:
        rng = capture_rng()
        if not self.ctx.distributed:
            return [rng]
        gathered: list[Any] = [None] * self.ctx.world_size
        torch.distributed.all_gather_object(gathered, rng)
        return gathered

    def _save_last(self) -> None:
        rng = self._gather_rng()
        running = self._reduce_running()  # the sum over ranks; rank 0 carries it after a resume
        state = self.state
        if self.ctx.is_main:
            self.metrics.sync()
            saved = state.to_checkpoint(self.optimizer, self.config.schedule, running, rng)
            state.last_good = save_checkpoint(
                self.ckpt_dir, "last", state.step, model_state(self.model), saved, previous=state.last_good
            )
            self.emit("checkpoint", {"path": str(self.ckpt_dir)})
        distributed.barrier(self.ctx)

    def _save_best(self, record: dict[str, float]) -> None:
        if self.ctx.is_main:
            save_checkpoint(
                self.ckpt_dir, "best", self.state.step, model_state(self.model), None, {"record": record}
            )
        distributed.barrier(self.ctx)

    # ---------------------------------------------------------------------------------------- metrics
    def _epoch(self) -> float:
        return round_metric(self.schedule.epoch(self.state.step))

    def _reduce_running(self) -> torch.Tensor:
        return distributed.all_reduce_sum(self.ctx, self.state.running).cpu()

    def _check_finite(self, sums: torch.Tensor | None = None) -> None:
        sums = sums if sums is not None else self._reduce_running()
        if not math.isfinite(sums[0].item()) or not _all_finite(self.model):
            self._diverged(sums)

    def _diverged(self, sums: torch.Tensor | None = None) -> None:
        """Stop the run at this step: summary.json gets status ``diverged`` and ``diverged`` = {``step``,
        ``epoch``, ``cause`` (``loss`` or ``parameters``), ``loss`` (the mean training loss since the last
        logged row, the one that became non-finite: ``null`` in JSON), ``value`` (that loss as text: ``nan``,
        ``inf``…, so the kind of non-finite number is not lost to the null), ``tensors`` (the weights or
        buffers that became non-finite, for ``parameters``), ``checkpoint`` (the step of the last good
        checkpoint, kept; ``None``: none yet)}; then :class:`TrainingDivergedError`. ``sums``: the running
        (loss, errors, images) over every rank (default: this process's, on the single-process path that
        checks the loss of every step)."""
        state = self.state
        sums = sums if sums is not None else state.running.detach().cpu()
        loss_sum, _, n = sums.tolist()
        loss = loss_sum / n if n > 0 else math.nan
        # The loss is to blame only when its sum is not finite (no steps since the last row: a sum of 0).
        cause = "loss" if not math.isfinite(loss_sum) else "parameters"
        tensors = _non_finite_tensors(self.model) if cause == "parameters" else []
        last = load_pointer(self.ckpt_dir, "last")
        record = {
            "step": state.step,
            "epoch": self._epoch(),
            "cause": cause,
            "loss": loss,
            "value": _number_text(loss) if cause == "loss" else "non-finite weights",
            "tensors": tensors,
            "checkpoint": last.step if last is not None else None,
        }
        kept = (
            f"the last good checkpoint (step {last.step}) is kept in {self.ckpt_dir}"
            if last is not None
            else "no checkpoint had been written yet"
        )
        what = (
            f"the training loss became {_number_text(loss)}"
            if cause == "loss"
            else f"weights became non-finite ({', '.join(tensors) or 'a tensor'})"
        )
        message = (
            f"training diverged at step {state.step} (epoch {self._epoch():.2f}): {what}; {kept}. Lower the "
            f"learning rate (lr={self.config.lr}) or set clip_grad"
        )
        summary = self._summary("diverged", message, diverged=record)
        raise TrainingDivergedError(message, summary)

    def _train_row(self, lr: float, sums: torch.Tensor) -> dict[str, Any] | None:
        """The training row since the previous one from ``sums`` (the running sums over every rank, checked
        finite); ``None`` if every step since then was skipped (its streamed batches failed to decode), as there
        is no loss to report."""
        state = self.state
        loss, errors, n = sums.tolist()
        if n == 0:
            return None
        span_time = state.train_time - state.last_row_time
        span_images = state.images_seen - state.last_row_images
        state.last_row_time, state.last_row_images = state.train_time, state.images_seen
        state.running.zero_()
        return {
            "step": state.step,
            "epoch": self._epoch(),
            "split": "train",
            "loss": round_metric(loss / max(n, 1)),
            "error": round_metric(errors / max(n, 1)),
            "lr": round_metric(lr),
            "images_per_s": round(span_images / span_time, 1) if span_time > 0 else None,
        }

    def _evaluate(self, final: bool) -> list[dict[str, Any]]:
        """One row per evaluated split. ``final`` (the last step): every image, and each split's per-image
        correctness written to ``correct-<split>.npy``."""
        rows = []
        for name, full in self.loaders.full.items():
            if name == "test" and self.config.test_at_end and not final:
                continue
            loader = full if final else self.loaders.partial.get(name, full)
            result = evaluate(self.eval_net, loader, self.ctx, self.precision.used, per_image=final)
            if final:
                self._write_correct(name, result)
            rows.append(
                {
                    "step": self.state.step,
                    "epoch": self._epoch(),
                    "split": name,
                    "loss": round_metric(result.loss),
                    "error": round_metric(result.error),
                    "images": result.images,
                }
            )
        return rows

    def _write_correct(self, split: str, result: Evaluation) -> None:
        if not self.ctx.is_main or result.correct is None:
            return
        size = self.loaders.sizes[split]
        if result.correct.shape[0] != size:
            # Streamed images that failed to decode were left out: positions would no longer pair up.
            self.emit(
                "warning",
                {"split": split, "evaluated": int(result.correct.shape[0]), "images": size},
                f"{correct_path(self.run_dir, split).name} not written: {size - result.correct.shape[0]} "
                f"{split} image(s) failed to decode",
            )
            return
        flags = np.ascontiguousarray(result.correct, dtype=bool)
        atomic_write(correct_path(self.run_dir, split), lambda f: np.save(f, flags, allow_pickle=False))

    def _update_best(self, rows: list[dict[str, Any]]) -> None:
        by_split = {row["split"]: row for row in rows}
        val = by_split.get("val")
        if val is None:
            return
        state = self.state
        if state.best is None or val["error"] < state.best["val_error"]:
            record = {
                "step": state.step,
                "epoch": self._epoch(),
                "val_loss": val["loss"],
                "val_error": val["error"],
            }
            if "test" in by_split:
                record.update(test_loss=by_split["test"]["loss"], test_error=by_split["test"]["error"])
            state.best = record
            self._save_best(record)

    # ---------------------------------------------------------------------------------------- summary
    def _failed_images(self) -> list[str]:
        """Distinct image files that failed to decode in this session, in the order first met."""
        seen = dict.fromkeys(self.state.failed_everywhere)
        for loader in (self.loaders.train, *self.loaders.full.values()):
            seen.update(dict.fromkeys(getattr(loader, "failed", [])))
        return list(seen)

    def _summary(self, status: str, message: str = "", diverged: dict[str, Any] | None = None) -> RunSummary:
        state, bundle = self.state, self.bundle
        summary = RunSummary(
            run_dir=str(self.run_dir),
            status=status,
            step=state.step,
            total_steps=self.schedule.total_steps,
            epoch=self._epoch(),
            wall_time_s=round(state.wall_time(), 2),
            train_time_s=round(state.train_time, 2),
            images_per_s=round(state.images_seen / state.train_time, 1) if state.train_time > 0 else 0.0,
            final=dict(state.final),
            best=state.best,
            data={
                "name": bundle.name,
                "num_classes": getattr(self.model, "num_classes", bundle.num_classes),
                "in_channels": bundle.in_channels,
                "image_size": bundle.image_size,
                "mean": list(bundle.mean),
                "std": list(bundle.std),
                "train": len(bundle.train),
                "val": len(bundle.val) if bundle.val is not None else 0,
                "test": len(bundle.test) if bundle.test is not None else 0,
                "source": bundle.source,
                # distinct files: unreadable at load, or failing to decode in this session (any split)
                "skipped": len(set(bundle.skipped) | set(self._failed_images())),
            },
            message=message,
            warm_start=state.warm_start,
            diverged=diverged,
            time_s=self._time_breakdown(),
        )
        if self.ctx.is_main:
            write_json(self.run_dir / "summary.json", summary.to_dict())
        return summary

    def _time_breakdown(self) -> dict[str, float]:
        state = self.state
        wall = state.wall_time()
        parts = {"steps": state.train_time, **state.phases}
        order = ("setup", "steps", "rows", "evaluation", "monitor", "checkpoints")
        out = {k: round(parts[k], 2) for k in order if k in parts}
        out["other"] = round(max(0.0, wall - sum(parts.values())), 2)
        return out

    # ------------------------------------------------------------------------------------------- loop
    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        state, schedule = self.state, self.schedule
        while state.step < schedule.total_steps:
            epoch, start = divmod(state.step, schedule.steps_per_epoch)
            for batch in self.loaders.train.epoch(epoch, start):
                yield batch
                if state.step >= schedule.total_steps:
                    return

    def _train_step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, float]:
        """One update at ``schedule.lr_at(step)``; returns (loss, lr). The loss is computed in fp32 from the
        (possibly bf16) logits."""
        state = self.state
        lr = self.schedule.lr_at(state.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss, logits = self.step(x, y)
        with torch.no_grad():
            n = y.numel()
            state.running[0] += loss.double() * n
            state.running[1] += (logits.argmax(1) != y).sum()
            state.running[2] += n
        return loss, lr

    def run(self) -> RunSummary:
        config, ctx, bundle, state = self.config, self.ctx, self.bundle, self.state
        self.emit(
            "start",
            {
                "model": config.model,
                "data": bundle.name,
                "device": str(self.device),
                "precision": self.precision.used,
                "processes": ctx.world_size,
                "train": len(bundle.train),
                "val": len(bundle.val) if bundle.val is not None else 0,
                "test": len(bundle.test) if bundle.test is not None else 0,
                "skipped": list(bundle.skipped),
                "steps_per_epoch": self.schedule.steps_per_epoch,
                "resumed_from": state.step if self.resume else None,
                "warm_start": state.warm_start,
                "run_dir": str(self.run_dir),
            },
        )
        if state.step >= self.schedule.total_steps:  # resuming a run that had finished
            summary = self._summary("completed")
            self.emit("end", summary.to_dict())
            return summary
        phases = state.phases
        phases["setup"] = phases.get("setup", 0.0) + time.perf_counter() - state.session_start
        self._summary("running")
        try:
            status = self._loop()
        except TrainingDivergedError:
            raise
        except Exception as exc:  # record why the run stopped, then let the caller see the error
            self._summary("failed", f"{type(exc).__name__}: {exc}")
            raise
        if ctx.distributed:  # each rank decoded its own share: count every rank's failures
            gathered: list[Any] = [None] * ctx.world_size
            torch.distributed.all_gather_object(gathered, self._failed_images())
            state.failed_everywhere = [path for part in gathered for path in part]
        failed = self._failed_images()
        if failed or state.skipped_steps:
            empty = (
                f"; {state.skipped_steps} step(s) had no decodable image and made no update"
                if state.skipped_steps
                else ""
            )
            self.emit(
                "warning",
                {"failed": failed, "skipped_steps": state.skipped_steps},
                f"{len(failed)} image(s) failed to decode and were skipped{empty}",
            )
        message = (
            f"interrupted at step {state.step}; resume with --resume {self.run_dir}"
            if status == "interrupted"
            else ""
        )
        summary = self._summary(status, message)
        self.emit("end", summary.to_dict(), message)
        return summary

    def _loop(self) -> str:
        """Train until the last step or a Ctrl-C; returns the run's status.

        A streamed batch can come back with fewer images than asked for (files that fail to decode are
        left out) or with none. An empty batch still counts as a step — the schedule, rows, evaluation and
        checkpoints due after it all happen, so the last step always evaluates and checkpoints — but no
        update is made. Under DDP every rank must take part in each update's gradient all-reduce, so the
        ranks first agree (one small all-reduce, streamed data only) and skip the update together when any
        rank's share is empty.
        """
        ctx, state = self.ctx, self.state
        check_every_step = self.device.type == "cpu" and not ctx.distributed
        streamed = isinstance(self.loaders.train, StreamLoader)
        status = "completed"
        self.net.train()
        with _Interrupt() as interrupt:
            step_start = time.perf_counter()
            for x, y in self._batches():
                if streamed and not self._all_ranks_have_images(y.numel()):
                    lr = self.schedule.lr_at(state.step)
                    state.skipped_steps += 1
                    state.step += 1
                else:
                    loss, lr = self._train_step(x, y)
                    state.step += 1
                    if check_every_step and not math.isfinite(loss.item()):
                        self._diverged()
                    state.images_seen += y.numel() * ctx.world_size
                state.train_time += time.perf_counter() - step_start
                stop = self._stop_requested(interrupt.requested)
                if self.callback is not None and state.train_time > 0:
                    self.emit("step", {"images_per_s": state.images_seen / state.train_time, "lr": lr})
                self._boundaries(lr, stop)
                if stop and state.step < self.schedule.total_steps:
                    status = "interrupted"
                    break
                step_start = time.perf_counter()
        return status

    def _all_ranks_have_images(self, local: int) -> bool:
        if not self.ctx.distributed:
            return local > 0
        empty = torch.tensor([float(local == 0)], device=self.device)
        return bool(distributed.all_reduce_sum(self.ctx, empty).item() == 0)

    def _stop_requested(self, local: bool) -> bool:
        if not self.ctx.distributed:
            return local
        flag = torch.tensor([float(local)], device=self.device)
        return bool(distributed.all_reduce_sum(self.ctx, flag).item() > 0)

    @contextlib.contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        """Add the wall time of the block to ``state.phases[name]`` (``summary.json``'s ``time_s``)."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self._settle()
            phases = self.state.phases
            phases[name] = phases.get(name, 0.0) + time.perf_counter() - began

    def _settle(self) -> None:
        """Wait for the device's queued work (CUDA), so that a phase's time is its own: steps are queued
        ahead of the host, and without this their time would land in the next phase that waits."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _boundaries(self, lr: float, stop: bool) -> None:
        """The periodic actions due after the step just taken, each asking :func:`due`: the training row,
        the evaluation (and the best checkpoint), the monitor, the last checkpoint (also on a stop)."""
        state, schedule = self.state, self.schedule
        step, total = state.step, schedule.total_steps
        logging, evaluating = due(step, schedule.log_every, total), due(step, schedule.eval_every, total)
        checkpointing = due(step, schedule.checkpoint_every, total) or stop
        if logging or evaluating or checkpointing:  # the steps queued so far are training time
            began = time.perf_counter()
            self._settle()
            state.train_time += time.perf_counter() - began
            # One check of the loss and the weights before every action below: evaluation and the monitor do
            # not change the weights, so a check per action would only repeat the reduction and the device sync.
            with self._phase("checks"):
                sums = self._reduce_running()
                self._check_finite(sums)
        rows: list[dict[str, Any]] = []
        if logging:
            with self._phase("rows"):
                row = self._train_row(lr, sums)
            if row is not None:
                rows.append(row)
        eval_rows: list[dict[str, Any]] = []
        if evaluating:
            with self._phase("evaluation"):
                eval_rows = self._evaluate(final=step >= total)
            rows.extend(eval_rows)
        self.metrics.write(rows)
        for row in rows:
            state.final[f"{row['split']}_loss"] = row["loss"]
            state.final[f"{row['split']}_error"] = row["error"]
            self.emit("train" if row["split"] == "train" else "eval", row)
        if eval_rows:
            with self._phase("checkpoints"):
                self._update_best(eval_rows)
        if self.monitor is not None and evaluating:
            # Before the checkpoint: a kill in between repeats this step, and the monitor rewrites its record.
            # Outside the autocast of the step and of evaluation: the monitor measures in fp32.
            with self._phase("monitor"):
                self.monitor(self.model, step)
        if checkpointing:
            with self._phase("checkpoints"):
                self._save_last()
