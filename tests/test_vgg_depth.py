"""The vgg-depth study: the published Table 3, the configurations it maps to, presets and grid (warm start
included), the test subset, findings and answers from hand-made runs with known effects and with none, and
(slow) a tiny study end to end with its report."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from depthlab import create_model
from depthlab.studies import get_study
from depthlab.studies.engine import Finding, StudyError, apply_preset_overrides
from depthlab.studies.vgg_depth import DEPTH, MODELS, PRESETS, TABLE3
from depthlab.studies.vgg_depth.findings import compute_findings
from depthlab.studies.vgg_depth.presets import BASE, WARM_LAYERS
from studies import make_result, study_run, tiny_vgg_study

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


def test_presets_are_differences_from_the_base() -> None:
    quick, paper = PRESETS["quick"], PRESETS["paper"]
    for p in (quick, paper):
        assert p.seeds >= 3  # issue 14: at least 3 seeds by default
        assert p.optimizer == "sgd" and p.momentum == 0.9 and p.weight_decay == 5e-4 and p.schedule == "step"
        assert p.eval_train and p.eval_subset is None  # the plateau check needs the whole subset each time
    # quick: A, A-LRN, C, D, E without BN; the depth ladder A, D, E with BN.
    assert quick.plain == ("A", "A-LRN", "C", "D", "E") and quick.bn == ("A", "D", "E")
    assert quick.width < 1 and quick.steps % quick.eval_every == 0 and quick.steps // quick.eval_every >= 10
    changed = {f.name for f in dataclasses.fields(BASE) if getattr(BASE, f.name) != getattr(quick, f.name)}
    assert "momentum" not in changed and "optimizer" not in changed
    assert f"{quick.seeds} seed(s)" in quick.describe() and "width 0.125" in quick.describe()


def test_grid_order_models_and_warm_start() -> None:
    quick = PRESETS["quick"]
    specs = STUDY.grid(quick, range(3, 6), "cpu", None)
    per_seed = len(quick.plain) + len(quick.bn)
    assert len(specs) == 3 * per_seed and len({s.name for s in specs}) == len(specs)
    assert sorted({s.seed for s in specs}) == [3, 4, 5]
    for s in specs:
        bn = s.factors["bn"]
        assert s.config.model == MODELS[s.factors["config"]]
        assert s.config.model_kwargs == {
            "head": "small",
            "norm": "batch" if bn else None,
            "width": quick.width,
        }
        assert s.condition == (f"{s.factors['config']}+BN" if bn else s.factors["config"])
        assert s.config.optimizer == "sgd" and s.config.init == quick.init and s.config.init_from is None
    warm = apply_preset_overrides(quick, ["warm_start=true"])
    specs = STUDY.grid(warm, [7], "cpu", None)
    names = [s.name for s in specs]
    for s in specs:
        deeper = DEPTH[s.factors["config"]] > DEPTH["A"]
        source = f"runs/vgg11{'_bn' if s.factors['bn'] else ''}-s7"
        assert s.config.init_from == (source if deeper else None), s.name
        assert s.config.init_from_layers == (WARM_LAYERS if deeper else ())
        if deeper:  # the source is trained first
            assert names.index(Path(source).name) < names.index(s.name)
    with pytest.raises(StudyError, match="unknown VGG configuration 'F' in plain; choose from: A, A-LRN"):
        apply_preset_overrides(quick, ["plain=A,F"])
    with pytest.raises(StudyError, match="warm_start starts the deeper nets from A"):
        apply_preset_overrides(quick, ["warm_start=true", "bn=D,E"])
    with pytest.raises(StudyError, match="unknown init 'xavier'; choose from: model, glorot, kaiming"):
        apply_preset_overrides(quick, ["init=xavier"])


def test_warm_layers_are_the_papers_first_four_convs_and_head() -> None:
    """§3.1: the first four conv layers of A and its FC layers; each exists in D and E with A's shape."""
    import fnmatch

    a = create_model("vgg11", num_classes=10, in_channels=1, head="small", width=0.125)
    convs = [n for n, m in a.named_modules() if isinstance(m, torch.nn.Conv2d)]
    first_four = {n.rsplit(".", 1)[0] for n in convs[:4]}  # ConvNormAct modules holding them
    picked = {n for n, _ in a.named_modules() if any(fnmatch.fnmatch(n + ".x", p) for p in WARM_LAYERS)}
    assert first_four <= picked and not any(n.rsplit(".", 1)[0] in picked for n in convs[4:])
    for deep in ("vgg16", "vgg19"):
        d = create_model(deep, num_classes=10, in_channels=1, head="small", width=0.125).state_dict()
        for name, t in a.state_dict().items():
            if any(fnmatch.fnmatch(name, p) for p in WARM_LAYERS):
                assert name in d and d[name].shape == t.shape, (deep, name)


