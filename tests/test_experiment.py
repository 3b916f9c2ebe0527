"""The degradation study: presets, the study directory, resuming, and findings computed from data."""

from __future__ import annotations

import atexit
import dataclasses
import functools
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest
import torch

from depthlab.analysis.gradients import BlockStat, Diagnostics, LayerStat
from depthlab.experiments.degradation import (
    PRESETS,
    DegradationPreset,
    StudyRun,
    apply_preset_overrides,
    compute_findings,
    initial_model,
    parse_model,
    read_study,
    run_degradation,
)

# A study small enough for the default suite: 2 runs of 4 iterations on 8×8 synthetic images (~10 s).
TINY = [
    "dataset=synthetic:channels=1,size=8,train=320,test=64,classes=4",
    "depths=20",
    "steps=4",
    "batch_size=16",
    "eval_every=2",
    "log_every=1",
    "val_size=64",
    "diag_batch=8",
]
RESULT_KEYS = {"preset", "dataset", "runs", "findings"}
RUN_KEYS = {
    "model",
    "depth",
    "residual",
    "seed",
    "final_train_error",
    "final_val_error",
    "final_test_error",
    "wall_seconds",
}


def tiny_preset(*more: str) -> DegradationPreset:
    return apply_preset_overrides(PRESETS["quick"], [*TINY, *more])


@functools.cache
def tiny_study() -> tuple[Path, tuple[str, ...], dict[str, dict[str, torch.Tensor]]]:
    """One tiny study, run once per test session and shared by test_experiment and test_report:
    (directory, progress lines, the trainer's initial weights by model name)."""
    root = Path(tempfile.mkdtemp(prefix="depthlab-study-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    from depthlab.train import loop

    initial: dict[str, dict[str, torch.Tensor]] = {}
    original = loop.build_model

    def recording_build_model(config, bundle):  # what the trainer starts from, for the init check
        model = original(config, bundle)
        initial[config.model] = {k: v.clone() for k, v in model.state_dict().items()}
        return model

    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop, "build_model", recording_build_model)
        run_degradation(tiny_preset(), root / "study", device="cpu", overrides=TINY, progress=lines.append)
    return root / "study", tuple(lines), initial


def test_presets_declare_the_recipes() -> None:
    quick, paper = PRESETS["quick"], PRESETS["paper"]
    assert quick.dataset == "fashion-mnist" and quick.depths == (20, 56) and not quick.augment
    assert PRESETS["standard"].depths == (20, 32, 44, 56)
    # He et al. 2015 §4.2: batch 128, lr 0.1 ÷10 at 32k and 48k, stop at 64k, wd 1e-4, momentum 0.9, 45k/5k.
    assert (paper.dataset, paper.batch_size, paper.lr, paper.steps) == ("cifar10", 128, 0.1, 64000)
    assert (paper.schedule, paper.milestones) == ("step", (32000.0, 48000.0))
    assert (paper.weight_decay, paper.momentum, paper.val_size, paper.augment) == (1e-4, 0.9, 5000, True)
    config = paper.train_config("plain56", 3)
    assert (config.steps, config.epochs, config.seed, config.label_smoothing) == (64000, None, 3, 0.0)
    assert config.model_kwargs == {}  # CIFAR nets default to option-A shortcuts, as in the paper
    with pytest.raises(dataclasses.FrozenInstanceError):
        quick.steps = 1  # type: ignore[misc]


def test_overrides_are_typed_and_unknown_keys_rejected() -> None:
    p = apply_preset_overrides(
        PRESETS["quick"], ["steps=50", "depths=20,32", "augment=true", "val_size=none"]
    )
    assert (p.steps, p.depths, p.augment, p.val_size) == (50, (20, 32), True, None)
    with pytest.raises(ValueError, match="unknown preset key 'stpes'.*steps"):
        apply_preset_overrides(PRESETS["quick"], ["stpes=5"])
    with pytest.raises(ValueError, match="steps='many'"):
        apply_preset_overrides(PRESETS["quick"], ["steps=many"])
    with pytest.raises(ValueError, match="6n\\+2"):
        apply_preset_overrides(PRESETS["quick"], ["depths=21"])


def test_study_directory_and_results_schema() -> None:
    root, lines, _ = tiny_study()
    results = json.loads((root / "results.json").read_text())
    assert set(results) == RESULT_KEYS
    assert results["preset"] == "quick" and results["dataset"].startswith("synthetic")
    assert [r["model"] for r in results["runs"]] == ["plain20", "resnet20"]
    for r in results["runs"]:
        assert set(r) == RUN_KEYS
        assert r["depth"] == 20 and r["seed"] == 0 and r["residual"] == (r["model"] == "resnet20")
        assert all(0 <= r[k] <= 1 for k in ("final_train_error", "final_val_error", "final_test_error"))
        assert r["wall_seconds"] > 0
    assert results["findings"] and all(isinstance(s, str) and s.endswith(".") for s in results["findings"])
    for model in ("plain20", "resnet20"):
        run = root / "runs" / f"{model}-s0"
        assert {"config.json", "summary.json", "metrics.jsonl", "diagnostics.json"} <= {
            p.name for p in run.iterdir()
        }
        diags = json.loads((run / "diagnostics.json").read_text())
        assert set(diags) == {"init", "init_no_bn", "end", "end_eval"}
        assert diags["end_eval"]["mode"] == "eval" and len(diags["init"]["layers"]) == 20
    # results.json agrees with the run directories it was computed from.
    train_rows = [json.loads(x) for x in (root / "runs/plain20-s0/metrics.jsonl").read_text().splitlines()]
    last_train = [r for r in train_rows if r["split"] == "train"][-1]
    assert results["runs"][0]["final_train_error"] == last_train["error"]
    assert any("training for 4 iterations" in line for line in lines)


def test_init_diagnostics_use_the_trainers_initial_weights() -> None:
    root, _, initial = tiny_study()
    study = read_study(root)
    from depthlab.data import load_data
    from depthlab.train import config_from_dict

    run = study.runs[0]
    config = config_from_dict(run.config)
    bundle = load_data(config.data, val_size=config.val_size)
    ours = initial_model(config, bundle).state_dict()
    assert ours.keys() == initial[run.model].keys()
    assert all(torch.equal(ours[k], initial[run.model][k]) for k in ours)


def test_rerun_skips_completed_runs(tmp_path: Path) -> None:
    root, _, _ = tiny_study()
    copy = tmp_path / "study"
    shutil.copytree(root, copy)
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file() and p.name != "results.json"}
    lines: list[str] = []
    run_degradation(tiny_preset(), copy, device="cpu", overrides=TINY, progress=lines.append)
    assert [x for x in lines if "skipped" in x] == [
        "[1/2] plain20 seed 0: already completed, skipped",
        "[2/2] resnet20 seed 0: already completed, skipped",
    ]
    assert {p: p.read_bytes() for p in before} == before  # nothing retrained or rewritten


