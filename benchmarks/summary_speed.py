"""How long `depthlab summary resnet152` takes at 3×224×224 (issue 3: "finishes in seconds").

Claim: the summary of ResNet-152 (60M parameters, 11.5 GMACs) takes well under a second of work, because the
model is built and traced on the meta device — shapes only, no weights initialised, no arithmetic.

Measured:
* end to end — the command in a fresh process (`python -m depthlab summary resnet152 --input 3x224x224`,
  output discarded): interpreter start, `import torch`, building, tracing and printing the table;
* in process — after imports: building the model on the meta device, and `summarize` (the trace);
  for comparison, one real float32 forward pass on the CPU with no grad (what a summary would cost if it
  ran the model the ordinary way).
Each is repeated ``--repeat`` times; min and median are printed, in seconds.

Usage:
    python benchmarks/summary_speed.py              # resnet152, 3 repeats
    python benchmarks/summary_speed.py --model vgg16 --repeat 5 --no-real
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


RESULTS: dict[str, dict[str, float]] = {}


def report(label: str, times: list[float]) -> None:
    RESULTS[label] = {"min_s": min(times), "median_s": statistics.median(times), "n": len(times)}
    print(
        f"{label:<42} min {min(times):7.3f} s   median {statistics.median(times):7.3f} s   (n={len(times)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet152")
    parser.add_argument("--input", default="3x224x224")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-real", action="store_true", help="skip the real CPU forward pass")
    parser.add_argument(
        "--json",
        default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "summary_speed.json"),
        help="write the results (with machine, versions and date) here (default: benchmarks/results/)",
    )
    args = parser.parse_args()

    import torch

    import depthlab
    from depthlab.analysis import summarize
    from depthlab.cli.analysis import parse_input

    shape = parse_input(args.input)
    print(
        f"depthlab summary {args.model} --input {args.input}: python {platform.python_version()}, "
        f"torch {torch.__version__}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads"
    )
    command = [sys.executable, "-m", "depthlab", "summary", args.model, "--input", args.input]
    report(
        "end to end (fresh process, table printed)",
        timed(lambda: subprocess.run(command, check=True, stdout=subprocess.DEVNULL), args.repeat),
    )

    def build() -> torch.nn.Module:
        with torch.device("meta"):
            return depthlab.create_model(args.model, in_channels=shape[0])

    model = build()
    report("build on meta", timed(build, args.repeat))
    report("summarize (meta trace)", timed(lambda: summarize(model, shape), args.repeat))
    s = summarize(model, shape)
    print(f"  -> {s.params:,} params, {s.macs / 1e9:.3f} GMACs (FLOPs = 2 × MACs), {len(s.layers)} modules")
    if not args.no_real:
        real = depthlab.create_model(args.model, in_channels=shape[0]).eval()
        x = torch.zeros(1, *shape)

        def forward() -> None:
            with torch.no_grad():
                real(x)

        report("for comparison: one real fp32 CPU forward", timed(forward, args.repeat))
    if args.json:
        import datetime
        import json

        from depthlab.train.rundir import environment_info

        os.makedirs(os.path.dirname(args.json), exist_ok=True)
        record = {
            "benchmark": "summary_speed",
            "command": " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]]),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "environment": environment_info(torch.device("cpu"), 1),
            "load_average": os.getloadavg()[0],
            "model": args.model,
            "input": args.input,
            "params": s.params,
            "macs": s.macs,
            "timings": RESULTS,
        }
        with open(args.json, "w") as f:
            f.write(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
