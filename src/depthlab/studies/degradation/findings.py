"""The degradation study's findings, in two stages: comparisons, then sentences.

Stage 1 (``compare_*``) turns the typed evidence of :mod:`.evidence` into
:class:`~depthlab.stats.Difference` objects: Welch t intervals across seeds — the seed is the unit, not the
image — and TOST where a sentence would say "the same", against a bound fixed in the preset (a fraction of
the reference condition's error, ``margin``). The convergence of each net is the shared rule of
:mod:`depthlab.studies.common`. Stage 2 (``_*_text`` templates) writes each as one sentence that says the
outcome, the difference with its 95% CI, the method and the seeds; "as/unlike the paper" only when
resolved; "unknown" for non-finite evidence. These findings are secondary: each question's primary test
and its multiplicity adjustment are in :mod:`.answers`.

Every comparison finding carries a stable ``key`` (the same in every directory of the study, for
``depthlab replicate``) and the ``question`` (:mod:`.answers`) it is evidence for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from depthlab.analysis.shattered import compare, condition_text
from depthlab.present.format import difference_ci, pct, sci
from depthlab.stats import (
    Difference,
    Equivalence,
    Estimate,
    bounded_outcome,
    compare_log,
    equivalence,
    seeds_text,
    welch,
)
from depthlab.studies.common import (
    convergence_finding,
    convergence_reading,
    outlier_finding,
    pair_seeds_text,
    relative_bound,
)
from depthlab.studies.declare import Finding
from depthlab.studies.degradation.evidence import (
    EXPLODE,
    VANISH,
    ErrorEvidence,
    GradientEvidence,
    GradientMeasure,
    conditions,
    error_evidence,
    gradient_evidence,
    response_estimate,
    shattered_evidence,
)
from depthlab.studies.degradation.grid import NO_BN_TWIN, ConditionKey
from depthlab.studies.degradation.presets import DegradationPreset
from depthlab.studies.results import StudyResult, status_findings

__all__ = [
    "QUESTIONS",
    "NOT_VANISHING",
    "Comparison",
    "compare_errors",
    "compare_growth",
    "growth_bound",
    "growth_vs_zero",
    "compare_responses",
    "error_comparison",
    "response_comparisons",
    "preset_bounds",
    "compute_findings",
    "Degradation",
    "degraded",
]

# The questions (ids of :mod:`.answers`) findings are grouped under.
QUESTIONS = ("degradation", "vanishing", "shortcuts", "deeper_resnet", "test_error", "shattered", "responses")

# Gradient outcomes that rule vanishing out (resolved above the vanishing threshold).
NOT_VANISHING = ("exploding", "neither", "not vanishing")


def preset_bounds(result: StudyResult) -> tuple[float, float]:
    """(``plateau_bound``, ``margin``) of the study's preset, or the recipe defaults for runs no study wrote."""
    preset = result.preset if result.preset is not None else DegradationPreset()
    return preset.plateau_bound, preset.margin


# -------------------------------------------------------------------------------- stage 1: comparisons
@dataclass(frozen=True)
class Comparison:
    """A difference with what its sentence needs: the measure's name, how values are written, and an
    equivalence test when one was made.

    The outcome is ``higher``/``lower`` when the 95% CI excludes 0, else ``equivalent`` when the TOST keeps
    the difference inside ±bound, else ``not resolved`` — direction first, then equivalence, in every
    comparison of this study (a resolved difference smaller than the bound is reported as the direction
    it is, and its sentence says it is also within the bound)."""

    difference: Difference
    noun: str
    kind: str  # "error" (fractions, in points), "log" (log10 ratios, as factors), "value" (raw)
    equivalence: Equivalence | None = None

    @property
    def outcome(self) -> str:
        """``unknown`` for non-finite values; otherwise see the class docstring (a side with fewer than two
        seeds, e.g. after its other seeds diverged, has no interval: ``not resolved``)."""
        d = self.difference
        if d.unknown:
            return "unknown"
        return bounded_outcome(d, self.equivalence)

    def numbers(self) -> dict[str, object]:
        out = self.difference.to_dict()
        out["outcome"] = self.outcome
        if self.equivalence is not None:
            out["equivalence"] = self.equivalence.to_dict()
        return out


