"""Shared fixtures of the study tests (degradation, inception-aux, vgg-depth, the engine and the report):
one tiny study per study type, run once per test session, and hand-made runs for findings tests."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from depthlab.analysis.gradients import BlockStat, Diagnostics, LayerStat
from depthlab.studies import get_study
from depthlab.studies.engine import StudyResult, StudyRun, apply_preset_overrides, run_study

# A degradation study small enough for the default suite: 2 runs of 4 iterations on 8×8 synthetic images.
TINY = [
    "data=synthetic:channels=1,size=8,train=320,test=64,classes=4",
    "depths=20",
    "steps=4",
    "batch_size=16",
    "eval_every=2",
    "log_every=1",
    "val_size=64",
    "train_subset=128",
    "eval_subset=32",
    "diag_batch=8",
    "seeds=1",
    "shatter_points=16",
]


def tiny_preset(*more: str) -> Any:
    return apply_preset_overrides(get_study("degradation").presets["quick"], [*TINY, *more])


@functools.cache
def tiny_study() -> tuple[Path, tuple[str, ...], dict[str, dict[str, torch.Tensor]]]:
    """One tiny degradation study, run once per session: (directory, progress lines, the trainer's initial
    weights by model name)."""
    root = Path(tempfile.mkdtemp(prefix="depthlab-study-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    from depthlab.train import loop

    initial: dict[str, dict[str, torch.Tensor]] = {}
    original = loop.build_model

    def recording_build_model(config, bundle):  # what the trainer starts from, for the init check
        model = original(config, bundle)
        if "norm" not in config.model_kwargs:  # not the BN-free twin (the width is every net's)
            initial[config.model] = {k: v.clone() for k, v in model.state_dict().items()}
        return model

    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop, "build_model", recording_build_model)
        run_study(get_study("degradation"), tiny_preset(), root / "study", device="cpu", overrides=TINY,
                  progress=lines.append)  # fmt: skip
    return root / "study", tuple(lines), initial


def run_tiny(study: str, overrides: list[str], root: Path) -> tuple[Path, tuple[str, ...]]:
    """Run ``study``'s quick preset with ``overrides`` into ``root`` on the CPU: (directory, progress lines)."""
    s = get_study(study)
    preset = apply_preset_overrides(s.presets["quick"], overrides)
    lines: list[str] = []
    run_study(s, preset, root, device="cpu", overrides=overrides, progress=lines.append)
    return root, tuple(lines)


# An inception-aux study small enough for the slow suite: 3 runs (aux 0.3, aux 0, no heads) of 4 iterations on
# 32×32 synthetic images.
TINY_AUX = [
    "data=synthetic:channels=1,size=32,train=320,test=64,classes=4",
    "steps=4", "batch_size=8", "eval_every=2", "early_step=2", "log_every=1", "val_size=64",
    "train_subset=64", "eval_subset=16", "test_subset=32", "diag_batch=4", "seeds=1", "no_heads=true",
]  # fmt: skip
# A vgg-depth study: A without BN and A with BN, 4 iterations on 16×16 synthetic images.
TINY_VGG = [
    "data=synthetic:channels=1,size=16,train=320,test=64,classes=4",
    "plain=A", "bn=A", "steps=4", "batch_size=8", "eval_every=2", "log_every=1", "val_size=64",
    "train_subset=64", "eval_subset=16", "test_subset=32", "seeds=1",
]  # fmt: skip


