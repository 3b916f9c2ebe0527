"""Several workers on one study directory against one worker, measured in one run (issue 16).

The same ``depthlab experiment degradation --preset quick …`` command is run once alone on a fresh
directory, then ``--workers`` times at once on a second fresh directory. It reports, from what the processes
printed and wrote:

* how many times each run was trained (a run's "training for N iterations" line, summed over the workers;
  exactly once is the claim);
* whether every run's last checkpoint is bit-identical to the single worker's (safetensors, ``torch.equal``)
  and ``results.json`` equal apart from wall times;
* the wall time of each, and their ratio.

Every process runs torch with one intra-op thread (``OMP_NUM_THREADS=1``): a CPU run's bits depend on its
thread count, and the claim is that splitting the grid changes nothing but the time. On a machine with C
cores, N workers can gain at most min(N, C)× over one single-threaded worker.

By default the grid is the quick degradation preset cut to 1 seed and 60 iterations (``--seeds``,
``--steps``): 4 runs, a few minutes on 2 cores; ``--steps 240 --seeds 3`` is the full quick preset.

Usage:
    python benchmarks/study_workers.py                    # 3 workers, writes benchmarks/results/study_workers.json
    python benchmarks/study_workers.py --workers 2 --steps 240 --seeds 3
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def command(out: Path, seeds: int, steps: int) -> list[str]:
    return [
        sys.executable, "-m", "depthlab", "study", "degradation", "--preset", "quick", "--device", "cpu",
        "--seeds", str(seeds), "--set", f"steps={steps}", "--out", str(out),
    ]  # fmt: skip


def start(argv: list[str], tmp: Path) -> subprocess.Popen[str]:
    # Its own TMPDIR: the trainers a worker counts (for its share of the cores) are this benchmark's.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp), "COLUMNS": "200",
           "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}  # fmt: skip
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def run_all(argvs: list[list[str]], tmp: Path) -> tuple[float, list[str]]:
    began = time.perf_counter()
    procs = [start(a, tmp) for a in argvs]
    outputs = [p.communicate()[0] for p in procs]
    seconds = time.perf_counter() - began
    for p, out in zip(procs, outputs, strict=True):
        if p.returncode != 0:
            raise SystemExit(f"a worker exited {p.returncode}:\n{out}")
    return seconds, outputs


def last_weights(study_dir: Path) -> dict[str, dict]:
    from safetensors.torch import load_file

    out = {}
    for run in sorted(r for r in (study_dir / "runs").iterdir() if r.is_dir()):  # not the lock files
        pointer = json.loads((run / "checkpoints" / "last.json").read_text())
        out[run.name] = load_file(run / "checkpoints" / pointer["weights"])
    return out


def results_without_time(study_dir: Path) -> dict:
    results = json.loads((study_dir / "results.json").read_text())
    for run in results["runs"]:
        run.pop("wall_seconds", None)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "study_workers.json"))
    args = parser.parse_args()

    import torch

    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        one, many = tmp / "one", tmp / "many"
        one_s, one_out = run_all([command(one, args.seeds, args.steps)], tmp)
        print(f"one worker: {one_s:.1f} s", flush=True)
        many_s, many_out = run_all([command(many, args.seeds, args.steps)] * args.workers, tmp)
        print(f"one worker: {one_s:.1f} s; {args.workers} workers: {many_s:.1f} s", flush=True)
        runs = sorted(p.name for p in (one / "runs").iterdir() if p.is_dir())
        trained = {
            name: sum(len(re.findall(rf"\] {re.escape(name)}: training for \d+ iterations", o)) for o in many_out)
            for name in runs
        }  # fmt: skip
        by_worker = [
            sorted(n for n in runs if re.search(rf"\] {re.escape(n)}: training for", o)) for o in many_out
        ]
        a, b = last_weights(one), last_weights(many)
        identical = a.keys() == b.keys() and all(
            a[n].keys() == b[n].keys() and all(torch.equal(a[n][k], b[n][k]) for k in a[n]) for n in a
        )
        same_results = results_without_time(one) == results_without_time(many)
    record = {
        "benchmark": "study_workers",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "study": f"degradation quick, {args.seeds} seed(s), {args.steps} iterations, 1 torch thread per process",
        "workers": args.workers,
        "runs": runs,
        "times_trained": trained,
        "runs_by_worker": by_worker,
        "weights_identical": identical,
        "results_equal": same_results,
        "one_worker_seconds": round(one_s, 1),
        "workers_seconds": round(many_s, 1),
        "speedup": round(one_s / many_s, 2),
    }
    print(f"# {record['study']}; {os.cpu_count()} cores")
    print(f"one worker: {one_s:.1f} s; {args.workers} workers: {many_s:.1f} s; speedup {one_s / many_s:.2f}×")
    print(f"times each run was trained: {trained}")
    print(f"runs by worker: {by_worker}")
    print(f"last checkpoints bit-identical to one worker's: {identical}; results.json equal: {same_results}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    if not (identical and same_results and all(n == 1 for n in trained.values())):
        raise SystemExit("the workers did not reproduce the single worker's study exactly once per run")


if __name__ == "__main__":
    main()