def compare_errors(
    a: ErrorEvidence, b: ErrorEvidence, split: str, bound: float | None = None
) -> Comparison | None:
    """``a − b`` of the final error of ``split`` ("train" or "test"): Welch over seeds; TOST against
    ``bound`` (in error units) when given."""
    ea, eb = (a.train, b.train) if split == "train" else (a.test, b.test)
    if ea is None or eb is None:
        return None
    d = welch(a.label, ea, b.label, eb)
    noun = (
        ("training error" if a.split == "train_eval" else "running training error")
        if split == "train"
        else "test error"
    )
    return Comparison(d, noun, "error", equivalence(d, bound) if bound is not None and bound > 0 else None)


def _relative_bound(reference: ErrorEvidence, split: str, margin: float) -> float | None:
    """The preset's relative ``margin`` of the reference condition's mean error of ``split``, in error units."""
    return relative_bound(reference.train if split == "train" else reference.test, margin)


def error_comparison(result: StudyResult, a: ConditionKey, b: ConditionKey, split: str) -> Comparison | None:
    """``a − b`` of the final ``split`` error, with the TOST against the preset's margin of ``b``'s error."""
    ev = error_evidence(result)
    if a not in ev or b not in ev:
        return None
    _, margin = preset_bounds(result)
    return compare_errors(ev[a], ev[b], split, _relative_bound(ev[b], split, margin))


def growth_bound(blocks: int) -> float:
    """The growth per block (log10) that compounds to the outcome thresholds' factor 10 over ``blocks``
    blocks: the equivalence bound of "no growth"."""
    return math.log10(EXPLODE) / max(1, blocks - 1)


def growth_vs_zero(m: GradientMeasure) -> Comparison | None:
    """The growth per block toward the input against 0 (no growth): a one-sample t interval over seeds,
    written as the difference from a condition whose every seed is 0 — resolved as growth or shrinkage when
    its CI excludes 0, and also tested (TOST) against :func:`growth_bound`, the rate that compounds to a
    factor 10 over the whole net, so a sentence can say "grows, but by less than a factor 10"."""
    if m.growth is None:
        return None
    zero = Estimate(tuple(0.0 for _ in m.growth.values))
    d = welch(m.condition, m.growth, "no growth", zero)
    return Comparison(d, "growth per block", "value", equivalence(d, growth_bound(m.blocks)))


def compare_growth(a: GradientMeasure, b: GradientMeasure) -> Comparison | None:
    if a.growth is None or b.growth is None:
        return None
    return Comparison(welch(a.condition, a.growth, b.condition, b.growth), "growth per block", "value")


def compare_responses(a_label: str, a: Estimate, b_label: str, b: Estimate) -> Comparison:
    return Comparison(compare_log(a_label, a, b_label, b), "mean response std", "log")


def response_comparisons(result: StudyResult) -> list[tuple[tuple[ConditionKey, ConditionKey], Comparison]]:
    """At every depth with both nets: ResNet − plain of the mean log10 response std after training (Fig. 7)."""
    by = conditions(result)
    out = []
    for depth in sorted({k.depth for k in by}):
        p, r = ConditionKey(depth, False), ConditionKey(depth, True)
        if p not in by or r not in by:
            continue
        ep, er = response_estimate(by[p]), response_estimate(by[r])
        if ep is not None and er is not None:
            out.append(((r, p), compare_responses(r.label, er, p.label, ep)))
    return out


