"""The CUDA path: bf16 autocast, cudnn.benchmark, ``--compile``, evaluation on the GPU, and resuming.

Marked ``gpu``: deselected by default, run with ``make test-gpu`` (``pytest -m gpu``); each test skips when
CUDA is absent. On the GPU results are not bit-identical (cudnn.benchmark picks algorithms per run, bf16
autocast rounds), so a resumed run is compared with an uninterrupted one within a tolerance instead of
exactly as on the CPU. DEPTHLAB_GPU_TEST_DEVICE=cpu runs the same tests on the CPU (to check the tests
themselves on a machine without a GPU; the CPU path is exact, so the tolerances hold trivially).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from depthlab.train import TrainConfig, TrainEvent, evaluate_run, load_run, read_metrics, train

DEVICE = os.environ.get("DEPTHLAB_GPU_TEST_DEVICE", "cuda")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="needs CUDA"),
]

# A gentle recipe (lr 0.01, cosine, no label smoothing): rounding differences between runs then stay small
# instead of being amplified by an unstable start, so a tolerance can tell a faithful resume from a wrong one.
CONFIG = TrainConfig(
    model="resnet20", data="synthetic:size=16,train=1280,test=256", epochs=None, steps=20, batch_size=64,
    lr=0.01, schedule="cosine", label_smoothing=0.0, log_every=5, eval_every=10, checkpoint_every=10,
    device=DEVICE,
)  # fmt: skip
# Tolerances between two runs of the same 20 steps. Measured on the CPU, --compile vs eager (fp32 rounding
# differences, amplified by training) moved the weights by 0.4% and the losses by 0.0025, while another seed
# moves them by 92% and 0.10; bf16 autocast and cudnn.benchmark's algorithm choice add rounding noise on top.
WEIGHT_RTOL = 3e-2  # ‖w_a − w_b‖ / ‖w_b‖ over all floating-point tensors
LOSS_ATOL = 3e-2


def _weights(run: Path) -> dict[str, torch.Tensor]:
    pointer = json.loads((run / "checkpoints" / "last.json").read_text())
    return load_file(run / "checkpoints" / pointer["weights"])


def _distance(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Relative distance of two state dicts: ‖a − b‖ / ‖b‖ over every floating-point tensor together."""
    assert a.keys() == b.keys()
    keys = [k for k in b if b[k].is_floating_point()]
    num = sum(float((a[k].double() - b[k].double()).square().sum()) for k in keys)
    return (num / sum(float(b[k].double().square().sum()) for k in keys)) ** 0.5


def _close_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert _distance(a, b) <= WEIGHT_RTOL, _distance(a, b)
    for key in b:
        if not b[key].is_floating_point():
            assert torch.equal(a[key], b[key]), key  # BN's step counters


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gpu") / "uninterrupted"
    summary = train(CONFIG, out)
    assert summary.status == "completed"
    return out


def test_trains_twenty_steps_on_the_device(uninterrupted: Path) -> None:
    env = json.loads((uninterrupted / "environment.json").read_text())
    assert env["device"].startswith(DEVICE)
    if DEVICE == "cuda":
        assert env["gpu"] and env["cuda"] and env["cudnn"]
    config, summary = load_run(uninterrupted)
    assert summary.step == 20 and summary.images_per_s > 0
    rows = read_metrics(uninterrupted)
    train_rows = [r for r in rows if r["split"] == "train"]
    assert [r["step"] for r in train_rows] == [5, 10, 15, 20]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    assert train_rows[-1]["loss"] < train_rows[0]["loss"]  # it learns (the synthetic task is easy)
    assert all(torch.isfinite(t).all() for t in _weights(uninterrupted).values() if t.is_floating_point())


def test_resume_matches_the_uninterrupted_run_within_tolerance(uninterrupted: Path, tmp_path: Path) -> None:
    out = tmp_path / "resumed"

    def ctrl_c_at_12(event: TrainEvent) -> None:
        if event.kind == "step" and event.step == 12:
            os.kill(os.getpid(), signal.SIGINT)  # the trainer checkpoints after the next step and stops

    summary = train(CONFIG, out, callback=ctrl_c_at_12)
    assert summary.status == "interrupted" and 12 <= summary.step < 20
    resumed = train(CONFIG, out, resume=True)
    assert resumed.status == "completed" and resumed.step == 20
    _close_weights(_weights(out), _weights(uninterrupted))
    # The tolerance tells runs apart: another seed lands far outside it.
    other = train(dataclasses.replace(CONFIG, seed=1), tmp_path / "seed1")
    assert other.status == "completed"
    assert _distance(_weights(tmp_path / "seed1"), _weights(uninterrupted)) > 5 * WEIGHT_RTOL
    ours, theirs = read_metrics(out), read_metrics(uninterrupted)
    assert [(r["step"], r["split"]) for r in ours] == [(r["step"], r["split"]) for r in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert abs(a["loss"] - b["loss"]) <= LOSS_ATOL, (a, b)


def test_eval_on_the_device_agrees_with_the_cpu(uninterrupted: Path) -> None:
    on_device = evaluate_run(uninterrupted, checkpoint="last", device=DEVICE)
    on_cpu = evaluate_run(uninterrupted, checkpoint="last", device="cpu")
    assert on_device["images"] == on_cpu["images"] == 256
    assert abs(on_device["loss"] - on_cpu["loss"]) <= LOSS_ATOL  # bf16 autocast vs fp32
    assert abs(on_device["error"] - on_cpu["error"]) <= 4 / 256  # a few borderline images may flip


@pytest.mark.parametrize("compile", [False, True])
def test_compile_on_and_off(tmp_path: Path, uninterrupted: Path, compile: bool) -> None:
    config = dataclasses.replace(CONFIG, compile=compile)
    summary = train(config, tmp_path / "run")
    assert summary.status == "completed" and summary.step == 20
    # A compiled model computes the same function: the same run within the tolerance of two GPU runs.
    _close_weights(_weights(tmp_path / "run"), _weights(uninterrupted))
    model_eval = evaluate_run(tmp_path / "run", checkpoint="last", device=DEVICE)
    assert 0 <= model_eval["error"] <= 1 and model_eval["images"] == 256
