"""The run directory: what a training run leaves behind, and how to read it back.

```
RUN_DIR/
  config.json        the TrainConfig
  environment.json   versions, device, CPU/GPU model, thread count, processes, git commit
  metrics.jsonl      one object per line, each with step, epoch and split:
                       train: loss, error (running over the augmented batches since the previous row), lr,
                              images_per_s
                       val / test: loss, error (plain cross-entropy, no label smoothing), images
  summary.json       status (running | completed | interrupted | diverged | failed), final and best numbers, wall
                     time, images/s, the dataset's shape and normalisation
  checkpoints/       last.json / best.json pointers, *.safetensors weights, *.state.pt trainer state
  eval.jsonl         rows appended by ``depthlab eval``
```
"""

from __future__ import annotations

import errno
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from depthlab import __version__, create_model
from depthlab.errors import CheckpointError, DepthlabError, EnvironmentFault, MissingFileError, UsageError
from depthlab.io import read_json_checked, strict_json, write_text
from depthlab.train.checkpoint import fit_weights, load_pointer, load_weights
from depthlab.train.config import ConfigError, TrainConfig, config_from_dict

__all__ = [
    "RunSummary",
    "MetricsLog",
    "environment_info",
    "load_run",
    "load_run_model",
    "load_run_config",
    "STATUSES",
    "ENVIRONMENT_ERRNOS",
    "environment_cause",
    "environment_fault",
    "environment_message",
    "last_good_step",
]

STATUSES = ("running", "completed", "interrupted", "diverged", "failed")


@dataclass(frozen=True)
class RunSummary:
    """What ``summary.json`` holds. ``final``: the last training row and evaluation; ``best``: the
    evaluation with the lowest validation error (``None`` without a validation split)."""

    run_dir: str
    status: str
    step: int
    total_steps: int
    epoch: float
    wall_time_s: float
    train_time_s: float
    images_per_s: float
    final: dict[str, float] = field(default_factory=dict)
    best: dict[str, float] | None = None
    data: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    # A warm start (TrainConfig.init_from): source, step, tensors_copied, tensors_total, copied (names).
    warm_start: dict[str, Any] | None = None
    # A diverged run (status "diverged"): step, epoch, cause ("loss" or "parameters"), loss (null: non-finite),
    # value ("nan", "inf", ...), tensors (non-finite weights), checkpoint (the last good one's step).
    diverged: dict[str, Any] | None = None
    # Where the wall time went, in seconds over every session of the run: setup (data, model, checkpoint
    # restore), steps (the training steps, device work included), rows, evaluation, monitor (a study's
    # probes), checkpoints, and other (the rest: summaries, start and end).
    time_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunSummary:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


class MetricsLog:
    """Appends rows to ``metrics.jsonl``; ``truncate_after(step)`` drops rows a resumed run will redo."""

    def __init__(self, path: Path, enabled: bool) -> None:
        self.path, self.enabled = path, enabled

    def truncate_after(self, step: int) -> None:
        if not self.enabled or not self.path.exists():
            return
        rows = [line for line in self.path.read_text().splitlines() if line.strip()]
        kept = []
        for line in rows:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line torn by a kill mid-write
                continue
            if row["step"] <= step:
                kept.append(line)
        write_text(self.path, "".join(f"{line}\n" for line in kept))

    def write(self, rows: Iterable[dict[str, Any]]) -> None:
        """Append ``rows``: all of them or, when the OS refuses (a full disk), none — the file is cut back
        to its length before the call, so every row written earlier stays and no torn row is left."""
        if not self.enabled:
            return
        data = "".join(json.dumps(strict_json(row), allow_nan=False) + "\n" for row in rows).encode("utf-8")
        # Opened even with nothing to write: in a deleted run directory this fails instead of training on.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            start = os.fstat(fd).st_size
            view = memoryview(data)
            try:
                while view:
                    view = view[os.write(fd, view) :]
            except OSError as exc:
                os.ftruncate(fd, start)
                raise OSError(exc.errno, exc.strerror, str(self.path)) from exc
        finally:
            os.close(fd)

    def sync(self) -> None:
        if self.enabled and self.path.exists():
            with self.path.open("a") as f:
                os.fsync(f.fileno())