def test_test_subset_is_a_fixed_subset_of_the_test_split() -> None:
    from depthlab.train.setup import prepare_bundle

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
SEEDS = (0, 1, 2)
NOISE = (-0.004, 0.0, 0.004)  # seed-to-seed spread of a well-measured condition (SD 0.4 points)


def _run(
    config: str, bn: bool, seed: int, train: float, test: float, curve: tuple[float, float] | None = None
) -> Any:
    """A finished run; ``curve``: its training error at iterations 270 and 300 (default: flat at ``train``)."""
    name = f"{config}+BN" if bn else config
    before, after = curve if curve is not None else (train, train)
    return study_run(f"{name}-{seed}", name, {"config": config, "bn": bn, "depth": DEPTH[config]}, seed=seed,
                     final={"train_eval": after, "test": test}, images={"train_eval": 1000, "test": 10000},
                     curves={"train_eval": ((30, 0.5), (270, before), (300, after)), "test": ((300, test),)},
                     steps=300, data={"num_classes": 10})  # fmt: skip


def _condition(config: str, bn: bool, train: float, test: float, spread: tuple[float, ...] = NOISE,
               curve: tuple[float, float] | None = None) -> list[Any]:  # fmt: skip
    return [_run(config, bn, s, train + d, test + d, curve) for s, d in zip(SEEDS, spread, strict=True)]


def _findings(runs: list[Any], **kw: Any) -> dict[str, Finding]:
    return {f.key: f for f in compute_findings(make_result(runs, study="vgg-depth"), **kw) if f.key}


def _answers(runs: list[Any]) -> dict[str, Any]:
    result = make_result(runs, study="vgg-depth")
    return {a.id: a for a in STUDY.answers(result, STUDY.findings(result))}  # type: ignore[misc]


def test_depth_lowers_test_error_resolved_with_keys_seeds_and_paper() -> None:
    runs = [
        *_condition("A", False, 0.02, 0.16),
        *_condition("D", False, 0.01, 0.13),  # 3 points lower, SD 0.4: resolved
        *_condition("E", False, 0.01, 0.12),
    ]
    by = _findings(runs)
    f = by["test_error:E:A"]
    assert f.outcome == "lower" and f.question == "depth" and f.topic == "depth"
    assert "E (19 layers) has lower test error than A (11 layers)" in f.text
    assert "3 seeds each" in f.text and "95% CI [" in f.text and "as in Simonyan & Zisserman" in f.text
    assert by["test_error:D:A"].outcome == "lower" and by["test_error:E:D"].outcome == "lower"
    # The numbers are scipy's Welch interval of the hand-made values.
    from scipy import stats as sps

    e, a = [0.116, 0.12, 0.124], [0.156, 0.16, 0.164]
    ci = sps.ttest_ind(e, a, equal_var=False).confidence_interval(0.95)
    assert by["test_error:E:A"].numbers["ci"]["low"] == pytest.approx(ci.low)
    assert by["test_error:E:A"].numbers["ci"]["high"] == pytest.approx(ci.high)
    answers = _answers(runs)
    assert answers["depth"].verdict == "supported" and "test_error:E:A" in answers["depth"].evidence