@functools.cache
def tiny_aux_study() -> tuple[Path, tuple[str, ...]]:
    root = Path(tempfile.mkdtemp(prefix="depthlab-aux-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return run_tiny("inception-aux", TINY_AUX, root / "study")


@functools.cache
def tiny_vgg_study() -> tuple[Path, tuple[str, ...]]:
    root = Path(tempfile.mkdtemp(prefix="depthlab-vgg-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return run_tiny("vgg-depth", TINY_VGG, root / "study")


# ------------------------------------------------------------------------------------- hand-made runs
def diag(block_grads: list[float], *, layer_grads: list[float] | None = None, norms: list[float] | None = None,
         responses: list[float] | None = None, mode: str = "train",
         numels: list[int] | None = None) -> dict[str, Any]:  # fmt: skip
    """A Diagnostics dict with the given block-output gradient norms (first block first); ``numels``: each
    block output's size (default 1, so the per-element RMS equals the norm)."""
    from depthlab.analysis.gradients import ResponseStat

    layer_grads = layer_grads or [1.0, 1.0]
    layers = tuple(
        LayerStat(f"stages.{min(i - 1, 2)}.0.branch.0.conv", i, "conv", (3, 3), g, 1.0, 1.0)
        for i, g in enumerate(layer_grads, 1)
    )
    norms = norms or [1.0] * len(block_grads)
    numels = numels or [1] * len(block_grads)
    blocks = tuple(
        BlockStat(f"stages.0.{i}", i, False, g, 1.0, None, n, k)
        for i, (g, n, k) in enumerate(zip(block_grads, norms, numels, strict=True), 1)
    )
    resp = tuple(ResponseStat(f"r{i}", i, s) for i, s in enumerate(responses or [], 1))
    return Diagnostics(mode, 8, 2.3, layers, blocks, resp).to_dict()


def make_run(
    model: str,
    train: float,
    test: float,
    *,
    seed: int = 0,
    images: int = 2000,
    test_images: int = 10000,
    diagnostics: Mapping[str, Any] | None = None,
    steps: int = 240,
    running: tuple[tuple[int, float], ...] = (),
) -> StudyRun:
    """A completed degradation run as read back, with eval-mode training error ``train`` (and the running
    training error rows ``running``, if given)."""
    from depthlab.studies.degradation import label, parse_model

    depth, residual = parse_model(model)
    return StudyRun(
        run_dir=Path(f"/x/{model}-s{seed}"),
        name=f"{model}-s{seed}",
        model=model,
        condition=label(depth, residual),
        factors={"depth": depth, "residual": residual},
        seed=seed,
        status="completed",
        step=steps,
        curves={
            "train_eval": ((steps, train),),
            "test": ((steps, test),),
            **({"train": running} if running else {}),
        },
        final={"train_eval": train, "test": test},
        images={"train_eval": images, "test": test_images},
        wall_seconds=1.0,
        diagnostics=dict(diagnostics or {}),
        config={"model": model, "steps": steps, "seed": seed},
        environment={},
        data={},
        images_per_s=0.0,
    )


def study_run(
    name: str,
    condition: str,
    factors: Mapping[str, Any],
    *,
    seed: int = 0,
    final: Mapping[str, float],
    images: Mapping[str, int],
    curves: Mapping[str, tuple[tuple[int, float], ...]] | None = None,
    diagnostics: Mapping[str, Any] | None = None,
    steps: int = 200,
    model: str = "model",
    data: Mapping[str, Any] | None = None,
) -> StudyRun:
    """A completed run of any study as read back: final errors by split, the images behind them, curves
    (default: only the final points), diagnostics and the summary's ``data`` (e.g. ``num_classes``)."""
    return StudyRun(
        run_dir=Path(f"/x/{name}"), name=name, model=model, condition=condition, factors=dict(factors), seed=seed,
        status="completed", step=steps,
        curves=dict(curves) if curves is not None else {k: ((steps, v),) for k, v in final.items()},
        final=dict(final), images=dict(images), wall_seconds=1.0, diagnostics=dict(diagnostics or {}),
        config={"model": model, "steps": steps, "seed": seed}, environment={}, data=dict(data or {}),
        images_per_s=0.0,
    )  # fmt: skip


def make_result(runs: list[StudyRun], root: Path | None = None, study: str = "degradation") -> StudyResult:
    return StudyResult(get_study(study), None, len({r.seed for r in runs}), (), root or Path("/nonexistent"),
                       tuple(runs))  # fmt: skip


def texts(result: StudyResult, study: str = "degradation") -> list[str]:
    return [f.text for f in get_study(study).findings(result)]


# ------------------------------------------------------------------------------- statistics by hand
def holm_by_hand(raw: Mapping[str, float]) -> dict[str, float]:
    """Holm's step-down adjustment written out: sorted ascending, the i-th smallest of m times m − i (from
    0), each raised to the largest before it and capped at 1."""
    out, running = {}, 0.0
    for i, key in enumerate(sorted(raw, key=lambda k: raw[k])):
        running = max(running, min(1.0, (len(raw) - i) * raw[key]))
        out[key] = running
    return out


def margin_tests(a: Sequence[float], b: Sequence[float], margin: float) -> tuple[float, float]:
    """(p_support, p_contradict) of the claim a − b > −margin, by scipy: one-sided Welch tests of
    (a + margin) − b above and below 0."""
    from scipy import stats as sps

    shifted = np.asarray(a, dtype=float) + margin
    return (
        float(sps.ttest_ind(shifted, b, equal_var=False, alternative="greater").pvalue),
        float(sps.ttest_ind(shifted, b, equal_var=False, alternative="less").pvalue),
    )
