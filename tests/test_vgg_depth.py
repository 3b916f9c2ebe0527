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
from scipy import stats as sps

from depthlab import create_model
from depthlab.studies import get_study
from depthlab.studies.engine import Finding, StudyError, apply_preset_overrides
from depthlab.studies.vgg_depth import DEPTH, MODELS, PRESETS, TABLE3
from depthlab.studies.vgg_depth.findings import compute_findings
from depthlab.studies.vgg_depth.presets import BASE, WARM_LAYERS
from studies import holm_by_hand, make_result, margin_tests, study_run, tiny_vgg_study

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
        assert p.eval_train and p.eval_subset is None  # the final training error covers the whole subset
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

    preset = apply_preset_overrides(PRESETS["quick"], ["data=synthetic:channels=1,size=16,train=64,test=64,classes=4",
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


def _run(config: str, bn: bool, seed: int, train: float, test: float, curve: tuple[float, float] | None = None,
         running: tuple[float, float] | None = None) -> Any:  # fmt: skip
    """A finished run of 300 iterations; ``curve``: its eval-mode training error at iterations 270 and 300
    (default: flat at ``train``); ``running``: its running training error over iterations 241–270 and
    271–300 (the windows of the convergence reading), logged every 10 iterations (default: none logged)."""
    name = f"{config}+BN" if bn else config
    before, after = curve if curve is not None else (train, train)
    curves: dict[str, Any] = {"train_eval": ((30, 0.5), (270, before), (300, after)), "test": ((300, test),)}
    if running is not None:
        curves["train"] = tuple((s, running[0] if s <= 270 else running[1]) for s in range(10, 301, 10))
    return study_run(f"{name}-{seed}", name, {"config": config, "bn": bn, "depth": DEPTH[config]}, seed=seed,
                     final={"train_eval": after, "test": test}, images={"train_eval": 1000, "test": 10000},
                     curves=curves, steps=300, data={"num_classes": 10})  # fmt: skip


def _condition(config: str, bn: bool, train: float, test: float, spread: tuple[float, ...] = NOISE,
               curve: tuple[float, float] | None = None,
               running: tuple[tuple[float, float], ...] | None = None) -> list[Any]:  # fmt: skip
    return [_run(config, bn, s, train + d, test + d, curve, running[i] if running else None)
            for i, (s, d) in enumerate(zip(SEEDS, spread, strict=True))]  # fmt: skip


def _test_errors(runs: list[Any], label: str) -> np.ndarray:
    return np.array([r.final["test"] for r in runs if r.condition == label])


def _findings(runs: list[Any]) -> dict[str, Finding]:
    return {f.key: f for f in compute_findings(make_result(runs, study="vgg-depth")) if f.key}


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
    assert "mcnemar" not in f.text.lower() and "paired_test" not in f.numbers  # the seed is the unit
    assert by["test_error:D:A"].outcome == "lower" and by["test_error:E:D"].outcome == "lower"
    # The numbers are scipy's Welch interval of the hand-made values.
    e, a = [0.116, 0.12, 0.124], [0.156, 0.16, 0.164]
    ci = sps.ttest_ind(e, a, equal_var=False).confidence_interval(0.95)
    assert by["test_error:E:A"].numbers["ci"]["low"] == pytest.approx(ci.low)
    assert by["test_error:E:A"].numbers["ci"]["high"] == pytest.approx(ci.high)
    answer = _answers(runs)["depth"]
    assert answer.verdict == "supported" and answer.primary == "test_error:E:A"
    assert answer.evidence[:3] == ("test_error:E:A", "test_error:D:A", "test_error:E:D")
    assert "secondary: D 13.0% vs A 16.0%" in answer.numbers


# ---------------------------------------------------------------------------- every verdict, by hand
def _depth_runs(bn: bool, deep: tuple[float, ...], shallow: tuple[float, ...]) -> list[Any]:
    """A and E (with or without BN) with the given test errors, one per seed."""
    return [*(_run("A", bn, s, 0.02, t) for s, t in zip(SEEDS, shallow, strict=True)),
            *(_run("E", bn, s, 0.01, t) for s, t in zip(SEEDS, deep, strict=True))]  # fmt: skip


@pytest.mark.parametrize("bn", [False, True])
@pytest.mark.parametrize(
    ("deep", "verdict"),
    [
        ((0.116, 0.12, 0.124), "supported"),  # E 4 points below A
        ((0.196, 0.20, 0.204), "contradicted"),  # E 4 points above A
        ((0.10, 0.16, 0.22), "not resolved"),  # E's seeds straddle A
    ],
)
def test_depth_verdicts_from_the_two_sided_welch_test(
    bn: bool, deep: tuple[float, ...], verdict: str
) -> None:
    """E − A on test error, without BN (``depth``) and with it (``bn``): one two-sided Welch test, the only
    answer here (Holm over one test leaves p as it is)."""
    shallow = (0.156, 0.16, 0.164)
    qid = "bn" if bn else "depth"
    answers = _answers(_depth_runs(bn, deep, shallow))
    assert set(answers) == {qid}
    a = answers[qid]
    expected = sps.ttest_ind(deep, shallow, equal_var=False)
    assert a.test.p == pytest.approx(expected.pvalue) and a.p_holm == pytest.approx(expected.pvalue)
    assert a.test.p_support == pytest.approx(
        sps.ttest_ind(deep, shallow, equal_var=False, alternative="less").pvalue
    )
    assert a.verdict == verdict
    assert a.primary == ("test_error:E+BN:A+BN" if bn else "test_error:E:A")


def test_a_net_at_chance_did_not_train_and_is_never_degradation() -> None:
    """Issue 15: E without BN at 87% training error (chance) was called 'the degradation problem'. A
    comparison with a net that did not train has no primary test: the answer is not resolved and says why."""
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
    answers = _answers(runs)
    depth = answers["depth"]
    assert depth.verdict == "not resolved" and depth.test is None and depth.p_holm is None
    assert (
        "E did not train in 3 of 3 seeds" in depth.numbers
        and "did not train: E (3 of 3 seeds)" in depth.numbers
    )
    assert "no primary test;" in depth.numbers and "too few seeds" not in depth.numbers
    # The BN answer is the only one tested: Holm over one test.
    assert answers["bn"].verdict == "supported" and answers["bn"].p_holm == pytest.approx(
        answers["bn"].test.p
    )


def test_a_net_that_trained_in_some_seeds_only() -> None:
    runs = [*_condition("A", False, 0.02, 0.16), *_condition("E", False, 0.01, 0.12, spread=(0.0, 0.0, 0.0))]
    runs[-1] = _run("E", False, 2, 0.87, 0.89)  # one seed stuck at chance
    by = _findings(runs)
    assert "E did not train in 1 of 3 seeds" in by["trained:E"].text
    assert by["test_error:E:A"].outcome == "not resolved"
    assert _answers(runs)["depth"].test is None


def test_degradation_is_named_only_when_both_nets_train() -> None:
    runs = [*_condition("A", False, 0.02, 0.16), *_condition("E", False, 0.20, 0.25)]
    f = _findings(runs)["train_error:E:A"]
    assert f.outcome == "higher" and "degradation He et al. 2016 describe" in f.text


@pytest.mark.parametrize(
    ("lrn", "verdict"),
    [
        ((0.157, 0.161, 0.165), "supported"),  # LRN changes nothing: inside the 1.6-point margin
        ((0.176, 0.18, 0.184), "supported"),  # LRN hurts: it certainly does not improve
        ((0.116, 0.12, 0.124), "contradicted"),  # LRN improves by 4 points, beyond the margin
        ((0.10, 0.15, 0.20), "not resolved"),  # seeds 5 points apart
        ((0.14, 0.1435, 0.147), "not resolved"),  # improves by 1.65 points, at the margin
    ],
)
def test_lrn_verdicts_from_the_non_inferiority_test(lrn: tuple[float, ...], verdict: str) -> None:
    """A-LRN − A > −margin, the margin 10% of A's test error (1.6 points): the one-sided Welch test of
    (A-LRN + margin) − A > 0 supports the claim, the other side contradicts it."""
    a = (0.156, 0.16, 0.164)
    runs = [*(_run("A", False, s, 0.02, t) for s, t in zip(SEEDS, a, strict=True)),
            *(_run("A-LRN", False, s, 0.02, t) for s, t in zip(SEEDS, lrn, strict=True))]  # fmt: skip
    answer = _answers(runs)["lrn"]
    p_support, p_contradict = margin_tests(lrn, a, 0.1 * float(np.mean(a)))
    assert (answer.test.p_support, answer.test.p_contradict) == pytest.approx((p_support, p_contradict))
    assert answer.verdict == verdict and answer.primary == "test_error:A-LRN:A"
    assert "margin 1.6 points: 10% of A's error" in answer.numbers


def test_lrn_same_only_by_equivalence_and_unresolved_says_so() -> None:
    """Issue 14: 'LRN does not help, as in Table 3' was printed from a difference within the margin."""
    same = [*_condition("A", False, 0.02, 0.160), *_condition("A-LRN", False, 0.02, 0.161)]
    f = _findings(same)["test_error:A-LRN:A"]
    assert f.outcome == "equivalent" and f.question == "lrn"
    assert (
        "the same test error within ±1.6 points" in f.text and "TOST" in f.text and "as in Simonyan" in f.text
    )
    assert f.numbers["equivalence"]["bound"] == pytest.approx(0.016)  # 10% of A's 16.0%
    # Seeds 6 points apart: neither a difference nor an equivalence can be claimed.
    noisy = [*_condition("A", False, 0.02, 0.16, spread=(-0.06, 0.0, 0.06)),
             *_condition("A-LRN", False, 0.02, 0.165, spread=(0.06, -0.06, 0.0))]  # fmt: skip
    f = _findings(noisy)["test_error:A-LRN:A"]
    assert f.outcome == "not resolved"
    assert "is not resolved" in f.text and "95% CI [" in f.text and "3 seeds each" in f.text
    assert "Simonyan" not in f.text and "does not help" not in f.text
    assert "nor is equivalence within ±1.6 points shown" in f.text
    helps = [*_condition("A", False, 0.02, 0.16), *_condition("A-LRN", False, 0.02, 0.12)]
    assert _findings(helps)["test_error:A-LRN:A"].outcome == "lower"


@pytest.mark.parametrize(
    ("c", "verdict"),
    [
        ((0.146, 0.15, 0.154), "supported"),  # C 2 points above D
        ((0.106, 0.11, 0.114), "contradicted"),  # C 2 points below D
        ((0.126, 0.131, 0.136), "not resolved"),  # the same within the margin: equivalence does not decide it
    ],
)
def test_1x1_verdicts_from_the_two_sided_welch_test(c: tuple[float, ...], verdict: str) -> None:
    d = (0.126, 0.13, 0.134)
    runs = [*(_run("C", False, s, 0.01, t) for s, t in zip(SEEDS, c, strict=True)),
            *(_run("D", False, s, 0.01, t) for s, t in zip(SEEDS, d, strict=True))]  # fmt: skip
    answer = _answers(runs)["1x1"]
    assert answer.test.p == pytest.approx(sps.ttest_ind(c, d, equal_var=False).pvalue)
    assert answer.test.p_support == pytest.approx(
        sps.ttest_ind(c, d, equal_var=False, alternative="greater").pvalue
    )
    assert answer.verdict == verdict and answer.primary == "test_error:C:D"
    f = _findings(runs)["test_error:C:D"]
    assert f.question == "1x1" and (verdict != "supported" or "as in Simonyan" in f.text)
    if verdict == "not resolved":
        assert f.outcome == "equivalent"


def test_a_verdict_needs_its_holm_adjusted_p_value() -> None:
    """Each of the four answers resolves at 95% on its own (raw p = 0.028), but Holm's adjustment over the
    four lifts every one to 4 × 0.028 = 0.11: not resolved. Checked against scipy's p-values and Holm written
    out by hand (the smallest of m p-values times m, then monotone)."""
    a, step = (0.156, 0.16, 0.164), 0.011
    below = tuple(t - step for t in a)
    runs = [
        *(_run("A", False, s, 0.02, t) for s, t in zip(SEEDS, a, strict=True)),
        *(_run("E", False, s, 0.01, t) for s, t in zip(SEEDS, below, strict=True)),  # depth: lower
        *(_run("A", True, s, 0.01, t) for s, t in zip(SEEDS, a, strict=True)),
        *(_run("E", True, s, 0.01, t) for s, t in zip(SEEDS, below, strict=True)),  # bn: lower
        # LRN improves by 0.5 points: 1.1 points inside the 1.6-point margin
        *(_run("A-LRN", False, s, 0.02, t - 0.005) for s, t in zip(SEEDS, a, strict=True)),
        *(_run("D", False, s, 0.01, t) for s, t in zip(SEEDS, a, strict=True)),
        *(_run("C", False, s, 0.01, t + step) for s, t in zip(SEEDS, a, strict=True)),  # 1x1: higher
    ]
    answers = _answers(runs)
    margin = 0.1 * float(np.mean(a))
    raw = {
        "depth": sps.ttest_ind(below, a, equal_var=False).pvalue,
        "bn": sps.ttest_ind(below, a, equal_var=False).pvalue,
        "lrn": 2
        * sps.ttest_ind(np.array(a) - 0.005 + margin, a, equal_var=False, alternative="greater").pvalue,
        "1x1": sps.ttest_ind(np.array(a) + step, a, equal_var=False).pvalue,
    }
    holm = holm_by_hand(raw)
    for qid, p in raw.items():
        assert 0.0125 < p < 0.05, qid  # each resolved alone …
        assert answers[qid].test.p == pytest.approx(p), qid
        assert answers[qid].p_holm == pytest.approx(holm[qid]) and holm[qid] >= 0.05, qid  # … none after Holm
        assert answers[qid].verdict == "not resolved", qid
        assert "Holm-adjusted over 4 answers" in answers[qid].numbers
    assert _findings(runs)["test_error:E:A"].outcome == "lower"  # secondary findings are not adjusted


def test_non_finite_errors_are_unknown_never_a_verdict() -> None:
    runs = [*_condition("A", False, 0.02, 0.16), *_condition("E", False, 0.01, 0.13)]
    runs[-1] = _run("E", False, 2, 0.01, float("nan"))
    f = _findings(runs)["test_error:E:A"]
    assert f.outcome == "unknown" and "unknown: non-finite values" in f.text and "as in" not in f.text
    answer = _answers(runs)["depth"]
    assert answer.verdict == "not resolved" and answer.test.p is None


def test_convergence_is_the_shared_rule_and_never_withholds_a_verdict() -> None:
    """Each net's running training error over the last 10% of iterations (271–300) against the 10% before
    (241–270), paired by seed: E still falling, A flat. The depth answer keeps its verdict and names the
    budget and both states (issue 23; it used to be withheld while a net was still falling)."""
    runs = [
        *_condition("A", False, 0.02, 0.16, running=((0.030, 0.031), (0.032, 0.030), (0.031, 0.031))),
        *_condition("E", False, 0.01, 0.12, running=((0.10, 0.05), (0.11, 0.06), (0.12, 0.08))),
    ]
    by = _findings(runs)
    e, a = by["convergence:E"], by["convergence:A"]
    assert e.numbers["state"] == "still falling" and e.question == "depth" and "271–300" in e.text
    assert e.numbers["difference"] == pytest.approx(-0.14 / 3)  # (−5 − 5 − 4 points) / 3
    after, before = [0.05, 0.06, 0.08], [0.10, 0.11, 0.12]
    ci = sps.ttest_rel(after, before).confidence_interval(0.95)
    assert (e.numbers["ci"]["low"], e.numbers["ci"]["high"]) == pytest.approx((ci.low, ci.high))
    assert a.numbers["state"] == "flat" and "±0.5 points" in a.text  # the recipe's plateau_bound
    answer = _answers(runs)["depth"]
    assert answer.verdict == "supported"
    assert answer.budget == "after 300 iterations" and answer.states == {"E": "still falling", "A": "flat"}
    assert answer.numbers.endswith("after 300 iterations: E still falling, A flat")
    assert not any(k.startswith("plateau:") for k in by)


def test_a_stalled_seed_is_named_with_the_median() -> None:
    assert not any(k.startswith("spread:") for k in _findings(_condition("A", False, 0.02, 0.16)))
    six = [_run("A", False, s, t, 0.16) for s, t in enumerate((0.020, 0.022, 0.019, 0.021, 0.080, 0.020))]
    f = _findings(six)["spread:A"]
    assert f.question == "depth" and "seed 4 at 8.0%" in f.text and "stalled" in f.text
    assert f.numbers["outlying"] == [4] and f.numbers["median"] == pytest.approx(0.0205)


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
    answer = _answers(runs)["bn"]
    assert (
        answer.verdict == "supported"
        and "does BN change the depth effect on test error (secondary)" in answer.numbers
    )
    assert f.key in answer.evidence


def test_the_seed_is_the_unit_no_image_level_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-image results exist, but no comparison reads them (issue 23): three seeds whose means differ
    consistently resolve the Welch interval, and nothing else is attached."""
    import depthlab.train.evaluation as evaluation

    def fail(run_dir: Path, split: str) -> np.ndarray:
        raise AssertionError("a study finding read per-image results")

    monkeypatch.setattr(evaluation, "load_correct", fail)
    runs = [*_condition("A", False, 0.02, 0.16), *_condition("D", False, 0.01, 0.13)]
    f = _findings(runs)["test_error:D:A"]
    assert f.outcome == "lower" and "paired_test" not in f.numbers and "mcnemar" not in f.text.lower()


def test_every_comparison_names_its_seeds_and_keys_are_stable() -> None:
    grid = (("A", False), ("A-LRN", False), ("C", False), ("D", False), ("E", False), ("A", True), ("D", True),
            ("E", True))  # fmt: skip
    runs = [r for c, bn in grid for r in _condition(c, bn, 0.02, 0.15, running=((0.03, 0.03),) * 3)]
    found = compute_findings(make_result(runs, study="vgg-depth"))
    keyed = [f for f in found if f.outcome is not None]
    assert len({f.key for f in keyed}) == len(keyed)
    for f in keyed:
        assert "seed" in f.text and f.question in ("depth", "bn", "lrn", "1x1"), f.key
    assert {f.question for f in found if f.key.startswith("convergence:")} == {"depth", "bn", "lrn", "1x1"}
    shifted = [dataclasses.replace(r, seed=r.seed + 3) for r in runs]
    keys = {f.key for f in compute_findings(make_result(shifted, study="vgg-depth")) if f.key}
    assert keys == {f.key for f in found if f.key}


def test_quick_runs_six_seeds_and_old_bounds_still_load(tmp_path: Path) -> None:
    """Issue 23: the quick preset runs 6 seeds; the bounds are the recipe's (plateau_bound, margin) plus
    chance_margin, all judging fields; a study.json that recorded the old error_bound and plateau_bound
    still loads, judged by the code's bounds."""
    from depthlab.studies.declare import Recipe, preset_to_dict
    from depthlab.studies.results import recorded_settings

    quick = PRESETS["quick"]
    assert quick.seeds == 6 and PRESETS["gpu"].seeds == 6
    assert not hasattr(quick, "error_bound") and quick.plateau_bound == Recipe.plateau_bound
    assert type(quick).JUDGING == (*Recipe.JUDGING, "chance_margin")
    old = {**preset_to_dict(quick), "error_bound": 0.02, "plateau_bound": 0.01, "seeds": 3}
    (tmp_path / "study.json").write_text(json.dumps({"study": "vgg-depth", "preset": old, "seeds": 3,
                                                     "seed_offset": 0, "overrides": []}))  # fmt: skip
    recorded = recorded_settings(tmp_path)
    assert recorded is not None and recorded.preset.plateau_bound == 0.005 and recorded.preset.seeds == 3
    with pytest.raises(StudyError, match="unknown preset key 'error_bound'"):
        apply_preset_overrides(quick, ["error_bound=0.02"])


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
