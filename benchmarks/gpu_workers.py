"""Several training processes sharing one GPU against one process, measured in one run (issue 21).

A study's workers (``make study WORKERS=N DEVICE=cuda``) are separate processes, each training one run
at a time on the same GPU. This benchmark measures what that buys: for each N in ``--workers``, N
processes each train ``--model`` exactly as the trainer does (:class:`depthlab.train.step.TrainStep`:
the in-memory batches of a synthetic dataset with the shape of Fashion-MNIST's training split, crop + flip,
SGD + Nesterov, label smoothing, the run's precision, a CUDA graph unless ``--eager``). Every process
builds its model and warms up first, then all of them train during the same ``--seconds`` window (they
wait for a start time agreed in advance); each counts the steps it finished in the window (synchronising
the GPU at both ends). The aggregate images/s of N processes is the sum; the speedup is its ratio to one
process's.

Each process gets ``cores // N`` torch threads (at least one), as the study's workers do.

Usage:
    python benchmarks/gpu_workers.py                                  # resnet20, 1, 2, 4 workers
    python benchmarks/gpu_workers.py --model resnet56 --workers 1,4,8 --seconds 10
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = "synthetic:channels=1,size=28,train=55000,test=128"


def child(spec: dict) -> None:
    """One worker: build, warm up, wait for the start time, train for the window, print one JSON line."""
    import torch

    from depthlab.data import Augment, make_loader
    from depthlab.train import TrainConfig
    from depthlab.train.optim import build_optimizer
    from depthlab.train.precision import resolve_precision
    from depthlab.train.setup import build_model, prepare_bundle
    from depthlab.train.step import GRAPH_WARMUP, TrainStep

    torch.set_num_threads(spec["threads"])
    dev = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    config = TrainConfig(model=spec["model"], data=DATA, val_size=0, batch_size=spec["batch"],
                         precision=spec["precision"], device="cuda")  # fmt: skip
    bundle = prepare_bundle(config)
    model = build_model(config, bundle).to(device=dev, memory_format=torch.channels_last).train()
    optimizer = build_optimizer(model, config)
    loader = make_loader(bundle, bundle.train, batch_size=config.batch_size, device=dev, train=True,
                         augment=Augment(4), seed=spec["index"])  # fmt: skip
    precision = resolve_precision(config.precision, dev).used
    step = TrainStep(model, model, optimizer, precision=precision, device=dev, aux_weight=config.aux_weight,
                     label_smoothing=config.label_smoothing, graph=spec["graph"])  # fmt: skip
    batches = loader.epoch(0)

    def one() -> None:
        nonlocal batches
        try:
            x, y = next(batches)
        except StopIteration:
            batches = loader.epoch(1)
            x, y = next(batches)
        for group in optimizer.param_groups:
            group["lr"] = 0.05
        step(x, y)

    for _ in range(GRAPH_WARMUP + 5):
        one()
    torch.cuda.synchronize()
    while time.time() < spec["start_at"]:
        time.sleep(0.001)
    began, steps = time.perf_counter(), 0
    while time.perf_counter() - began < spec["seconds"]:
        one()
        steps += 1
        if steps % 20 == 0:
            torch.cuda.synchronize()  # count only finished work: the queue may not run far ahead
    torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    print(json.dumps({"index": spec["index"], "steps": steps, "seconds": seconds,
                      "images_per_s": steps * spec["batch"] / seconds, "precision": precision,
                      "mode": step.mode}), flush=True)  # fmt: skip


def run_workers(n: int, args: argparse.Namespace, threads: int) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": str(threads)}  # fmt: skip
    start_at = time.time() + args.setup_seconds
    procs = []
    for i in range(n):
        spec = {"index": i, "model": args.model, "batch": args.batch_size, "precision": args.precision,
                "graph": not args.eager, "seconds": args.seconds, "start_at": start_at, "threads": threads}  # fmt: skip
        procs.append(subprocess.Popen([sys.executable, __file__, "--child", json.dumps(spec)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))  # fmt: skip
    results = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"a worker failed:\n{err[-3000:]}")
        results.append(json.loads(out.strip().splitlines()[-1]))
    late = [r for r in results if r["seconds"] > args.seconds * 1.5]
    if late:
        raise SystemExit(f"{len(late)} worker(s) overran the window: raise --setup-seconds")
    return results


def markdown_table(record: dict) -> str:
    """The docs' table of a results JSON written by this script: aggregate images/s of N processes."""
    lines = [
        f"| workers ({record['model']}, batch {record['batch_size']}) | threads each | img/s, each | aggregate img/s | vs one |",
        "|---:|---:|---|---:|---:|",
    ]
    for r in record["rows"]:
        each = ", ".join(f"{v:,.0f}" for v in r["per_worker"])
        speed = f"{r['speedup_vs_one']:.2f}×" if r["speedup_vs_one"] is not None else "—"
        lines.append(
            f"| {r['workers']} | {r['threads_per_worker']} | {each} | {r['aggregate_images_per_s']:,.0f} | {speed} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--workers", default="1,2,4", help="comma-separated process counts")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument("--eager", action="store_true", help="no CUDA graph")
    parser.add_argument("--seconds", type=float, default=6.0, help="the timed window")
    parser.add_argument("--setup-seconds", type=float, default=25.0,
                        help="time allowed for every worker to start, load and warm up before the window")  # fmt: skip
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "gpu_workers.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--markdown", action="store_true", help="print the docs' table of --json and exit")
    args = parser.parse_args()
    if args.markdown:
        print(markdown_table(json.loads(Path(args.json).read_text())))
        return
    if args.child:
        child(json.loads(args.child))
        return
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("gpu_workers.py needs CUDA")
    cores = os.cpu_count() or 1
    rows = []
    print(
        f"# {torch.cuda.get_device_name()}, {cores} cores, torch {torch.__version__}; {args.model}, batch "
        f"{args.batch_size}, {'eager' if args.eager else 'CUDA graph'}, {args.seconds:g} s window",
        flush=True,
    )
    base = None
    for n in (int(w) for w in args.workers.split(",")):
        threads = max(1, cores // n)
        results = run_workers(n, args, threads)
        total = sum(r["images_per_s"] for r in results)
        base = base or (total if n == 1 else None)
        row = {"workers": n, "threads_per_worker": threads, "aggregate_images_per_s": total,
               "per_worker": [r["images_per_s"] for r in results], "precision": results[0]["precision"],
               "mode": results[0]["mode"], "speedup_vs_one": total / base if base else None}  # fmt: skip
        rows.append(row)
        per = ", ".join(f"{v:,.0f}" for v in row["per_worker"])
        speed = f"{row['speedup_vs_one']:.2f}×" if base else "n/a"
        print(f"{n} worker(s): {total:,.0f} img/s aggregate ({per}); {speed} one worker", flush=True)
    record = {
        "benchmark": "gpu_workers",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cores": cores,
        "model": args.model,
        "batch_size": args.batch_size,
        "rows": rows,
    }
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
