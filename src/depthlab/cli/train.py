"""``depthlab train MODEL --data NAME [options]`` and ``depthlab eval RUN_DIR [--data NAME]``.

Every option maps to a :class:`~depthlab.train.TrainConfig` field (``--set key=value`` reaches the rest,
typed, with unknown keys rejected). Progress is a rich bar on a terminal, plain lines otherwise.
Multi-process: ``torchrun --nproc_per_node=N -m depthlab train ...``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from depthlab.train import (
    DEVICES,
    INITS,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULES,
    TrainConfig,
    TrainEvent,
    apply_overrides,
    evaluate_run,
    train,
)
from depthlab.train.rundir import load_run_config
from depthlab.train.runlock import guard_run
from depthlab.train.tensorboard import TensorBoardWriter, require_tensorboard, tensorboard_available

# CLI option → config field, for options whose value is passed through as typed by argparse.
_FIELDS = {
    "data": "data",
    "data_dir": "data_dir",
    "image_size": "image_size",
    "val_size": "val_size",
    "epochs": "epochs",
    "steps": "steps",
    "batch_size": "batch_size",
    "optimizer": "optimizer",
    "lr": "lr",
    "momentum": "momentum",
    "weight_decay": "weight_decay",
    "schedule": "schedule",
    "warmup": "warmup",
    "label_smoothing": "label_smoothing",
    "clip_grad": "clip_grad",
    "aux_weight": "aux_weight",
    "eval_every": "eval_every",
    "log_every": "log_every",
    "checkpoint_every": "checkpoint_every",
    "seed": "seed",
    "device": "device",
    "precision": "precision",
    "init": "init",
    "init_from": "init_from",
    "workers": "workers",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    d = TrainConfig()
    p = subparsers.add_parser(
        "train",
        help="train a model; writes a run directory (config, metrics, summary, checkpoints)",
        description="Train MODEL on --data. Defaults are the recipe that takes ResNet-20 to ≥93%% on "
        "Fashion-MNIST. Multi-process: torchrun --nproc_per_node=N -m depthlab train ...",
    )
    p.add_argument(
        "model", nargs="?", help=f"registered model name (default {d.model}; see `depthlab models`)"
    )
    p.add_argument(
        "--data",
        help=f"fashion-mnist, mnist, cifar10, cifar100, imagefolder:PATH, synthetic (default {d.data})",
    )
    p.add_argument(
        "--data-dir", help="where datasets are looked for first (then $DEPTHLAB_DATA, ~/.cache/depthlab)"
    )
    p.add_argument("--download", action="store_true", default=None, help="download the dataset if not found")
    p.add_argument("--image-size", type=int, help="resize images to this side (image folders: default 32)")
    p.add_argument("--val-size", type=int, help="images held out for validation (default 5000; 0 for none)")
    p.add_argument(
        "--strict", action="store_true", default=None, help="an unreadable image is an error, not skipped"
    )
    length = p.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, help=f"passes over the training split (default {d.epochs})")
    length.add_argument("--steps", type=int, help="optimizer steps (instead of --epochs)")
    p.add_argument("--batch-size", type=int, help=f"global batch size (default {d.batch_size})")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help=f"(default {d.optimizer})")
    p.add_argument("--lr", type=float, help=f"peak learning rate (default {d.lr})")
    p.add_argument("--momentum", type=float, help=f"(default {d.momentum})")
    p.add_argument(
        "--nesterov", action=argparse.BooleanOptionalAction, default=None, help=f"(default {d.nesterov})"
    )
    p.add_argument("--weight-decay", type=float, help=f"(default {d.weight_decay})")
    p.add_argument(
        "--decay-norm-and-bias", action=argparse.BooleanOptionalAction, default=None,
        help=f"apply weight decay to BatchNorm parameters and biases too (default {d.decay_norm_and_bias})",
    )  # fmt: skip
    p.add_argument("--schedule", choices=SCHEDULES, help=f"(default {d.schedule})")
    p.add_argument(
        "--milestones", help="step schedule: comma-separated epochs (or steps with --steps) where lr ÷ 10"
    )
    p.add_argument("--warmup", type=int, help="warm-up steps (onecycle: the rise; default 25%% of training)")
    p.add_argument("--label-smoothing", type=float, help=f"(default {d.label_smoothing})")
    p.add_argument("--clip-grad", type=float, help="max gradient norm (default: no clipping)")
    p.add_argument(
        "--aux-weight",
        type=float,
        help=f"GoogLeNet auxiliary loss weight (default {d.aux_weight}; 0 disables)",
    )
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="random crop (pad 4) + flip (default on)",
    )
    p.add_argument("--eval-every", type=int, help="steps between evaluations (default: once per epoch)")
    p.add_argument("--log-every", type=int, help=f"steps between training rows (default {d.log_every})")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (default: once per epoch)")
    p.add_argument("--seed", type=int, help=f"(default {d.seed})")
    p.add_argument("--device", choices=DEVICES, help=f"(default {d.device})")
    p.add_argument(
        "--precision", choices=PRECISIONS,
        help="fp32, or bf16 autocast; auto (default): bf16 on CUDA and on CPUs with native bf16 "
        "(AVX512-BF16/AMX), fp32 elsewhere. The run records what it used",
    )  # fmt: skip
    p.add_argument(
        "--init", choices=INITS,
        help="model (default): the builder's initialisation; glorot or kaiming re-initialise every conv and "
        "linear layer",
    )  # fmt: skip
    p.add_argument(
        "--init-from", metavar="RUN_DIR",
        help="warm start: copy every tensor of a finished run's last weights whose name and shape match "
        "(--set init_from_layers=PATTERN,... limits it)",
    )  # fmt: skip
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model")
    p.add_argument("--workers", type=int, help=f"image-folder decoding processes (default {d.workers})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="set any config field, e.g. --set model_kwargs.norm=none (repeatable)")  # fmt: skip
    p.add_argument("--out", help="run directory (default runs/MODEL-DATA-TIMESTAMP)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="print only the final summary")
    add_tensorboard_option(p, "RUN_DIR/tensorboard")
    p.set_defaults(func=run_train)

    e = subparsers.add_parser(
        "eval", help="test a run's checkpoint; prints and appends to RUN_DIR/eval.jsonl"
    )
    e.add_argument("run_dir", help="a run directory written by `depthlab train`")
    e.add_argument("--data", help="dataset to test on (default: the run's)")
    e.add_argument("--data-dir", help="where datasets are looked for first")
    e.add_argument("--checkpoint", choices=("best", "last"), default="best", help="(default best)")
    e.add_argument("--device", choices=DEVICES, default="auto")
    e.set_defaults(func=run_eval)


def add_tensorboard_option(p: argparse.ArgumentParser, where: str) -> None:
    p.add_argument(
        "--tensorboard", action=argparse.BooleanOptionalAction, default=None,
        help=f"write TensorBoard events to {where} (default: when the tensorboard package is installed)",
    )  # fmt: skip


def tensorboard_wanted(args: argparse.Namespace) -> bool:
    """--tensorboard: yes (an error if not installed); --no-tensorboard: no; neither: if installed."""

    if args.tensorboard is None:
        return tensorboard_available()
    if args.tensorboard:
        require_tensorboard()
    return bool(args.tensorboard)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text.replace("imagefolder:", "folder-")).strip("_")[:40]


def build_config(args: argparse.Namespace) -> TrainConfig:
    """The config the command line asks for (starting from a resumed run's stored config)."""
    if args.resume:
        base = load_run_config(args.resume)
    else:
        base = TrainConfig()
    items: list[str] = []
    if args.model:
        items.append(f"model={args.model}")
    for option, name in _FIELDS.items():
        value = getattr(args, option)
        if value is not None:
            items.append(f"{name}={value}")
    for flag, name in (("download", "download"), ("strict", "strict_data"), ("compile", "compile"),
                       ("nesterov", "nesterov"), ("decay_norm_and_bias", "decay_norm_and_bias"),
                       ("augment", "augment")):  # fmt: skip
        value = getattr(args, flag)
        if value is not None:
            items.append(f"{name}={'true' if value else 'false'}")
    if args.milestones is not None:
        items.append(f"milestones={args.milestones}")
    return apply_overrides(base, items + list(args.overrides))


def _percent(x: float) -> str:
    return f"{100 * x:.2f}%"


def _warm_start_line(record: dict[str, Any]) -> str:
    return (
        f"warm start from {record['source']} (step {record['step']}): {record['tensors_copied']} of "
        f"{record['tensors_total']} tensors copied"
    )


class PlainReporter:
    """Periodic lines for logs and pipes."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, event: TrainEvent) -> None:
        if self.quiet and event.kind not in ("warning",):
            return
        v = event.values
        if event.kind == "start":
            resumed = f", resumed at step {v['resumed_from']}" if v["resumed_from"] is not None else ""
            print(
                f"training {v['model']} on {v['data']} ({v['train']} train / {v['val']} val / {v['test']} test) "
                f"on {v['device']} × {v['processes']} in {v['precision']}{resumed} → {v['run_dir']}",
                flush=True,
            )
            if v["warm_start"] is not None:
                print(_warm_start_line(v["warm_start"]), flush=True)
            if v["skipped"]:
                print(
                    f"skipped {len(v['skipped'])} unreadable image(s): {', '.join(v['skipped'][:5])}",
                    flush=True,
                )
        elif event.kind == "train":
            ips = f"  {v['images_per_s']:.0f} img/s" if v.get("images_per_s") else ""
            print(
                f"step {event.step}/{event.total_steps}  epoch {event.epoch:.2f}  loss {v['loss']:.4f}  "
                f"err {_percent(v['error'])}  lr {v['lr']:.4g}{ips}",
                flush=True,
            )
        elif event.kind == "eval":
            print(
                f"  {v['split']:<5} loss {v['loss']:.4f}  err {_percent(v['error'])}  ({v['images']} images)",
                flush=True,
            )
        elif event.kind == "warning":
            print(f"warning: {event.message}", file=sys.stderr, flush=True)


class RichReporter:
    """A progress bar with loss, accuracy, images/s and ETA; evaluations print above it."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.console = Console()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  acc {task.fields[acc]}  {task.fields[ips]} img/s"),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.task: Any = None

    def __call__(self, event: TrainEvent) -> None:
        v = event.values
        if event.kind == "start":
            self.console.print(
                f"training [bold]{v['model']}[/] on {v['data']} ({v['train']}/{v['val']}/{v['test']}) on "
                f"{v['device']} × {v['processes']} in {v['precision']} → {v['run_dir']}"
            )
            if v["warm_start"] is not None:
                self.console.print(_warm_start_line(v["warm_start"]))
            self.progress.start()
            self.task = self.progress.add_task(
                "train", total=event.total_steps, completed=event.step, loss="-", acc="-", ips="-"
            )
        elif event.kind == "step" and self.task is not None:
            self.progress.update(self.task, completed=event.step, ips=f"{v['images_per_s']:.0f}",
                                 description=f"epoch {event.epoch:.2f}")  # fmt: skip
        elif event.kind == "train" and self.task is not None:
            self.progress.update(self.task, loss=f"{v['loss']:.4f}", acc=_percent(1 - v["error"]))
        elif event.kind == "eval":
            self.progress.console.print(
                f"step {event.step}  {v['split']:<5} loss {v['loss']:.4f}  acc {_percent(1 - v['error'])}"
            )
        elif event.kind == "warning":
            self.progress.console.print(f"[yellow]warning:[/] {event.message}")
        elif event.kind == "end":
            self.progress.stop()

    def close(self) -> None:
        self.progress.stop()


