"""The study engine and the degradation study: presets, the study directory, resuming, the trainer's
weights, and findings computed from hand-made data for every outcome."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
from pathlib import Path

import pytest
import torch

from depthlab.studies import get_study
from depthlab.studies.degradation import PRESETS, compute_findings, parse_model
from depthlab.studies.engine import StudyError, apply_preset_overrides, initial_model, read_study, run_study
from depthlab.studies.stats import error_margin, estimate, gradient_outcome
from studies import TINY, diag, make_result, make_run, texts, tiny_preset, tiny_study

STUDY = get_study("degradation")


def test_presets_declare_the_recipes() -> None:
    quick, paper = PRESETS["quick"], PRESETS["paper"]
    assert quick.dataset == "fashion-mnist" and quick.depths == (20, 56) and not quick.augment
    assert quick.seeds >= 2 and quick.eval_train and quick.test_at_end
    # The held-out curve has at least 10 points, and the net sees its training subset several times.
    assert quick.steps // quick.eval_every >= 10
    assert quick.train_subset is not None and quick.steps * quick.batch_size >= 5 * quick.train_subset
    assert PRESETS["standard"].depths == (20, 32, 44, 56)
    # He et al. 2015 §4.2: batch 128, lr 0.1 ÷10 at 32k and 48k, stop at 64k, wd 1e-4, momentum 0.9, 45k/5k.
    assert (paper.dataset, paper.batch_size, paper.lr, paper.steps) == ("cifar10", 128, 0.1, 64000)
    assert (paper.schedule, paper.milestones) == ("step", (32000.0, 48000.0))
    assert (paper.weight_decay, paper.momentum, paper.val_size, paper.augment) == (1e-4, 0.9, 5000, True)
    assert 110 in paper.depths and paper.normalize == "pixel"
    config = paper.train_config("plain56", 3)
    assert (config.steps, config.epochs, config.seed, config.label_smoothing) == (64000, None, 3, 0.0)
    assert config.model_kwargs == {}  # CIFAR nets default to option-A shortcuts, as in the paper
    with pytest.raises(dataclasses.FrozenInstanceError):
        quick.steps = 1  # type: ignore[misc]


def test_resnet110_warms_up_at_lr_001_and_full_trains_on_every_image() -> None:
    from depthlab.train.optim import lr_factor

    specs = {s.name: s for s in STUDY.grid(PRESETS["paper"], range(1), "cpu", None)}
    deep, shallow = specs["resnet110-s0"].config, specs["resnet56-s0"].config
    assert (deep.warmup, deep.warmup_lr) == (400, 0.01) and shallow.warmup_lr is None
    lrs = [deep.lr * lr_factor(deep, s, 64000, 352) for s in (0, 399, 400, 31999, 32000, 48000)]
    assert lrs == pytest.approx([0.01, 0.01, 0.1, 0.1, 0.01, 0.001])
    full = apply_preset_overrides(PRESETS["paper"], ["full=true"]).train_config("resnet20", 0)
    assert full.val_size == 0 and not full.test_at_end


def test_overrides_are_typed_and_unknown_keys_rejected() -> None:
    p = apply_preset_overrides(
        PRESETS["quick"], ["steps=50", "depths=20,32", "augment=true", "val_size=none"]
    )
    assert (p.steps, p.depths, p.augment, p.val_size) == (50, (20, 32), True, None)
    with pytest.raises(StudyError, match="unknown preset key 'stpes'.*steps"):
        apply_preset_overrides(PRESETS["quick"], ["stpes=5"])
    with pytest.raises(ValueError, match="steps='many'"):
        apply_preset_overrides(PRESETS["quick"], ["steps=many"])
    with pytest.raises(StudyError, match="6n\\+2"):
        apply_preset_overrides(PRESETS["quick"], ["depths=21"])


def test_study_directory_and_results_schema() -> None:
    root, lines, _ = tiny_study()
    results = json.loads((root / "results.json").read_text())
    assert {"study", "preset", "dataset", "runs", "conditions", "findings", "evidence"} <= set(results)
    assert results["study"] == "degradation" and results["dataset"].startswith("synthetic")
    assert [r["model"] for r in results["runs"]] == ["plain20", "resnet20"]
    # results.json agrees with the run directories it was computed from.
    for r in results["runs"]:
        rows = [json.loads(x) for x in (root / "runs" / r["name"] / "metrics.jsonl").read_text().splitlines()]
        last = {row["split"]: row["error"] for row in rows}
        assert r["final_error"] == last
        # The eval-mode training error is over the whole 128-image training subset at the end, and the
        # intermediate held-out points over the 32-image validation subset.
        final = [row for row in rows if row["split"] == "train_eval"][-1]
        assert final["images"] == 128
        assert {row["images"] for row in rows if row["split"] == "val" and row["step"] < 4} == {32}
        assert [row["step"] for row in rows if row["split"] == "test"] == [
            4
        ]  # the test split only at the end
    assert results["findings"] == [e["text"] for e in results["evidence"]]
    for model in ("plain20", "resnet20"):
        diags = json.loads((root / "runs" / f"{model}-s0" / "diagnostics.json").read_text())
        assert set(diags) == {"init", "steps", "end"}
        assert set(diags["init"]) == {"train", "no_bn"} and set(diags["end"]) == {"train", "eval"}
        assert sorted(int(s) for s in diags["steps"]) == [2, 4]
    assert (root / "analysis" / "shattered.json").is_file()
    assert any("training for 4 iterations" in line for line in lines)


def test_no_bn_twins_are_bn_free_and_skipinit_only_for_resnets() -> None:
    root, _, _ = tiny_study()
    for model in ("plain20", "resnet20"):
        d = json.loads((root / "runs" / f"{model}-s0" / "diagnostics.json").read_text())["init"]
        bn, nobn = d["train"], d["no_bn"]
        assert len(bn["layers"]) == len(nobn["layers"]) == 20
        # Without batch norm the loss and every gradient differ from the BN net built from the same seed.
        assert nobn["loss"] != bn["loss"]
        # SkipInit only for the ResNet: its branches start at exactly 0 (‖F(x)‖/‖x‖ = 0); the plain twin has
        # no branch ratio and is unchanged.
        ratios = [b["branch_ratio"] for b in nobn["blocks"]]
        assert ratios == ([0.0] * 9 if model == "resnet20" else [None] * 9)
    net = initial_model(dataclasses.replace(tiny_preset().train_config("resnet20", 0), model_kwargs={"norm": None, "skipinit": True}),
                        _bundle())  # fmt: skip
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())


def _bundle():
    from depthlab.train.loop import prepare_bundle

    return prepare_bundle(tiny_preset().train_config("plain20", 0))


def test_init_diagnostics_use_the_trainers_initial_weights() -> None:
    root, _, initial = tiny_study()
    study = read_study(root)
    from depthlab.train import config_from_dict

    run = study.runs[0]
    config = config_from_dict(run.config)
    ours = initial_model(config, _bundle()).state_dict()
    assert ours.keys() == initial[run.model].keys()
    assert all(torch.equal(ours[k], initial[run.model][k]) for k in ours)


def test_probes_during_training_do_not_change_the_run(tmp_path: Path) -> None:
    """The engine's run (with its probes every evaluation) ends with the weights of a plain train()."""
    from depthlab.train import train
    from depthlab.train.rundir import load_run_model

    root, _, _ = tiny_study()
    spec = next(s for s in STUDY.grid(tiny_preset(), range(1), "cpu", None) if s.name == "resnet20-s0")
    train(spec.config, tmp_path / "direct")
    a = load_run_model(root / "runs" / "resnet20-s0").state_dict()
    b = load_run_model(tmp_path / "direct").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_rerun_skips_completed_runs(tmp_path: Path) -> None:
    root, _, _ = tiny_study()
    copy = tmp_path / "study"
    shutil.copytree(root, copy)
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file() and p.name != "results.json"}
    lines: list[str] = []
    run_study(STUDY, tiny_preset(), copy, device="cpu", overrides=TINY, progress=lines.append)
    assert [x for x in lines if "skipped" in x] == [
        "[1/2] plain20-s0: already completed, skipped",
        "[2/2] resnet20-s0: already completed, skipped",
    ]
    assert {p: p.read_bytes() for p in before} == before  # nothing retrained or rewritten