# ---------------------------------------------------------------------------------- stage 2: templates
def _value(kind: str, e: Estimate) -> str:
    if not e.values:
        return "—"  # no seed to average (every one diverged): the CI's reason says so
    if kind == "error":
        return pct(e.mean)
    if kind == "log":
        return sci(10**e.mean) if math.isfinite(e.mean) else "non-finite"
    return f"{e.mean:+.3f}" if math.isfinite(e.mean) else "non-finite"


def _interval(c: Comparison) -> str:
    d = c.difference
    low, high = (d.ci.low, d.ci.high) if d.ci is not None else (None, None)
    why = d.no_interval if not d.unknown else None  # an unknown value is said by the sentence itself
    if c.kind == "error":
        text = difference_ci(d.difference, low, high, reason=why)
    elif c.kind == "log":
        text = difference_ci(d.difference, low, high, scale=1.0, unit="in log10", digits=2, reason=why)
        text += f" (a factor {sci(10**d.difference)})" if math.isfinite(d.difference) else ""
    else:
        text = difference_ci(d.difference, low, high, scale=1.0, unit="", digits=3, reason=why)
    return text + f", {d.method}, {pair_seeds_text(d)}"


def _bound_text(c: Comparison) -> str:
    e = c.equivalence
    if e is None or e.ci is None:
        return ""
    if c.kind == "error":
        return f"±{100 * e.bound:.1f} points, TOST 90% CI [{100 * e.ci.low:+.1f}, {100 * e.ci.high:+.1f}]"
    if c.kind == "log":
        return f"a factor {10**e.bound:.2f}, TOST 90% CI [{e.ci.low:+.2f}, {e.ci.high:+.2f}] in log10"
    return f"±{e.bound:.3f}, TOST 90% CI [{e.ci.low:+.3f}, {e.ci.high:+.3f}]"


def comparison_text(c: Comparison, *, expected: str | None = None, paper: str = "He et al.",
                    words: Mapping[str, str] | None = None) -> str:  # fmt: skip
    """One sentence: "{a} has higher {noun} than {b} ({a} vs {b}; difference, CI, method, seeds)" — or
    "not resolved", "equivalent within …", "unknown". ``expected``: the outcome ``paper`` reports for a − b;
    a resolved sentence then adds "as … report" or "unlike …"."""
    d = c.difference
    words = {"higher": "higher", "lower": "lower", **(words or {})}
    values = f"{_value(c.kind, d.a)} vs {_value(c.kind, d.b)}"
    outcome = c.outcome
    if outcome == "unknown":
        return (
            f"{d.a_label} vs {d.b_label}, {c.noun}: unknown — a non-finite value ({values}, {pair_seeds_text(d)}), so no "
            "comparison is drawn."
        )
    if outcome in ("higher", "lower"):
        text = f"{d.a_label} has {words[outcome]} {c.noun} than {d.b_label} ({values}; {_interval(c)})"
        if expected is not None:
            text += f", as {paper} report" if outcome == expected else f", unlike {paper}"
        e = c.equivalence
        if e is not None and e.equivalent:
            text += f"; the difference is also within {_bound_text(c)}"
        return text + "."
    if outcome == "equivalent":
        return (
            f"{d.a_label} and {d.b_label} have equivalent {c.noun} within {_bound_text(c)} ({values}; "
            f"{_interval(c)})."
        )
    tail = f"; not equivalent within {_bound_text(c)} either" if _bound_text(c) else ""
    return f"{d.a_label} vs {d.b_label}, {c.noun}: not resolved ({values}; {_interval(c)}{tail})."


def _finding(c: Comparison, text: str, topic: str, when: str, key: str, question: str) -> Finding:
    return Finding(text, topic, when, c.numbers(), outcome=c.outcome, key=key, question=question)