def test_a_net_at_chance_did_not_train_and_is_never_degradation() -> None:
    """Issue 15: E without BN at 87% training error (chance) was called 'the degradation problem'."""
    runs = [
        *_condition("A", False, 0.02, 0.16),
        *_condition("E", False, 0.888, 0.90),  # never left chance (90% for 10 classes)
        *_condition("A", True, 0.01, 0.14),
        *_condition("E", True, 0.005, 0.12),
    ]
    by = _findings(runs)
    trained = by["trained:E"]
    assert trained.question == "depth" and "did not train" in trained.text and "3 of 3" not in trained.text
    assert "never left chance in any seed" in trained.text
    for key in ("test_error:E:A", "train_error:E:A"):
        assert by[key].outcome == "not resolved", key
        assert "E did not train in 3 of 3 seeds" in by[key].text
    assert not any("degradation" in f.text and "not a deeper net" not in f.text and "not as degradation" not in f.text
                   for f in by.values())  # fmt: skip
    assert "trained:A" not in by and "trained:E+BN" not in by
    assert by["test_error:E+BN:A+BN"].outcome == "lower"
    assert by["depth_effect:E+BN-A+BN:E-A"].outcome == "not resolved"
    assert "plateau:E" not in by  # a net at chance has no plateau to reach
    answers = _answers(runs)
    assert (
        answers["depth"].verdict == "not resolved"
        and "did not train: E (3 of 3 seeds)" in answers["depth"].numbers
    )
    assert answers["bn"].verdict == "supported"


def test_a_net_that_trained_in_some_seeds_only() -> None:
    runs = [*_condition("A", False, 0.02, 0.16), *_condition("E", False, 0.01, 0.12, spread=(0.0, 0.0, 0.0))]
    runs[-1] = _run("E", False, 2, 0.87, 0.89)  # one seed stuck at chance
    by = _findings(runs)
    assert "E did not train in 1 of 3 seeds" in by["trained:E"].text
    assert by["test_error:E:A"].outcome == "not resolved"


def test_degradation_is_named_only_when_both_nets_train() -> None:
    runs = [*_condition("A", False, 0.02, 0.16), *_condition("E", False, 0.20, 0.25)]
    f = _findings(runs)["train_error:E:A"]
    assert f.outcome == "higher" and "degradation He et al. 2016 describe" in f.text


def test_lrn_same_only_by_equivalence_and_unresolved_says_so() -> None:
    """Issue 14: 'LRN does not help, as in Table 3' was printed from a difference within the margin."""
    same = [*_condition("A", False, 0.02, 0.160), *_condition("A-LRN", False, 0.02, 0.161)]
    f = _findings(same)["test_error:A-LRN:A"]
    assert f.outcome == "equivalent" and f.question == "lrn"
    assert (
        "the same test error within ±2 points" in f.text and "TOST" in f.text and "as in Simonyan" in f.text
    )
    assert _answers(same)["lrn"].verdict == "supported"
    # Seeds 6 points apart: neither a difference nor an equivalence can be claimed.
    noisy = [*_condition("A", False, 0.02, 0.16, spread=(-0.06, 0.0, 0.06)),
             *_condition("A-LRN", False, 0.02, 0.165, spread=(0.06, -0.06, 0.0))]  # fmt: skip
    f = _findings(noisy)["test_error:A-LRN:A"]
    assert f.outcome == "not resolved"
    assert "is not resolved" in f.text and "95% CI [" in f.text and "3 seeds each" in f.text
    assert (
        "Simonyan" not in f.text
        and "does not help" not in f.text
        and "nor is equivalence within ±2 points shown" in f.text
    )
    assert _answers(noisy)["lrn"].verdict == "not resolved"
    helps = [*_condition("A", False, 0.02, 0.16), *_condition("A-LRN", False, 0.02, 0.12)]
    assert _findings(helps)["test_error:A-LRN:A"].outcome == "lower"
    assert _answers(helps)["lrn"].verdict == "contradicted"