def test_a_study_directory_refuses_other_settings(tmp_path: Path) -> None:
    root, _, _ = tiny_study()
    shutil.copytree(root, tmp_path / "study")
    with pytest.raises(StudyError, match="different settings \\(steps\\)"):
        run_study(STUDY, tiny_preset("steps=5"), tmp_path / "study", device="cpu")


def test_an_interrupted_run_is_resumed_exactly(tmp_path: Path) -> None:
    lines: list[str] = []

    def interrupt_once(line: str) -> None:
        lines.append(line)
        if "plain20-s0: step 2/4" in line and not any("resuming" in x for x in lines):
            os.kill(os.getpid(), signal.SIGINT)  # the trainer turns Ctrl-C into a checkpoint and a stop

    preset = tiny_preset("shatter_points=0")
    run_study(STUDY, preset, tmp_path, device="cpu", progress=interrupt_once)
    summary = json.loads((tmp_path / "runs/plain20-s0/summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["step"] < 4
    assert not (tmp_path / "runs/resnet20-s0").exists()  # the study stopped with the interrupted run

    run_study(STUDY, preset, tmp_path, device="cpu", progress=lines.append)
    assert any("plain20-s0: resuming" in x for x in lines)
    study = read_study(tmp_path)
    assert [(r.model, r.status, r.step) for r in study.runs] == [
        ("plain20", "completed", 4),
        ("resnet20", "completed", 4),
    ]
    assert [s for s, _ in study.runs[0].curves["train"]] == [1, 2, 3, 4]  # no row lost or repeated
    # The resumed run ends where the uninterrupted one did (same weights, bit for bit, on CPU).
    root, _, _ = tiny_study()
    from depthlab.train.rundir import load_run_model

    a = load_run_model(tmp_path / "runs/plain20-s0").state_dict()
    b = load_run_model(root / "runs/plain20-s0").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_unknown_study_and_analysis_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(StudyError, match="unknown study 'degredation'; choose from: .*degradation"):
        get_study("degredation")
    with pytest.raises(StudyError, match="unknown analysis 'lesions'"):
        run_study(STUDY, tiny_preset(), tmp_path, analyses=["lesions"])


# ------------------------------------------------------------------------------------------- margins
def test_error_margin_is_the_largest_of_floor_seed_spread_and_sampling_error() -> None:
    # Two binomial standard errors of the difference at 2,560 images each:
    # 2·sqrt(.142·.858/2560 + .155·.845/2560) = 0.0199.
    a, b = estimate([0.142], 2560), estimate([0.155], 2560)
    assert error_margin(a, b) == pytest.approx(0.0199, abs=5e-4)  # type: ignore[arg-type]
    # Seed spread: stdev(.10, .20) + stdev(.18, .22) = .0707 + .0283.
    a, b = estimate([0.10, 0.20]), estimate([0.18, 0.22])
    assert error_margin(a, b) == pytest.approx(0.0990, abs=1e-4)  # type: ignore[arg-type]
    assert error_margin(estimate([0.5]), estimate([0.5])) == 0.01  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ratios", "outcome"),
    [
        ([0.05, 0.02], "vanishing"),
        ([1e3, 2e4], "exploding"),
        ([0.5, 3.0], "neither"),
        ([float("nan"), 1.0], "unknown"),
        ([float("inf")], "unknown"),
        ([0.0], "unknown"),
        ([0.05, 0.5], "unknown"),  # seeds on different sides of a threshold
    ],
)
def test_gradient_outcomes(ratios: list[float], outcome: str) -> None:
    assert gradient_outcome(ratios) == outcome


# ------------------------------------------------------------------------------ findings from data
def _four(plain56_grads: list[float], *, plain56_during: list[float] | None = None, no_bn: list[float] | None = None,
          plain56_train: tuple[float, float] = (0.20, 0.21)):  # fmt: skip
    """Plain/ResNet at 20 and 56, two seeds; plain-56's block gradients at init are ``plain56_grads``."""
    runs = []
    for seed in (0, 1):
        p56 = {"init": {"train": diag(plain56_grads), "no_bn": diag(no_bn or [0.01, 1.0])}}
        if plain56_during is not None:
            p56["steps"] = {str(s): {"train": diag(plain56_during)} for s in (20, 40, 60)}
        r56 = {"init": {"train": diag([2.0, 1.0]), "no_bn": diag([1.0, 1.0])}}
        runs += [
            make_run("plain20", 0.02 + 0.001 * seed, 0.12, seed=seed),
            make_run("plain56", plain56_train[seed], 0.25, seed=seed, diagnostics=p56),
            make_run("resnet20", 0.01, 0.11, seed=seed),
            make_run("resnet56", 0.012, 0.11, seed=seed, diagnostics=r56),
        ]
    return make_result(runs)


def test_degradation_is_stated_with_numbers_and_margin() -> None:
    found = texts(_four([1e3, 1.0]))
    assert (
        "plain-56 ends with higher training error than plain-20 (20.5% ± 0.7 vs 2.1% ± 0.1, 2 seeds): 18.5 "
        "points, beyond the 1.4-point margin." in found
    )
    assert any(
        s.startswith("ResNet-56 and ResNet-20 end with the same training error within the margin")
        for s in found
    )
    assert any(s.startswith("ResNet-56 ends with lower training error than plain-56") for s in found)
    assert any(s.startswith("plain-56's higher training error is not overfitting") for s in found)


def test_exploding_gradient_is_named_explosion_and_rules_out_vanishing() -> None:
    found = " ".join(texts(_four([1e3, 1.0], plain56_during=[30.0, 1.0])))
    assert "plain-56's gradient at the first block's output is 1e+03, 1e+03× that at the last block" in found
    assert "exploding: the gradient grows toward the input" in found
    assert "Vanishing gradients do not explain plain-56's higher training error than plain-20" in found
    assert "undiminished" not in found and "consistent with the vanishing-gradient explanation" not in found
    # Without batch norm the same architecture's gradient vanishes, and the finding says so.
    assert "Without batch norm the same architecture's gradient does vanish at initialisation" in found


def test_vanishing_gradient_at_init_and_during_training_supports_vanishing() -> None:
    found = " ".join(texts(_four([0.01, 1.0], plain56_during=[0.02, 1.0])))
    assert "vanishing (below 0.1 for every seed)" in found
    assert (
        "consistent with the vanishing-gradient explanation of its higher training error than plain-20"
        in found
    )


def test_a_converged_checkpoint_alone_never_decides_the_verdict() -> None:
    """The end-of-training ratio is not evidence about why optimisation was slow: with an exploding init
    and no probes during training, a vanishing *end* ratio must not produce a vanishing verdict."""
    result = _four([1e3, 1.0])
    runs = [
        dataclasses.replace(r, diagnostics={**r.diagnostics, "end": {"train": diag([1e-4, 1.0])}})
        for r in result.runs
    ]
    found = " ".join(texts(dataclasses.replace(result, runs=tuple(runs))))
    assert "consistent with the vanishing-gradient explanation" not in found
    assert "Vanishing gradients do not explain" in found


def test_neither_and_non_finite_outcomes() -> None:
    found = " ".join(texts(_four([2.0, 1.0], plain56_during=[1.5, 1.0])))
    assert "neither vanishing nor exploding (between 0.1 and 10 for every seed)" in found
    assert "Vanishing gradients do not explain" in found
    found = " ".join(texts(_four([float("nan"), 1.0])))
    assert "unknown (a non-finite or zero norm" in found
    assert "cannot be decided from these runs" in found


def test_within_the_margin_says_so_and_draws_no_verdict() -> None:
    found = texts(_four([1e3, 1.0], plain56_train=(0.02, 0.03)))
    assert any(
        s.startswith("plain-56 and plain-20 end with the same training error within the margin")
        for s in found
    )
    assert "there is no degradation here for the gradient measurements to explain" in " ".join(found)
    assert not any("not overfitting" in s for s in found)


def test_sampling_error_decides_what_counts_as_an_effect() -> None:
    # 2,560 images behind each training error: the 2.0-point margin swallows a 1.3-point difference.
    runs = [make_run("plain20", 0.142, 0.15, images=2560), make_run("plain56", 0.155, 0.16, images=2560)]
    found = texts(make_result(runs))
    assert (
        "plain-56 and plain-20 end with the same training error within the margin (15.5% vs 14.2%, 1 seed): the "
        "1.3-point difference is inside the 2.0-point margin." in found
    )


def test_responses_compare_with_a_seed_margin() -> None:
    runs = []
    for seed, (p, r) in enumerate(((1.0, 0.5), (1.1, 0.55))):
        runs.append(
            make_run(
                "plain56", 0.2, 0.2, seed=seed, diagnostics={"end": {"eval": diag([1, 1], responses=[p, p])}}
            )
        )
        runs.append(
            make_run(
                "resnet56", 0.1, 0.1, seed=seed, diagnostics={"end": {"eval": diag([1, 1], responses=[r, r])}}
            )
        )
    found = " ".join(texts(make_result(runs)))
    assert (
        "ResNet-56's 3×3 layers respond more weakly than plain-56's (mean response std 0.525 vs 1.05" in found
    )
    assert "as in the paper" in found


def test_shattered_findings_read_the_analysis(tmp_path: Path) -> None:
    data = {"settings": {"points": 64, "depths": [56], "seeds": 2}, "results": []}
    for residual, corr in ((False, [0.05, 0.07]), (True, [0.6, 0.62])):
        for seed, c in enumerate(corr):
            data["results"].append({"label": "x", "seed": seed, "points": 64, "directional": [0.0] * 64,
                                    "neighbour_correlation": c, "lag1_autocorrelation": c, "spectral_slope": -1.0,
                                    "depth": 56, "residual": residual, "bn": True})  # fmt: skip
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "shattered.json").write_text(json.dumps(data))
    result = make_result([make_run("plain56", 0.2, 0.2)], root=tmp_path)
    found = " ".join(texts(result))
    assert "ResNet-56's neighbouring input gradients correlate more than plain-56's (0.61 vs 0.06" in found


def test_compute_findings_is_the_registered_one() -> None:
    assert STUDY.findings is compute_findings and parse_model("plain110") == (110, False)