# ------------------------------------------------------------------------------------------ the errors
def _errors(result: StudyResult) -> list[Finding]:
    ev = error_evidence(result)
    out = [_method(ev, result)]
    by = conditions(result)
    plateau_bound, margin = preset_bounds(result)
    for key in ev:
        reading = convergence_reading(by[key], key.label, plateau_bound)
        if reading is not None:
            out.append(convergence_finding(reading, "degradation"))
        spread = outlier_finding(by[key], ev[key].split, "final training error", "degradation",
                                 f"spread:{key.label}")  # fmt: skip
        if spread is not None:
            out.append(spread)
    for residual in (False, True):
        keys = [k for k in ev if k.residual == residual and ev[k].train is not None]
        question = "deeper_resnet" if residual else "degradation"
        expected = "lower" if residual else "higher"  # Fig. 6: deeper plain nets higher, deeper ResNets lower
        pairs = list(zip(keys, keys[1:], strict=False))
        if len(keys) > 2:
            pairs.append((keys[0], keys[-1]))
        for shallow, deep in pairs:
            c = compare_errors(ev[deep], ev[shallow], "train", _relative_bound(ev[shallow], "train", margin))
            if c is not None:
                key = f"train_error:{deep.label}:{shallow.label}"
                out.append(_finding(c, comparison_text(c, expected=expected), "error", "end", key, question))
    for k in ev:
        twin = ConditionKey(k.depth, True)
        if not k.residual and twin in ev:
            c = compare_errors(ev[twin], ev[k], "train")
            if c is not None:
                key = f"train_error:{twin.label}:{k.label}"
                text = comparison_text(c, expected="lower")
                out.append(_finding(c, text, "error", "end", key, "shortcuts"))
    out += _test_errors(ev, margin)
    out += _overfitting(ev)
    return out


def _test_errors(ev: Mapping[ConditionKey, ErrorEvidence], margin: float) -> list[Finding]:
    keys = [k for k in ev if ev[k].test is not None]
    if not keys:
        return []
    deepest = max(k.depth for k in keys)
    shallowest = min(k.depth for k in keys)
    pairs = []
    # The paper's other half (Table 6 / Fig. 6 right): the deeper ResNet ends lower on test error.
    if deepest != shallowest:
        pairs.append((ConditionKey(deepest, True), ConditionKey(shallowest, True), "lower"))
        pairs.append((ConditionKey(deepest, False), ConditionKey(shallowest, False), "higher"))
    pairs.append((ConditionKey(deepest, True), ConditionKey(deepest, False), "lower"))
    out = []
    for a, b, expected in pairs:
        if a not in ev or b not in ev or ev[a].test is None or ev[b].test is None:
            continue
        c = compare_errors(ev[a], ev[b], "test", _relative_bound(ev[b], "test", margin))
        if c is None:
            continue
        key = f"test_error:{a.label}:{b.label}"
        out.append(_finding(c, comparison_text(c, expected=expected), "error", "end", key, "test_error"))
    return out


def _method(ev: Mapping[ConditionKey, ErrorEvidence], result: StudyResult) -> Finding:
    split = next(iter(ev.values())).split if ev else "train"
    train_images = max((e.train.images for e in ev.values() if e.train is not None), default=0)
    test_images = max((e.test.images for e in ev.values() if e.test is not None), default=0)
    seeds = sorted({s for e in ev.values() for s in e.seeds})
    plateau_bound, margin = preset_bounds(result)
    measure = (
        f"Training error is measured in eval mode over all {train_images:,} training images each net fits, at the "
        "last step"
        if split == "train_eval"
        else f"These runs did not record the eval-mode training error, so the running error of the last logged "
        f"training batches ({train_images:,} images) stands in for it"
    )
    return Finding(
        f"{measure}; test error over the {test_images:,} test images. Seeds {', '.join(map(str, seeds))}. The seed "
        "is the unit: each comparison gives the difference of the means with its 95% Welch t interval across "
        "seeds, and is higher, lower or not resolved (the interval includes 0); 'equivalent' only from two "
        f"one-sided tests against a bound fixed in the preset ({100 * margin:.0f}% of the reference net's "
        "error). Every run of a condition fits the same training images, so the intervals cover the seeds, "
        "not a resampling of the data. A net's convergence compares its running training error over the last "
        f"10% of iterations with the 10% before (flat within ±{100 * plateau_bound:g} points). These "
        "comparisons are secondary; each question's primary test, Holm-adjusted across the questions, is in "
        "its answer.",
        "method",
        "end",
        {"train_images": train_images, "test_images": test_images, "split": split, "seeds": seeds},
        key="method:errors",
        question="degradation",
    )