def test_1x1_worse_than_3x3_supported_and_equivalence_does_not_decide_it() -> None:
    worse = [*_condition("C", False, 0.01, 0.15), *_condition("D", False, 0.01, 0.13)]
    f = _findings(worse)["test_error:C:D"]
    assert f.outcome == "higher" and f.question == "1x1" and "as in Simonyan" in f.text
    assert _answers(worse)["1x1"].verdict == "supported"
    same = [*_condition("C", False, 0.01, 0.130), *_condition("D", False, 0.01, 0.131)]
    assert _findings(same)["test_error:C:D"].outcome == "equivalent"
    assert _answers(same)["1x1"].verdict == "not resolved"


def test_non_finite_errors_are_unknown_never_a_verdict() -> None:
    runs = [*_condition("A", False, 0.02, 0.16), *_condition("D", False, 0.01, 0.13)]
    runs[-1] = _run("D", False, 2, 0.01, float("nan"))
    f = _findings(runs)["test_error:D:A"]
    assert f.outcome == "unknown" and "unknown: non-finite values" in f.text and "as in" not in f.text


def test_plateau_check_and_a_net_still_falling_leaves_depth_unresolved() -> None:
    flat = [*_condition("A", False, 0.02, 0.16), *_condition("E", False, 0.01, 0.12)]
    by = _findings(flat)
    assert by["plateau:A"].outcome == "equivalent" and "(270 → 300)" in by["plateau:A"].text
    assert "reached a plateau" in by["plateau:A"].text
    falling = [*_condition("A", False, 0.02, 0.16),
               *_condition("E", False, 0.01, 0.12, curve=(0.10, 0.01))]  # fmt: skip
    by = _findings(falling)
    assert by["plateau:E"].outcome == "lower" and "still falling" in by["plateau:E"].text
    assert by["test_error:E:A"].outcome == "lower"
    answer = _answers(falling)["depth"]
    assert answer.verdict == "not resolved" and "still falling: E" in answer.numbers
    # A resolved but small fall (0.3 points, inside the 1-point bound) is a plateau, not "still falling".
    small = [*_condition("A", False, 0.02, 0.16, curve=(0.023, 0.02)), *_condition("E", False, 0.01, 0.12)]
    f = _findings(small)["plateau:A"]
    assert f.numbers["ci"]["high"] < 0 and f.outcome == "equivalent"
    # A fall whose CI straddles the bound is neither.
    straddle = [*_condition("A", False, 0.02, 0.16, spread=(0.0, 0.0, 0.0)),
                *_condition("E", False, 0.01, 0.12)]  # fmt: skip
    for i, drop in enumerate((0.004, 0.012, 0.020)):
        straddle[i] = _run("A", False, i, 0.02, 0.16, curve=(0.02 + drop, 0.02))
    assert _findings(straddle)["plateau:A"].outcome == "not resolved"
    # ... and a net whose plateau is not resolved carries no depth verdict (E is resolved lower than A here).
    straddle[3:] = _condition("E", False, 0.01, 0.12)
    assert _findings(straddle)["test_error:E:A"].outcome == "lower"
    answer = _answers(straddle)["depth"]
    assert answer.verdict == "not resolved" and "plateau not resolved: A" in answer.numbers
    assert _answers(flat)["depth"].verdict == "supported"


def test_bn_changes_the_depth_effect() -> None:
    runs = [
        *_condition("A", False, 0.02, 0.16),
        *_condition("E", False, 0.02, 0.16, spread=(0.003, -0.004, 0.001)),  # no depth effect without BN
        *_condition("A", True, 0.01, 0.15),
        *_condition("E", True, 0.005, 0.11),  # 4 points with BN
    ]
    by = _findings(runs)
    f = by["depth_effect:E+BN-A+BN:E-A"]
    assert f.outcome == "lower" and f.question == "bn" and "batch norm makes depth help more" in f.text
    assert f.numbers["a_values"] == pytest.approx([-0.04, -0.04, -0.04])
    assert _answers(runs)["bn"].verdict == "supported"