def read_metrics(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -------------------------------------------------------------------------------------------- environment
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> dict[str, Any] | None:
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def environment_info(device: torch.device, world_size: int) -> dict[str, Any]:
    import numpy
    import torchvision

    info: dict[str, Any] = {
        "depthlab": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "hostname": platform.node(),
        "device": str(device),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "processes": world_size,
        "git": _git_commit(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    return info


# ------------------------------------------------------------------------------------------------ reading
def load_run_config(run_dir: str | os.PathLike[str]) -> TrainConfig:
    """The :class:`TrainConfig` of a run directory (its ``config.json``).

    :class:`MissingFileError` if ``run_dir`` is not a run directory; :class:`CheckpointError` naming the
    file if ``config.json`` is damaged or not a depthlab config.
    """
    folder = Path(run_dir)
    path = folder / "config.json"
    if not path.is_file():
        what = "does not exist" if not folder.exists() else "is not a run directory (no config.json)"
        raise MissingFileError(f"{folder} {what}")
    values = read_json_checked(path)
    if not isinstance(values, dict):
        raise CheckpointError(f"{path}: not a depthlab config (a JSON {type(values).__name__})")
    try:
        return config_from_dict(values)
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{path}: not a valid depthlab config ({exc})") from None


def load_run(run_dir: str | os.PathLike[str]) -> tuple[TrainConfig, RunSummary | None]:
    """(config, summary) of a run directory; the summary is ``None`` if the run never wrote one.

    Errors as :func:`load_run_config`, and :class:`CheckpointError` if ``summary.json`` is damaged.
    Nothing is written.
    """
    folder = Path(run_dir)
    config = load_run_config(folder)
    summary_path = folder / "summary.json"
    summary = None
    if summary_path.is_file():
        data = read_json_checked(summary_path)
        try:
            summary = RunSummary.from_dict(data) if isinstance(data, dict) else None
        except (
            TypeError
        ) as exc:  # missing fields (unknown ones are dropped): not a summary this version writes
            raise CheckpointError(f"{summary_path}: not a depthlab run summary ({exc})") from None
        if summary is None or not isinstance(summary.data, dict):
            raise CheckpointError(f"{summary_path}: not a depthlab run summary")
    return config, summary


CHECKPOINTS = ("last", "best")


def load_run_model(run_dir: str | os.PathLike[str], checkpoint: str = "last") -> torch.nn.Module:
    """The model of a run with the weights of its ``last`` or ``best`` checkpoint, in eval mode, on CPU.

    Every problem with the run directory — a missing or damaged pointer, checkpoint, config or summary,
    the weights of a different model — is a :class:`CheckpointError` (or :class:`MissingFileError`) whose
    one-line message names the file. Nothing in the run directory is written.
    """

    if checkpoint not in CHECKPOINTS:
        raise UsageError(f"unknown checkpoint {checkpoint!r}; choose from: {', '.join(CHECKPOINTS)}")
    folder = Path(run_dir)
    config, summary = load_run(folder)
    ckpt_dir = folder / "checkpoints"
    pointer = load_pointer(ckpt_dir, checkpoint)
    if pointer is None:
        why = "the run has no validation split" if checkpoint == "best" and config.val_size == 0 else ""
        why = why or "the run has not written that checkpoint"
        raise CheckpointError(f"{ckpt_dir / (checkpoint + '.json')}: file is missing ({why})")
    data = summary.data if summary is not None else {}
    if not all(isinstance(data.get(k), int) for k in ("num_classes", "in_channels")):
        raise CheckpointError(
            f"{folder / 'summary.json'}: missing, or without the dataset's classes and channels"
        )
    kwargs = dict(config.model_kwargs)
    num_classes = kwargs.pop("num_classes", data["num_classes"])
    in_channels = kwargs.pop("in_channels", data["in_channels"])
    model = create_model(config.model, num_classes=num_classes, in_channels=in_channels, **kwargs)
    path = ckpt_dir / pointer.weights
    weights, _ = load_weights(path, named_by=f"{checkpoint}.json")
    fit_weights(model, weights, path, f"{config.model} ({num_classes} classes, {in_channels} channels)")
    return model.eval()


# -------------------------------------------------------------------------------- errors of the environment
# OSErrors that describe the machine, not the input and not a bug: a full disk or quota, permission denied,
# a read-only file system. (A deleted run directory is the fourth case; it shows as ENOENT, recognised by
# the run directory being gone.)
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS})


def environment_cause(exc: BaseException, *, deleted: bool = False) -> OSError | None:
    """The OSError of the environment behind ``exc``, or ``None`` when ``exc`` is something else.

    ``exc`` must itself be an :class:`OSError` (a depthlab input error that mentions one, such as an
    unreadable checkpoint, stays what it is). Its chain is read as failures: an exception raised while
    handling another (``__context__``) is a later failure — a trainer that fails to write a checkpoint on a
    full disk then fails to write its summary too — and the earliest one is reported; ``raise … from``
    (``__cause__``) restates the same failure, and the outermost statement is kept (it names the file).
    ``deleted``: the run directory is known to be gone, so "no such file or directory" counts too.
    """
    if not isinstance(exc, OSError) or (
        isinstance(exc, DepthlabError) and not isinstance(exc, EnvironmentFault)
    ):
        return None
    failures: list[list[BaseException]] = [[]]
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        failures[-1].append(current)
        if current.__cause__ is not None:
            current = current.__cause__
            continue
        current = None if current.__suppress_context__ else current.__context__
        failures.append([])
    for failure in reversed(failures):  # the earliest failure first
        for candidate in failure:  # its outermost statement first
            if isinstance(candidate, OSError) and not isinstance(candidate, EnvironmentFault):
                if candidate.errno in ENVIRONMENT_ERRNOS or (deleted and candidate.errno == errno.ENOENT):
                    return candidate
    return None


def last_good_step(run_dir: Path) -> int | None:
    """The step of the checkpoint ``last.json`` names (``None``: none, or a pointer that cannot be read)."""
    try:
        pointer = load_pointer(run_dir / "checkpoints", "last")
    except (CheckpointError, OSError):
        return None
    return pointer.step if pointer is not None else None


def _remedy(code: int | None, where: str) -> str:
    if code == errno.ENOSPC:
        return f"free space on the file system of {where}"
    if code == errno.EDQUOT:
        return f"free space, or raise your disk quota, for {where}"
    if code in (errno.EACCES, errno.EPERM):
        return f"give this user write access to {where} (or use another directory)"
    if code == errno.EROFS:
        return f"{where} is on a read-only file system: remount it read-write (or use another directory)"
    return f"check {where}"


def environment_message(
    cause: OSError,
    *,
    run_dir: str | os.PathLike[str] | None = None,
    step: int | None = None,
    deleted: bool = False,
    command: str | None = None,
) -> str:
    """One line: the file, what the OS said, and what to do.

    Without ``run_dir``: "run the command again". With it (a run was being trained): ``command`` is what
    continues it — by default ``depthlab train --resume RUN_DIR``; a study passes its own command, which
    resumes (or restarts) the run itself — and ``step`` the last good checkpoint it continues from.
    """
    filename = cause.filename if cause.filename is not None else "(a file the OS did not name)"
    said = f"{filename}: {cause.strerror or os.strerror(cause.errno or 0)}"
    if run_dir is None:
        where = str(Path(str(filename)).parent) if cause.filename is not None else "the output directory"
        return f"{said}; {_remedy(cause.errno, where)}, then run the command again"
    run = Path(run_dir)
    if deleted:
        again = (
            f"run `{command}` again: it trains {run.name} from the start"
            if command
            else f"start the run again with --out {run}"
        )
        return f"{run}: the run directory was deleted while it was being trained ({said}); its checkpoints went with it: {again}"
    remedy = _remedy(cause.errno, str(run))
    if step is not None:
        if command:
            return f"{said}; {remedy} and run `{command}` again: it resumes {run.name} from its last good checkpoint, step {step}"
        return f"{said}; {remedy} and run `depthlab train --resume {run}`; the last good checkpoint is step {step}"
    if command:
        return f"{said}; {remedy} and run `{command}` again: it starts {run.name} over (it had no checkpoint yet)"
    if (run / "config.json").is_file():
        return f"{said}; {remedy}, then remove {run} and start the run again (it had no checkpoint yet)"
    return f"{said}; {remedy}, then run the command again (the run had not started)"


def environment_fault(
    exc: BaseException, run_dir: str | os.PathLike[str], *, deleted: bool = False, command: str | None = None
) -> EnvironmentFault | None:
    """``exc`` as an :class:`EnvironmentFault` of training ``run_dir`` (see :func:`environment_message`),
    or ``None`` when it is not an error of the environment."""
    if isinstance(exc, EnvironmentFault):  # reworded for another command
        cause: OSError | None = exc
        deleted = deleted or exc.deleted
    else:
        cause = environment_cause(exc, deleted=deleted)
    if cause is None:
        return None
    folder = Path(run_dir)
    step = None if deleted else last_good_step(folder)
    message = environment_message(cause, run_dir=folder, step=step, deleted=deleted, command=command)
    return EnvironmentFault(message, errno=cause.errno, strerror=cause.strerror, filename=cause.filename,
                            run_dir=str(folder), step=step, deleted=deleted)  # fmt: skip