def _overfitting(ev: Mapping[ConditionKey, ErrorEvidence]) -> list[Finding]:
    """The deeper plain net's higher training error is not overfitting when it fits its own training images
    worse (resolved) — overfitting would lower the error on the images a net fits."""
    plain = [k for k in ev if not k.residual and ev[k].train is not None and ev[k].test is not None]
    if len(plain) < 2 or ev[plain[0]].split != "train_eval":
        return []
    shallow, deep = ev[plain[0]], ev[plain[-1]]
    c = compare_errors(deep, shallow, "train")
    if c is None or c.outcome != "higher":
        return []
    d = c.difference  # a: the deep net's training error, b: the shallow one's
    deep_test, shallow_test = deep.test, shallow.test
    if deep_test is None or shallow_test is None:
        return []
    gap_deep, gap_shallow = deep_test.mean - d.a.mean, shallow_test.mean - d.b.mean
    return [
        Finding(
            f"{deep.label}'s higher training error is not overfitting: overfitting would lower the error on the "
            f"images a net fits, and {deep.label} fits its own training images worse (resolved above); its "
            f"test − train gap is {100 * gap_deep:.1f} points vs {100 * gap_shallow:.1f} for {shallow.label} "
            f"(means of {d.a.seeds} and {d.b.seeds} seeds).",
            "error",
            "end",
            {"gap_deep": gap_deep, "gap_shallow": gap_shallow},
            key=f"overfitting:{deep.label}",
            question="degradation",
        )
    ]


@dataclass(frozen=True)
class Degradation:
    """The deepest plain net's training error against the shallowest's."""

    deep: ErrorEvidence
    shallow: ErrorEvidence
    comparison: Comparison


def degraded(result: StudyResult) -> Degradation | None:
    """The deepest vs the shallowest plain net on training error, or ``None`` with < 2 plain depths."""
    ev = error_evidence(result)
    plain = [k for k in ev if not k.residual and ev[k].train is not None]
    if len(plain) < 2:
        return None
    c = compare_errors(ev[plain[-1]], ev[plain[0]], "train")
    return Degradation(ev[plain[-1]], ev[plain[0]], c) if c is not None else None


# ------------------------------------------------------------------------------------------ the gradients
def _n_seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def _ratio_text(m: GradientMeasure) -> str:
    return ", ".join(sci(v) for v in m.ratio.values) if m.ratio is not None else "—"


def _growth_text(m: GradientMeasure) -> str:
    if m.growth is None:
        return "no growth measured"
    ci = m.growth.ci()
    interval = (
        f", 95% CI [{ci.low:+.3f}, {ci.high:+.3f}]" if ci is not None else f", no CI ({seeds_text(m.growth)})"
    )
    return f"{m.growth.mean:+.3f} log10 per block toward the input{interval}"