def test_mcnemar_attached_on_the_test_images_and_can_withhold_a_verdict() -> None:
    """A CI that excludes 0 is not enough when the per-image test disagrees (same images on both sides)."""
    runs = [*_condition("A", False, 0.02, 0.16), *_condition("D", False, 0.01, 0.13)]
    base = np.random.default_rng(0).random(10000) < 0.85  # A's per-image correctness

    def load(d_better: bool) -> Any:
        def read(run_dir: Path, split: str) -> np.ndarray:
            assert split == "test"
            if run_dir.name.startswith("D") and d_better:
                return base | (
                    np.arange(base.size) < 1000
                )  # D also right on A's errors among the first 1,000
            return base

        return read

    f = _findings(runs, load=load(d_better=False))["test_error:D:A"]
    assert f.numbers["paired_test"] == {"method": "mcnemar (exact)", "a_only": 0, "b_only": 0, "p": 1.0}
    assert f.numbers["ci"]["high"] < 0 and f.outcome == "not resolved" and "McNemar p = 1" in f.text
    f = _findings(runs, load=load(d_better=True))["test_error:D:A"]
    test = f.numbers["paired_test"]
    assert test["a_only"] == 3 * int((~base[:1000]).sum())  # pooled over 3 seed pairs
    assert test["b_only"] == 0 and test["p"] < 1e-6
    assert f.outcome == "lower" and "McNemar p < 0.001" in f.text


def test_every_comparison_names_its_seeds_and_keys_are_stable() -> None:
    grid = (("A", False), ("A-LRN", False), ("C", False), ("D", False), ("E", False), ("A", True), ("D", True),
            ("E", True))  # fmt: skip
    runs = [r for c, bn in grid for r in _condition(c, bn, 0.02, 0.15)]
    found = compute_findings(make_result(runs, study="vgg-depth"))
    keyed = [f for f in found if f.outcome is not None]
    assert len({f.key for f in keyed}) == len(keyed)
    for f in keyed:
        assert "seed" in f.text and f.question in ("depth", "bn", "lrn", "1x1"), f.key
    shifted = [dataclasses.replace(r, seed=r.seed + 3) for r in runs]
    keys = {f.key for f in compute_findings(make_result(shifted, study="vgg-depth")) if f.key}
    assert keys == {f.key for f in found if f.key}


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
    config = json.loads((root / "runs" / "vgg11-s0" / "config.json").read_text())
    assert (
        config["init"] == PRESETS["quick"].init and config["model_kwargs"]["width"] == PRESETS["quick"].width
    )
    report = build_report(root)
    assert report.figures == ("Final error vs depth, without and with batch norm, beside VGG Table 3",
                              "Training error vs iterations")  # fmt: skip
    assert "Final error by configuration" in report.html


@pytest.mark.slow
def test_warm_start_copies_the_papers_layers_from_a_of_the_same_seed(tmp_path: Path) -> None:
    """--set warm_start=true: D starts from A's run of the same seed (a path inside the study directory),
    copying exactly A's first four convs and the head (the paper's §3.1), nothing else."""
    import fnmatch

    from depthlab.train import load_run_model
    from studies import TINY_VGG, run_tiny

    overrides = [
        *[o for o in TINY_VGG if not o.startswith(("plain=", "bn="))],
        "plain=A,D",
        "bn=A",
        "warm_start=true",
    ]
    root, _ = run_tiny("vgg-depth", overrides, tmp_path / "study")
    summary = json.loads((root / "runs" / "vgg16-s0" / "summary.json").read_text())
    record = summary["warm_start"]
    assert Path(record["source"]) == root / "runs" / "vgg11-s0" and record["step"] == 4
    a = load_run_model(root / "runs" / "vgg11-s0", "last").state_dict()
    expected = {n for n in a if any(fnmatch.fnmatchcase(n, p) for p in WARM_LAYERS)}
    assert set(record["copied"]) == expected and "stages.3.conv4_1.conv.weight" not in expected
    assert json.loads((root / "runs" / "vgg11-s0" / "summary.json").read_text()).get("warm_start") is None