def test_a_study_directory_refuses_other_settings(tmp_path: Path) -> None:
    root, _, _ = tiny_study()
    shutil.copytree(root, tmp_path / "study")
    with pytest.raises(ValueError, match="different settings \\(steps\\)"):
        run_degradation(tiny_preset("steps=5"), tmp_path / "study", device="cpu")


def test_an_interrupted_run_is_resumed(tmp_path: Path) -> None:
    lines: list[str] = []

    def interrupt_once(line: str) -> None:
        lines.append(line)
        if "plain20 seed 0: step 2/4" in line and not any("resuming" in x for x in lines):
            os.kill(os.getpid(), signal.SIGINT)  # the trainer turns Ctrl-C into a checkpoint and a stop

    preset = tiny_preset()
    run_degradation(preset, tmp_path, device="cpu", progress=interrupt_once)
    summary = json.loads((tmp_path / "runs/plain20-s0/summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["step"] < 4
    assert not (tmp_path / "runs/resnet20-s0").exists()  # the study stopped with the interrupted run

    run_degradation(preset, tmp_path, device="cpu", progress=lines.append)
    assert any("plain20 seed 0: resuming" in x for x in lines)
    study = read_study(tmp_path)
    assert [(r.model, r.status, r.step) for r in study.runs] == [
        ("plain20", "completed", 4),
        ("resnet20", "completed", 4),
    ]
    steps = [s for s, _ in study.runs[0].train_curve]
    assert steps == [1, 2, 3, 4]  # no row lost or repeated across the interruption


# ------------------------------------------------------------------------------ findings from data
def _diag(layer_grads: list[float], block_grads: list[float] | None = None) -> Diagnostics:
    layers = tuple(LayerStat(f"l{i}", i, "conv", (3, 3), g, 1.0, 1.0) for i, g in enumerate(layer_grads, 1))
    blocks = tuple(
        BlockStat(f"b{i}", i, False, g, 1.0, None) for i, g in enumerate(block_grads or [1.0, 1.0], 1)
    )
    return Diagnostics("train", 8, 2.3, layers, blocks, ())


def _run(
    model: str, train: float, test: float, seed: int = 0, diagnostics: dict | None = None, images: int = 0
) -> StudyRun:
    """A completed run as read back; ``images``: behind its final training error (0: unknown)."""
    depth, residual = parse_model(model)
    return StudyRun(
        run_dir=Path(f"/x/{model}-s{seed}"),
        model=model,
        depth=depth,
        residual=residual,
        seed=seed,
        status="completed",
        step=400,
        final_train_error=train,
        final_val_error=test,
        final_test_error=test,
        wall_seconds=1.0,
        train_curve=((400, train),),
        val_curve=((400, test),),
        test_curve=((400, test),),
        diagnostics=diagnostics or {},
        config={"model": model, "log_every": 1, "batch_size": images},
        environment={},
        data={},
        images_per_s=0.0,
    )


def test_findings_state_the_effect_when_the_data_show_it() -> None:
    runs = [
        _run("plain20", 0.142, 0.15, diagnostics={"init": _diag([5.0, 1.0])}),
        _run(
            "plain56",
            0.312,
            0.33,
            diagnostics={"init": _diag([2300.0, 1.0]), "init_no_bn": _diag([1, 1], [0.09, 1.0])},
        ),
        _run("resnet20", 0.105, 0.12),
        _run(
            "resnet56",
            0.122,
            0.13,
            diagnostics={"init": _diag([0.2, 1.0]), "init_no_bn": _diag([1, 1], [3.4, 1.0])},
        ),
    ]
    findings = compute_findings(runs)
    assert "plain-56 ends with higher training error than plain-20 (31.2% vs 14.2%)." in findings
    assert "ResNet-56 ends with lower training error than plain-56 (12.2% vs 31.2%)." in findings
    assert "ResNet-56 ends with higher training error than ResNet-20 (12.2% vs 10.5%)." in findings
    text = " ".join(findings)
    assert (
        "plain-56's weight-gradient norm grows toward the input (it does not vanish): first/last layer ratio 2.3e+03"
        in text
    )
    assert (
        "Without batch norm, at initialisation, plain-56's block-output gradient norm shrinks toward the input (vanishes)"
        in text
    )
    assert "is not explained by vanishing gradients" in text


def test_findings_say_so_when_the_data_do_not_show_the_effect() -> None:
    runs = [
        _run("plain20", 0.20, 0.2),
        _run("plain56", 0.205, 0.21),
        _run("resnet20", 0.19, 0.2),
        _run("resnet56", 0.30, 0.3),
    ]
    findings = compute_findings(runs)
    assert findings[0] == (
        "plain-56 and plain-20 end with about the same training error (20.5% vs 20.0%): the difference is "
        "within the 1.0-point noise margin."
    )
    assert "ResNet-56 ends with higher training error than plain-56 (30.0% vs 20.5%)." in findings
    assert not any("vanishing" in s for s in findings)


def test_seed_spread_decides_what_counts_as_an_effect() -> None:
    runs = [
        _run("plain20", 0.10, 0.1, seed=0),
        _run("plain20", 0.20, 0.2, seed=1),
        _run("plain56", 0.18, 0.2, seed=0),
        _run("plain56", 0.22, 0.2, seed=1),
    ]
    first = compute_findings(runs)[0]
    assert first.startswith(
        "plain-56 and plain-20 end with about the same training error (20.0% ± 2.8 vs 15.0% ± 7.1)"
    )


def test_sampling_noise_decides_what_counts_as_an_effect() -> None:
    # 2,560 images behind each training error (20 batches of 128): two standard errors of the difference
    # are sqrt(.142·.858/2560 + .155·.845/2560) · 2 ≈ 2.0 points, so 1.3 points is not an effect.
    runs = [_run("plain20", 0.142, 0.15, images=2560), _run("plain56", 0.155, 0.16, images=2560)]
    assert compute_findings(runs)[0] == (
        "plain-56 and plain-20 end with about the same training error (15.5% vs 14.2%): the difference is "
        "within the 2.0-point noise margin."
    )
    runs = [_run("plain20", 0.142, 0.15, images=2560), _run("plain56", 0.312, 0.33, images=2560)]
    assert (
        compute_findings(runs)[0]
        == "plain-56 ends with higher training error than plain-20 (31.2% vs 14.2%)."
    )
