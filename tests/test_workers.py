"""Several workers on one study directory: the same ``depthlab experiment`` command started N times splits
the grid. Every run is trained exactly once, the weights and results equal those of one worker running the
grid alone, a worker killed with ``kill -9`` leaves a run that the next worker takes over and resumes, and a
worker that finds a run held waits for it. Also ``--dry-run``: the grid, its images and an estimated time.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from depthlab.cli import main
from depthlab.studies import get_study
from depthlab.studies.engine import plan_study, run_study
from lockholder import HOST, Holder
from studies import TINY, tiny_preset

STUDY = get_study("degradation")


def experiment_argv(out: Path, *more: str) -> list[str]:
    argv = ["experiment", "degradation", "--device", "cpu", "--out", str(out)]
    return argv + [x for item in [*TINY, *more] for x in ("--set", item)]


def start_worker(argv: list[str], tmp: Path) -> subprocess.Popen[str]:
    """``depthlab …`` in a new process: one torch thread (so every process computes the same bits), and its
    own TMPDIR (so the trainers it counts are this test's)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp), "COLUMNS": "200"}
    return subprocess.Popen([sys.executable, "-m", "depthlab", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)  # fmt: skip


def finish(worker: subprocess.Popen[str], timeout: float = 600) -> str:
    out, _ = worker.communicate(timeout=timeout)
    assert worker.returncode == 0, out
    return out


def weights(study_dir: Path) -> dict[str, dict[str, torch.Tensor]]:
    """Each run's last checkpoint, by run name."""
    out = {}
    for run in sorted((study_dir / "runs").iterdir()):
        if run.is_dir():
            pointer = json.loads((run / "checkpoints" / "last.json").read_text())
            out[run.name] = load_file(run / "checkpoints" / pointer["weights"])
    return out


def assert_same_weights(a: dict[str, dict[str, torch.Tensor]], b: dict[str, dict[str, torch.Tensor]]) -> None:
    assert a.keys() == b.keys() and a
    for name in a:
        assert a[name].keys() == b[name].keys()
        assert all(torch.equal(a[name][k], b[name][k]) for k in a[name]), name


def results_without_time(study_dir: Path) -> dict:
    results = json.loads((study_dir / "results.json").read_text())
    for run in results["runs"]:
        run.pop("wall_seconds")
    return results


def training_lines(output: str, name: str, verb: str = "training") -> int:
    return len(re.findall(rf"\] {re.escape(name)}: {verb} for \d+ iterations", output))


# ----------------------------------------------------------------------------------- in one process (fast)
def test_a_held_run_is_skipped_waited_for_and_taken_over_when_its_holder_dies(
    tmp_path: Path, one_thread
) -> None:
    """The worker trains what is free, skips what is held, waits, and takes over a run whose holder died."""
    root = tmp_path / "s"
    holder = Holder(root / "runs" / "plain20-s0")  # another worker is on the first run of the grid
    lines: list[str] = []

    def progress(line: str) -> None:
        lines.append(line)
        if line.startswith("waiting for 1 run(s)"):
            holder.kill()  # it dies mid-run (kill -9): the waiting worker must take the run over

    try:
        run_study(STUDY, tiny_preset("shatter_points=0"), root, device="cpu", progress=progress)
    finally:
        holder.close()
    text = "\n".join(lines)
    assert f"[1/2] plain20-s0: being trained by {HOST} pid {holder.pid}" in text
    assert text.index("resnet20-s0: training for") < text.index("waiting for 1 run(s)")  # free run first
    assert f"took over the lock of {root / 'runs' / 'plain20-s0'} from {HOST} pid {holder.pid}" in text
    assert training_lines(text, "plain20-s0") == 1 and training_lines(text, "resnet20-s0") == 1
    results = json.loads((root / "results.json").read_text())
    assert [r["status"] for r in results["runs"]] == ["completed", "completed"]


# ---------------------------------------------------------------------------------------------- dry run
def test_dry_run_counts_the_grid_and_its_images_and_times_each_model(
    tmp_path: Path, one_thread, capsys: pytest.CaptureFixture[str]
) -> None:
    preset = tiny_preset("seeds=3", "steps=7", "batch_size=8")
    plan = plan_study(STUDY, preset, device="cpu")
    # The grid: depth 20, plain and residual, three seeds each; 7 iterations of 8 images per run.
    assert sorted(r.name for r in plan.runs) == sorted(
        f"{m}20-s{s}" for m in ("plain", "resnet") for s in range(3)
    )
    assert plan.total_images == 6 * 7 * 8 and plan.total_steps == 6 * 7
    # One timing per distinct model and keywords (the tiny preset derives from quick: width 0.5).
    keys = [f'{m}20 {{"width": 0.5}}' for m in ("plain", "resnet")]
    assert sorted(plan.timings) == keys
    for t in plan.timings.values():
        assert 0 < t.seconds_per_step < 60 and t.timed == 3 and t.warmup == 1
    estimate = plan.estimated_seconds()
    by_hand = sum(7 * plan.timings[m].seconds_per_step for m in keys for _ in range(3))
    assert math.isfinite(estimate) and estimate > 0 and estimate == pytest.approx(by_hand)

    out = tmp_path / "never"
    assert main([*experiment_argv(out, "seeds=3", "steps=7", "batch_size=8"), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "6 runs, 42 training steps, 336 training images" in text
    assert "estimated wall time of the training steps: ~" in text and "an estimate" in text
    assert not out.exists()  # a dry run writes nothing


# ------------------------------------------------------------------------------------- processes (slow)
@pytest.mark.slow
def test_three_workers_train_each_run_once_with_the_weights_of_one_worker(tmp_path: Path) -> None:
    more = ("seeds=3",)  # 6 runs: plain20 and resnet20, 3 seeds
    solo_dir, shared = tmp_path / "solo", tmp_path / "shared"
    start = time.perf_counter()
    solo = finish(start_worker(experiment_argv(solo_dir, *more), tmp_path))
    solo_s = time.perf_counter() - start

    start = time.perf_counter()
    workers = [start_worker(experiment_argv(shared, *more), tmp_path) for _ in range(3)]
    outputs = [finish(w) for w in workers]
    shared_s = time.perf_counter() - start
    print(f"\n1 worker: {solo_s:.1f} s; 3 workers: {shared_s:.1f} s (6 tiny runs, 2 cores)")
    everything = "\n".join(outputs)
    names = sorted(weights(solo_dir))
    assert len(names) == 6
    for name in names:  # each run trained by exactly one worker, never resumed by another
        assert training_lines(everything, name) == 1, everything
        assert training_lines(everything, name, "resuming") == 0, everything
        assert training_lines(solo, name) == 1
    assert sum(1 for out in outputs if re.search(r": training for", out)) >= 2  # the grid was split
    assert_same_weights(weights(shared), weights(solo_dir))
    assert results_without_time(shared) == results_without_time(solo_dir)


@pytest.mark.slow
def test_a_worker_killed_mid_run_is_resumed_by_the_next(tmp_path: Path) -> None:
    more = ("steps=60",)  # a checkpoint every 2 iterations: time enough to kill it in between
    solo_dir, shared = tmp_path / "solo", tmp_path / "shared"
    finish(start_worker(experiment_argv(solo_dir, *more), tmp_path))

    first = start_worker(experiment_argv(shared, *more), tmp_path)
    pointer = shared / "runs" / "plain20-s0" / "checkpoints" / "last.json"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if json.loads(pointer.read_text())["step"] >= 4:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    first.kill()  # kill -9, mid-run
    first.communicate()
    summary = json.loads((shared / "runs" / "plain20-s0" / "summary.json").read_text())
    assert summary["status"] == "running"  # it really died mid-run

    out = finish(start_worker(experiment_argv(shared, *more), tmp_path))
    assert f"took over the lock of {shared / 'runs' / 'plain20-s0'}" in out and f"pid {first.pid}" in out
    assert training_lines(out, "plain20-s0", "resuming") == 1
    assert_same_weights(weights(shared), weights(solo_dir))
    assert results_without_time(shared) == results_without_time(solo_dir)
