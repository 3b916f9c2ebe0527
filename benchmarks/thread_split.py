"""One process with every core's thread, or one single-thread process per core: which trains more images
per second? Measured in one run, for the degradation study's nets at the paper's width and at width 0.5.

Claim (the Makefile's `make demo`): on this 2-core CPU, the quick degradation study's nets at width 0.5
train more images per second as one single-thread worker per core than as one process with two threads,
which is why `make demo` runs one worker per core with ``OMP_NUM_THREADS=1``.

For each (model, width): ``together`` times ``--steps`` SGD steps of batch 128 on a 1×28×28 batch (the
study's Fashion-MNIST input) in one process with ``torch.get_num_threads() == cores``; ``split`` starts
``cores`` processes with one thread each at once and times the same steps in each; the throughput of
``split`` is the sum of theirs. Each configuration is measured ``--repeats`` times, interleaved, and the best
kept (other work only ever slows a measurement down). The ratio is split ÷ together.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "thread_split.json"


def child(model: str, width: float, steps: int, warmup: int) -> float:
    """Images per second of ``steps`` timed SGD steps in this process (its thread count as set)."""
    import torch

    import depthlab

    torch.manual_seed(0)
    net = depthlab.create_model(model, num_classes=10, in_channels=1, width=width)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return 128 * steps / (time.perf_counter() - start)


def measure(model: str, width: float, threads: int, processes: int, args: argparse.Namespace) -> float:
    """Summed images/s of ``processes`` children started at once, each with ``threads`` torch threads."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, __file__, "--child", f"{model},{width},{args.steps},{args.warmup}"]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    rates = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"child {command} failed with exit code {p.returncode}")
        rates.append(float(out.strip()))
    return sum(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="resnet20,resnet56")
    parser.add_argument("--widths", default="1,0.5")
    parser.add_argument("--steps", type=int, default=15, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps per process")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats; the best is kept")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, width, steps, warmup = args.child.split(",")
        print(child(model, float(width), int(steps), int(warmup)))
        return
    cores = os.cpu_count() or 1
    rows = []
    for model in args.models.split(","):
        for width in map(float, args.widths.split(",")):
            together, split = 0.0, 0.0
            for _ in range(args.repeats):
                together = max(together, measure(model, width, cores, 1, args))
                split = max(split, measure(model, width, 1, cores, args))
            row = {
                "model": model,
                "width": width,
                "together_images_per_s": round(together, 1),
                "split_images_per_s": round(split, 1),
                "ratio": round(split / together, 2),
            }
            rows.append(row)
            print(
                f"{model} width {width:g}: {cores} threads in 1 process {together:.0f} images/s, "
                f"{cores} processes of 1 thread {split:.0f} images/s: {split / together:.2f}×",
                flush=True,
            )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "thread_split",
                "command": "thread_split.py " + " ".join(sys.argv[1:]),
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "cpu_count": cores,
                "batch": 128,
                "input": [1, 28, 28],
                "steps": args.steps,
                "warmup": args.warmup,
                "repeats": args.repeats,
                "load_average_1min_at_end": os.getloadavg()[0],
                "results": rows,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
