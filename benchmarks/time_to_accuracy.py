"""Wall time for the default recipe to reach its test accuracy, measured end to end (issue 21).

Runs ``python -m depthlab train MODEL --data DATA --device DEVICE --out DIR [extra arguments]`` — the
default recipe (``TrainConfig``'s defaults: ResNet-20, Fashion-MNIST with 5,000 images held out, 12 epochs of
batch 128, SGD + Nesterov, one-cycle lr 0.2, label smoothing 0.1, crop + flip) — in a fresh process and
reports, from what the run wrote:

* ``process_seconds``: the command's wall time, interpreter start and imports included;
* ``run_seconds``: the run's own wall time (``summary.json``'s ``wall_time_s``: from the trainer's start,
  after imports and CUDA initialisation, to its final checkpoint — data loading, every evaluation and
  checkpoint included);
* ``train_seconds``: the time inside training steps alone (``train_time_s``);
* the final test accuracy (every test image), and the first evaluation step (and its run time, read from
  the ``images_per_s`` of the training rows up to it) at which the test accuracy reached ``--target``.

The claim it checks: the default ResNet-20 recipe on Fashion-MNIST reaches ≥ 93% test accuracy in
≤ 15 s of run wall time on one H200 (``--target 0.93 --budget 15``).

Usage:
    python benchmarks/time_to_accuracy.py --device cuda
    python benchmarks/time_to_accuracy.py --device cuda --extra "--set cuda_graph=false" --json /tmp/eager.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def markdown_table(record: dict) -> str:
    """The docs' table of a results JSON written by this script: the run, its accuracy and its wall time by
    phase."""
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in record["time_s"].items())
    verdict = "meets" if record["meets"] else "misses"
    return "\n".join([
        "| command | device | test accuracy | run wall | process wall | training steps | by phase | claim |",
        "|---|---|---:|---:|---:|---:|---|---|",
        f"| `{record['command']}` | {record['device']} ({record['precision']}, {record['train_step']}) | "
        f"{100 * record['final_test_accuracy']:.2f}% | {record['run_seconds']:.1f} s | "
        f"{record['process_seconds']:.1f} s | {record['train_seconds']:.1f} s ({record['images_per_s']:,.0f} img/s) | "
        f"{phases} | {verdict} ≥ {100 * record['target']:.0f}% in ≤ {record['budget_seconds']:g} s |",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--data", default="fashion-mnist")
    parser.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    parser.add_argument(
        "--extra", default="", help="more `depthlab train` arguments, one shell-quoted string"
    )
    parser.add_argument("--target", type=float, default=0.93, help="test accuracy to reach")
    parser.add_argument("--budget", type=float, default=15.0, help="run wall seconds the claim allows")
    parser.add_argument(
        "--json", default=None, help="default: benchmarks/results/time_to_accuracy_DEVICE.json"
    )
    parser.add_argument("--markdown", action="store_true", help="print the docs' table of --json and exit")
    args = parser.parse_args()
    out_json = Path(args.json or ROOT / "benchmarks" / "results" / f"time_to_accuracy_{args.device}.json")
    if args.markdown:
        print(markdown_table(json.loads(out_json.read_text())))
        return
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        argv = [sys.executable, "-m", "depthlab", "train", args.model, "--data", args.data, "--device",
                args.device, "--quiet", "--out", str(run_dir), *shlex.split(args.extra)]  # fmt: skip
        began = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        process_seconds = time.perf_counter() - began
        if done.returncode != 0:
            raise SystemExit(f"the run failed ({done.returncode}):\n{done.stderr[-3000:]}")
        summary = json.loads((run_dir / "summary.json").read_text())
        config = json.loads((run_dir / "config.json").read_text())
        environment = json.loads((run_dir / "environment.json").read_text())
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    out_at = argv.index("--out")
    shown = argv[3:out_at] + argv[out_at + 2 :]  # the command without its temporary --out
    tests = [r for r in rows if r["split"] == "test" and r.get("error") is not None]
    final = tests[-1]
    reached = next((r for r in tests if 1 - r["error"] >= args.target), None)
    record = {
        "benchmark": "time_to_accuracy",
        "command": " ".join(shlex.quote(a) for a in ["python", "-m", "depthlab", *shown]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "device": environment.get("gpu") or environment.get("cpu"),
        "torch": environment.get("torch"),
        "precision": config["precision"],
        "train_step": environment.get("train_step"),
        "epochs": config["epochs"],
        "batch_size": config["batch_size"],
        "process_seconds": round(process_seconds, 2),
        "run_seconds": summary["wall_time_s"],
        "train_seconds": summary["train_time_s"],
        "images_per_s": summary["images_per_s"],
        "time_s": summary.get("time_s", {}),  # where the run's wall time went (setup, steps, evaluation, ...)
        "final_test_accuracy": round(1 - final["error"], 4),
        "target": args.target,
        "first_step_at_target": reached["step"] if reached else None,
        "budget_seconds": args.budget,
        "meets": bool(reached) and summary["wall_time_s"] <= args.budget,
    }
    verdict = "meets" if record["meets"] else "misses"
    print(f"{args.model} on {args.data} ({record['device']}, {record['precision']}, {record['train_step']}): "
          f"test accuracy {100 * record['final_test_accuracy']:.2f}% after {record['epochs']} epochs; run "
          f"{record['run_seconds']:.1f} s (training steps {record['train_seconds']:.1f} s, "
          f"{record['images_per_s']:,.0f} img/s), process {record['process_seconds']:.1f} s; {verdict} the "
          f"claim (≥ {100 * args.target:.0f}% in ≤ {args.budget:g} s of run wall time)")  # fmt: skip
    print("run wall time by phase: " + ", ".join(f"{k} {v:.1f} s" for k, v in record["time_s"].items()))
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
