"""The trainer's step on one device, variant by variant, measured in one process (issue 21).

For each model, the step :class:`depthlab.train.step.TrainStep` (forward, label-smoothed loss, backward,
SGD + Nesterov update; the batch already on the device, as the in-memory loader delivers it) is timed in
every combination of
* ``eager`` or ``graph`` (forward and backward replayed from a CUDA graph; CUDA only),
* ``fp32`` (with TF32 tensor cores on CUDA, as the trainer enables them) or ``bf16`` autocast,
* ``channels_last`` or ``contiguous`` memory format (of the model and the batch),
and printed as images/s with the ratio to eager fp32 channels-last (the trainer's step before graphs).
What the trainer uses by default is the variant these numbers pick: the defaults in
:mod:`depthlab.train.precision` and :mod:`depthlab.train.loop` cite this benchmark's JSON.

Timing: ``--steps`` steps after ``--warmup`` (≥ the graph's eager warm-up + capture), bracketed by CUDA
events on CUDA (``perf_counter`` on CPU), the best of ``--repeats`` interleaved repeats.

Usage:
    python benchmarks/train_step.py --device cuda                  # resnet20, resnet56, plain56 at 1×28×28
    python benchmarks/train_step.py --device cuda --models resnet110 --shape 3,32 --batch-size 256
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build(model_name: str, channels: int, size: int, batch: int, device: str, fmt: str, seed: int = 0):  # noqa: ANN201
    import torch

    from depthlab.data import Augment, make_loader
    from depthlab.train import TrainConfig
    from depthlab.train.optim import build_optimizer
    from depthlab.train.setup import build_model, prepare_bundle

    config = TrainConfig(model=model_name, data=f"synthetic:channels={channels},size={size},train={batch * 4},"
                         f"test={batch}", val_size=0, batch_size=batch, device=device)  # fmt: skip
    bundle = prepare_bundle(config)
    torch.manual_seed(seed)
    memory = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
    model = build_model(config, bundle).to(device=device, memory_format=memory).train()
    optimizer = build_optimizer(model, config)
    loader = make_loader(
        bundle, bundle.train, batch_size=batch, device=device, train=True, augment=Augment(4)
    )
    x, y = next(iter(loader.epoch(0)))
    return config, model, optimizer, x.contiguous(memory_format=memory), y


def time_variant(model_name: str, args: argparse.Namespace, graph: bool, precision: str, fmt: str) -> float:
    """Images/s of ``steps`` steps of the variant (after its warm-up)."""
    import torch

    from depthlab.train.step import GRAPH_WARMUP, TrainStep

    device = torch.device(args.device)
    config, model, optimizer, x, y = build(
        model_name, args.channels, args.size, args.batch_size, args.device, fmt
    )
    step = TrainStep(model, model, optimizer, precision=precision, device=device,
                     label_smoothing=config.label_smoothing, graph=graph)  # fmt: skip
    for group in optimizer.param_groups:
        group["lr"] = 0.01
    for _ in range(max(args.warmup, GRAPH_WARMUP + 2)):
        step(x, y)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        for _ in range(args.steps):
            step(x, y)
        end.record()
        torch.cuda.synchronize()
        seconds = start.elapsed_time(end) / 1000
    else:
        began = time.perf_counter()
        for _ in range(args.steps):
            step(x, y)
        seconds = time.perf_counter() - began
    return args.steps * args.batch_size / seconds


def markdown_table(record: dict) -> str:
    """The docs' table of a results JSON written by this script: images/s of each model in each variant, with
    the ratio to eager fp32 channels-last."""
    lines = [
        "| model | step | precision | memory format | img/s | vs eager fp32 channels-last |",
        "|---|---|---|---|---:|---:|",
    ]
    for r in record["rows"]:
        lines.append(
            f"| {r['model']} | {r['step']} | {r['precision']} | {r['memory_format'].replace('_', '-')} | "
            f"{r['images_per_s']:,.0f} | {r['vs_eager_fp32_channels_last']:.2f}× |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet20,resnet56,plain56")
    parser.add_argument(
        "--shape", default="1,28", help="channels,size of the input (default Fashion-MNIST's)"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "train_step_cuda.json"))
    parser.add_argument("--markdown", action="store_true", help="print the docs' table of --json and exit")
    args = parser.parse_args()
    if args.markdown:
        print(markdown_table(json.loads(Path(args.json).read_text())))
        return
    args.channels, args.size = (int(v) for v in args.shape.split(","))

    import torch

    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("--device cuda needs CUDA")
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        where = torch.cuda.get_device_name()
    else:
        where = f"CPU, {torch.get_num_threads()} threads"
    graphs = (False, True) if args.device == "cuda" else (False,)
    variants = list(itertools.product(graphs, ("fp32", "bf16"), ("channels_last", "contiguous")))
    print(f"# {where}, torch {torch.__version__}; batch {args.batch_size}, input {args.channels}×{args.size}²; "
          f"{args.steps} steps, best of {args.repeats}", flush=True)  # fmt: skip
    rows = []
    for model_name in args.models.split(","):
        best: dict[tuple, float] = {}
        for _ in range(args.repeats):
            for v in variants:
                best[v] = max(best.get(v, 0.0), time_variant(model_name, args, *v))
        base = best[(False, "fp32", "channels_last")]
        for (graph, precision, fmt), ips in best.items():
            row = {"model": model_name, "step": "cuda-graph" if graph else "eager", "precision": precision,
                   "memory_format": fmt, "images_per_s": ips, "vs_eager_fp32_channels_last": ips / base}  # fmt: skip
            rows.append(row)
            print(f"{model_name:<10} {row['step']:<10} {precision:<5} {fmt:<13} {ips:>10,.0f} img/s "
                  f"{row['vs_eager_fp32_channels_last']:>5.2f}×", flush=True)  # fmt: skip
        top = max(best, key=best.get)
        print(
            f"# {model_name}: fastest {'cuda-graph' if top[0] else 'eager'} {top[1]} {top[2]} "
            f"({best[top]:,.0f} img/s, {best[top] / base:.2f}× eager fp32 channels-last)",
            flush=True,
        )
    record = {
        "benchmark": "train_step",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": where,
        "torch": torch.__version__,
        "batch_size": args.batch_size,
        "input": [args.channels, args.size, args.size],
        "rows": rows,
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