def _print_summary(summary: Any) -> None:
    print(f"{summary.status}: {summary.step}/{summary.total_steps} steps in {summary.wall_time_s:.1f} s "
          f"({summary.images_per_s:.0f} img/s while training) → {summary.run_dir}")  # fmt: skip
    final = summary.final
    if "test_error" in final:
        print(f"final: test accuracy {_percent(1 - final['test_error'])}", end="")
        if "val_error" in final:
            print(f", val accuracy {_percent(1 - final['val_error'])}", end="")
        print()
    if summary.best is not None:
        b = summary.best
        test = f", test accuracy {_percent(1 - b['test_error'])}" if "test_error" in b else ""
        print(f"best (by validation): step {b['step']}, val accuracy {_percent(1 - b['val_error'])}{test}")
    if summary.message:
        print(summary.message)


def run_train(args: argparse.Namespace) -> int:
    config = build_config(args)
    out = (
        args.resume
        or args.out
        or os.path.join("runs", f"{config.model}-{_slug(config.data)}-{time.strftime('%Y%m%d-%H%M%S')}")
    )
    is_main = int(os.environ.get("RANK", "0")) == 0
    reporter: Any
    if args.quiet or not sys.stdout.isatty():
        reporter = PlainReporter(args.quiet)
    else:
        reporter = RichReporter()
    callbacks: list[Any] = [reporter]
    if tensorboard_wanted(args):
        callbacks.append(TensorBoardWriter())

    def callback(event: TrainEvent) -> None:
        for c in callbacks:
            c(event)

    def warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr, flush=True)

    try:
        # The run's lock (one trainer per run directory; rank 0 holds it for all ranks), and errors of the
        # environment (a full disk, ...) as one line that names the last good checkpoint.
        with guard_run(out, lock=is_main, warn=warn):
            summary = train(config, out, resume=bool(args.resume), callback=callback)
    finally:
        for c in callbacks:
            if hasattr(c, "close"):
                c.close()
    if is_main:
        _print_summary(summary)
    return 130 if summary.status == "interrupted" else 0


def run_eval(args: argparse.Namespace) -> int:
    row = evaluate_run(
        args.run_dir, data=args.data, checkpoint=args.checkpoint, data_dir=args.data_dir, device=args.device
    )
    print(
        f"{row['data']} test: accuracy {_percent(row['accuracy'])}  error {_percent(row['error'])}  loss "
        f"{row['loss']:.4f}  ({row['images']} images, {row['checkpoint']} checkpoint at step {row['step']})"
    )
    print(f"appended to {Path(args.run_dir) / 'eval.jsonl'}")
    return 0
