"""The vgg-depth study: the published Table 3, the configurations it maps to, the grid, the test subset,
findings from hand-made runs, and (slow) a tiny study end to end with its report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from depthlab import create_model
from depthlab.studies import get_study
from depthlab.studies.engine import StudyError, apply_preset_overrides
from depthlab.studies.vgg_depth import DEPTH, MODELS, PRESETS, TABLE3
from studies import make_result, study_run, texts, tiny_vgg_study

STUDY = get_study("vgg-depth")
EXPECTED = json.loads((Path(__file__).parent / "expected" / "vgg_table3.json").read_text())


def test_table3_and_depths_are_the_papers() -> None:
    assert TABLE3 == EXPECTED["top1"]
    assert DEPTH == EXPECTED["weight_layers"]
    for config, name in MODELS.items():
        model = create_model(name, num_classes=10, in_channels=1, head="small")
        assert model.config == config
        # The configuration's depth counts its convs and the paper's three FC layers (fc6, fc7, fc8).
        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
        assert len(convs) + 3 == DEPTH[config], config
    lrn = create_model(MODELS["A-LRN"], head="small")
    assert any(isinstance(m, torch.nn.LocalResponseNorm) for m in lrn.modules())
    c = create_model(MODELS["C"], head="small")
    assert sum(1 for m in c.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1)) == 3


def test_grid_and_presets() -> None:
    quick = PRESETS["quick"]
    specs = STUDY.grid(quick, range(quick.seeds), "cpu", None)
    per_seed = len(quick.plain) + len(quick.bn)
    assert len(specs) == quick.seeds * per_seed and len({s.name for s in specs}) == len(specs)
    assert {"A", "A-LRN", "E"} <= set(quick.plain) and {"C", "D"} <= set(quick.bn)
    for s in specs:
        bn = s.factors["bn"]
        assert s.config.model == MODELS[s.factors["config"]]
        assert s.config.model_kwargs == {"head": "small", "norm": "batch" if bn else None}
        assert s.condition == (f"{s.factors['config']}+BN" if bn else s.factors["config"])
        assert s.config.optimizer == quick.optimizer
    with pytest.raises(StudyError, match="unknown VGG configuration 'F' in plain; choose from: A, A-LRN"):
        apply_preset_overrides(quick, ["plain=A,F"])
    assert PRESETS["paper"].optimizer == "sgd" and PRESETS["paper"].plain == (
        "A",
        "A-LRN",
        "B",
        "C",
        "D",
        "E",
    )


def test_test_subset_is_a_fixed_subset_of_the_test_split() -> None:
    from depthlab.train.loop import prepare_bundle

    preset = apply_preset_overrides(PRESETS["quick"], ["dataset=synthetic:channels=1,size=16,train=64,test=64,classes=4",
                                                       "train_subset=32", "test_subset=20", "val_size=8"])  # fmt: skip
    full = prepare_bundle(preset.train_config("vgg11", 0, test_subset=None))
    a = prepare_bundle(preset.train_config("vgg11", 0))
    b = prepare_bundle(preset.train_config("vgg19", 1))
    assert len(full.test) == 64 and len(a.test) == 20
    assert torch.equal(a.test.images, b.test.images)  # the same images for every run
    rows = {tuple(x.flatten().tolist()) for x in full.test.images}
    assert all(tuple(x.flatten().tolist()) in rows for x in a.test.images)
    assert len({tuple(x.flatten().tolist()) for x in a.test.images}) == 20


# ------------------------------------------------------------------------------- findings, hand-made runs
def _run(config: str, bn: bool, seed: int, train: float, test: float) -> Any:
    name = f"{config}+BN" if bn else config
    return study_run(f"{name}-{seed}", name, {"config": config, "bn": bn, "depth": DEPTH[config]}, seed=seed,
                     final={"train_eval": train, "test": test}, images={"train_eval": 1000, "test": 1000})  # fmt: skip


def test_findings_name_depth_lrn_and_1x1_with_margins() -> None:
    runs = []
    for seed in (0, 1):
        d = 0.002 * seed
        runs += [
            _run("A", False, seed, 0.20 + d, 0.25 + d),
            _run("A-LRN", False, seed, 0.20 + d, 0.252 + d),
            _run("E", False, seed, 0.60 + d, 0.61 + d),  # degraded: deep plain net fits worse
            _run("A", True, seed, 0.10 + d, 0.20 + d),
            _run("C", True, seed, 0.09 + d, 0.20 + d),
            _run("D", True, seed, 0.08 + d, 0.15 + d),
            _run("E", True, seed, 0.07 + d, 0.14 + d),
        ]
    found = texts(make_result(runs, study="vgg-depth"), "vgg-depth")
    # E+BN vs A+BN test: 14.1% vs 20.1%; the margin is 2 binomial SEs at 2,000 images each:
    # 2·sqrt(.141·.859/2000 + .201·.799/2000) = 2.4 points.
    bn_test = next(t for t in found if t.startswith("With batch norm, E+BN") and "test error" in t)
    assert "lower test error than A+BN" in bn_test and "margin 2.4" in bn_test and "depth helps" in bn_test
    plain_train = next(t for t in found if t.startswith("Without batch norm, E") and "training error" in t)
    assert "higher training error than A" in plain_train and "degradation problem" in plain_train
    lrn = next(t for t in found if t.startswith("A-LRN"))
    assert "within the margin" in lrn and "LRN does not help, as in Table 3" in lrn and "(+0.1)" in lrn
    c_vs_d = next(t for t in found if t.startswith("C (1×1"))
    assert "with batch norm: test error higher" in c_vs_d and "C is worse than D, as in Table 3" in c_vs_d
    order = next(t for t in found if t.startswith("Test error by configuration with batch norm"))
    assert "here E < D < A < C" in order or "here E < D < C < A" in order
    assert "in Table 3 D < E < C < A" in order


# ----------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_tiny_study_end_to_end_and_report() -> None:
    from depthlab.report import build_report

    root, _ = tiny_vgg_study()
    results = json.loads((root / "results.json").read_text())
    assert results["study"] == "vgg-depth" and [r["name"] for r in results["runs"]] == [
        "vgg11-s0",
        "vgg11_bn-s0",
    ]
    assert results["findings"] == [e["text"] for e in results["evidence"]]
    assert any(f.startswith("A+BN ends with") for f in results["findings"])
    report = build_report(root)
    assert report.figures == ("Final error vs depth, without and with batch norm, beside VGG Table 3",
                              "Training error vs iterations")  # fmt: skip
    assert "Final error by configuration" in report.html