_OUTCOME_PHRASE: dict[str, str] = {
    "vanishing": f"vanishing (the 95% CI of the log10 ratio lies below log10 {VANISH:g})",
    "exploding": f"exploding: it grows toward the input (the 95% CI of the log10 ratio lies above log10 {EXPLODE:g})",
    "neither": f"neither vanishing nor exploding (the 95% CI of the log10 ratio lies between log10 {VANISH:g} and "
    f"log10 {EXPLODE:g})",
    "not vanishing": f"not vanishing (the 95% CI of the log10 ratio lies above log10 {VANISH:g}; whether it explodes "
    f"beyond {EXPLODE:g} is not resolved)",
    "not exploding": f"not exploding (the 95% CI of the log10 ratio lies below log10 {EXPLODE:g}; whether it vanishes "
    f"below {VANISH:g} is not resolved)",
    "not resolved": f"not resolved against the thresholds {VANISH:g} and {EXPLODE:g} (the 95% CI of the log10 ratio "
    "straddles both, or one seed)",
    "unknown": "unknown (a non-finite or zero gradient)",
}


def _measure_finding(m: GradientMeasure, key: ConditionKey, moment: str, setting_text: str) -> Finding | None:
    c = growth_vs_zero(m)
    if c is None or m.ratio is None:
        return None
    seeds = m.ratio.seeds
    per_seed = (
        f"{_n_seeds(seeds)}, per seed the median of {m.probes} probe{'s' if m.probes != 1 else ''} before the last step"
        if moment == "during"
        else f"one value per seed, {_n_seeds(seeds)}"
    )
    text = (
        f"{setting_text}, {m.condition}'s per-element (RMS) gradient at the first block's output is "
        f"{_ratio_text(m)}× that at the last block ({per_seed}): {_OUTCOME_PHRASE[m.outcome]}; "
        f"growth {_growth_text(m)}"
    )
    outcome = c.outcome
    bound = growth_bound(m.blocks)
    e = c.equivalence
    tost = f" (TOST 90% CI [{e.ci.low:+.3f}, {e.ci.high:+.3f}])" if e is not None and e.ci is not None else ""
    size = (
        f", by less than ±{bound:.3f} per block, the rate that compounds to a factor 10 over its {m.blocks} blocks{tost}"
        if e is not None and e.equivalent
        else f"; whether by more than ±{bound:.3f} per block (the rate that compounds to a factor 10) is not resolved{tost}"
    )
    if outcome == "higher":
        text += f" — resolved: it grows toward the input{size}."
    elif outcome == "lower":
        text += f" — resolved: it shrinks toward the input{size}."
    elif outcome == "equivalent":
        text += (
            f" — equivalent to no growth within ±{bound:.3f} log10 per block (a factor 10 over its {m.blocks} "
            f"blocks; TOST 90% CI [{c.equivalence.ci.low:+.3f}, {c.equivalence.ci.high:+.3f}])."
            if c.equivalence is not None and c.equivalence.ci is not None
            else f" — equivalent to no growth within ±{bound:.3f} log10 per block."
        )
    elif outcome == "unknown":
        text += " — unknown (non-finite)."
    else:
        text += f" — not resolved: neither within nor beyond ±{bound:.3f} per block (the rate that compounds to a factor 10)."
    numbers = {**c.numbers(), "ratio_first_last": list(m.ratio.values), "gradient_outcome": m.outcome}
    if m.forward is not None:
        numbers["forward_growth"] = list(m.forward.values)
    setting = {"init": "init_bn", "during": "during_bn", "init_no_bn": "init_no_bn"}[moment]
    return Finding(text, "gradient", "during" if moment == "during" else "init", numbers, outcome=outcome,
                   key=f"grad_growth:{setting}:{key.label}", question="vanishing")  # fmt: skip


def _gradients(result: StudyResult) -> list[Finding]:
    by = conditions(result)
    if not by:
        return []
    deep = max(k.depth for k in by)
    ev = {k: gradient_evidence(c, k) for k, c in by.items() if k.depth == deep}
    out: list[Finding] = []
    for k, g in ev.items():
        for moment, m, setting in (
            ("init", g.init_bn, "At initialisation with BN (training mode)"),
            ("during", g.during_bn, "During training with BN"),
            ("init_no_bn", g.init_no_bn, f"At initialisation {NO_BN_TWIN}"),
        ):
            f = _measure_finding(m, k, moment, setting)
            if f is not None:
                out.append(f)
        if g.init_no_bn.forward is not None and g.init_bn.forward is not None:
            out.append(_forward_finding(g, g.init_no_bn.forward, g.init_bn.forward))
    plain, res = ConditionKey(deep, False), ConditionKey(deep, True)
    if plain in ev and res in ev:
        c = compare_growth(ev[plain].init_bn, ev[res].init_bn)
        if c is not None:
            text = (
                "At initialisation with BN, the growth of the RMS gradient per block toward the input: "
                + (comparison_text(c))
            )
            out.append(_finding(c, text, "gradient", "init", f"grad_growth:init_bn:{plain.label}:{res.label}",
                                "vanishing"))  # fmt: skip
    s = ev[plain].stage_init if plain in ev else None
    if s is not None:
        out.append(
            Finding(
                f"The effective step ‖∂L/∂W‖/‖W‖ of {plain.label}'s first stage is "
                f"{', '.join(sci(v) for v in s.values)}× that of its last stage at initialisation (one value per "
                f"seed, {_n_seeds(s.seeds)}; with BN this, not ‖∂L/∂W‖, is how far an SGD step moves a layer).",
                "gradient",
                "init",
                {"init": list(s.values)},
                key=f"effective_step:{plain.label}",
                question="vanishing",
            )
        )
    out += _verdict(result, ev.get(plain))
    return out


def _forward_finding(g: GradientEvidence, nb: Estimate, bn: Estimate) -> Finding:
    """The forward signal growth of the BN-free twin (``nb``) and of the BN net (``bn``) at init."""
    return Finding(
        f"Forward signal at initialisation, {g.init_bn.condition}: the per-element (RMS) signal at the last block's "
        f"output is {', '.join(sci(v) for v in nb.values)}× that at the first {NO_BN_TWIN} (with BN: "
        f"{', '.join(sci(v) for v in bn.values)}×; one value per seed, {_n_seeds(nb.seeds)}).",
        "gradient",
        "init",
        {"forward_growth_no_bn": list(nb.values), "forward_growth_bn": list(bn.values)},
        key=f"forward:{g.key.label}",
        question="vanishing",
    )


def _verdict(result: StudyResult, g: GradientEvidence | None) -> list[Finding]:
    """Whether vanishing gradients explain the degradation, from the deepest plain net's outcomes with BN at
    initialisation and during training (never from the trained net alone)."""
    if g is None or g.init_bn.ratio is None:
        return []
    deg = degraded(result)
    during = g.during_bn.ratio is not None
    outcomes = {"init": g.init_bn.outcome, "during": g.during_bn.outcome if during else None}
    numbers = {"outcomes": outcomes, "init_ratio": list(g.init_bn.ratio.values),
               "during_ratio": list(g.during_bn.ratio.values) if g.during_bn.ratio else []}  # fmt: skip
    name = g.init_bn.condition
    states = (
        f"{outcomes['init']} at initialisation"
        + (f" and {outcomes['during']} during training" if during else "")
        + f", {_n_seeds(g.init_bn.ratio.seeds)}"
    )
    if deg is None or deg.comparison.outcome != "higher":
        text = (
            f"{name} does not end with a resolved higher training error than the shallowest plain net here, so there "
            f"is no degradation for the gradient measurements to explain (its gradient with BN is {states})."
        )
    elif all(o == "vanishing" for o in outcomes.values() if o is not None):
        text = (
            f"With BN, {name}'s gradient vanishes toward the input ({states}): consistent with the vanishing-gradient "
            f"explanation of its higher training error than {deg.shallow.label}."
        )
    elif all(o in NOT_VANISHING for o in outcomes.values() if o is not None):
        text = (
            f"Vanishing gradients do not explain {name}'s higher training error than {deg.shallow.label}: with BN its "
            f"per-element gradient does not vanish toward the input ({states}), against the lecture-note "
            "explanation. He et al. (§4.1) rule vanishing out too, reporting healthy gradient norms with BN; what "
            "is measured here is not that either where the gradient explodes toward the input at initialisation "
            "(a known effect of BN in deep plain nets). These measurements do not show what the cause is."
        )
    else:
        text = (
            f"Whether vanishing gradients explain {name}'s higher training error cannot be decided from these runs: "
            f"the gradient outcome with BN is {states}."
        )
    if g.init_no_bn.outcome == "vanishing":
        text += (
            f" {NO_BN_TWIN[0].upper()}{NO_BN_TWIN[1:]}, the same plain architecture's gradient does vanish at initialisation "
            "(the setting where the vanishing-gradient account applies)."
        )
    return [Finding(text, "verdict", "init+during" if during else "init", numbers, key=f"vanishing:{name}",
                    question="vanishing")]  # fmt: skip


# --------------------------------------------------------------------------------- shattered gradients
def _shattered(result: StudyResult) -> list[Finding]:
    ev = shattered_evidence(result)
    if ev is None:
        return []
    out = []
    for bn in (True, False):
        parts = [condition_text(c) for (k, b), c in ev.conditions.items() if b == bn]
        if parts:
            setting = "with BN (statistics of a held-out batch)" if bn else NO_BN_TWIN
            out.append(
                Finding(
                    f"Shattered gradients at initialisation, {setting}, on a {ev.points}-point line between two "
                    f"held-out images: {'; '.join(parts)}. Lag-1 autocorrelation ≈ 0 is white noise (shattered), → 1 "
                    "a smooth gradient.",
                    "shattered",
                    "init",
                    {c.label: c.to_dict() for (k, b), c in ev.conditions.items() if b == bn},
                    key=f"shattered_values:{'bn' if bn else 'no_bn'}",
                    question="shattered",
                )
            )
    deep = max((k.depth for k, _ in ev.conditions), default=None)
    for bn in (True, False):
        a, b = (
            ev.conditions.get((ConditionKey(deep or 0, True), bn)),
            ev.conditions.get((ConditionKey(deep or 0, False), bn)),
        )
        if a is None or b is None:
            continue
        d = compare(a, b)
        c = Comparison(d, "lag-1 autocorrelation of the gradient along the line", "value")
        setting = "with BN" if bn else NO_BN_TWIN
        text = f"Shattered gradients at initialisation, {setting}: " + comparison_text(
            c, expected="higher", paper="Balduzzi et al.",
        )  # fmt: skip
        key = f"shattered:{'bn' if bn else 'no_bn'}:{a.label}:{b.label}"
        out.append(_finding(c, text, "shattered", "init", key, "shattered"))
    return out


# -------------------------------------------------------------------------------------------- responses
def _responses(result: StudyResult) -> list[Finding]:
    out = []
    for (r, p), c in response_comparisons(result):
        text = (
            "After training (eval mode, Fig. 7), the mean std of the 3×3 layers' responses: "
            + comparison_text(
                c, expected="lower", words={"lower": "weaker (lower)", "higher": "stronger (higher)"}
            )
        )
        out.append(_finding(c, text, "response", "end", f"response:{r.label}:{p.label}", "responses"))
    return out


# ------------------------------------------------------------------------------------------------ all
def compute_findings(result: StudyResult) -> list[Finding]:
    """The study's findings, in reading order: status, errors (with the plateau check), gradients and the
    verdict, shattering, responses."""
    if not any(r.final for r in result.runs):
        return [Finding("No run has logged an error yet, so there is nothing to compare.", "status", "end",
                        key="status")]  # fmt: skip
    out: list[Finding] = status_findings(result)  # unfinished runs; diverged seeds, left out and counted
    sections: Sequence[Callable[[StudyResult], list[Finding]]] = (_errors, _gradients, _shattered, _responses)
    for make in sections:
        out += make(result)
    return out
