"""The degradation study's questions, each answered by one primary test (issue 23).

Each question rests on one :class:`~depthlab.stats.ClaimTest` built from the comparison its primary
finding made (read by key, never re-derived); the seven tests are Holm-adjusted together
(:func:`depthlab.studies.common.finalize`) and a verdict is ``supported`` or ``contradicted`` only when the
adjusted p-value is below 0.05. The verdict is about the claim in ``paper``. Every end-of-training answer
names its budget and the state of each net it compares (still falling, flat, …).

The primary tests: depth raises plain nets' training error (deepest − shallowest plain, two-sided Welch);
vanishing gradients explain it (the deepest plain net's first/last block gradient ratio with BN below 0.1,
at initialisation and during training: an intersection-union test of the two; contradicted when either is
resolved above 0.1; asked only where the degradation itself resolved); shortcuts remove it (deepest ResNet −
plain twin); the deepest ResNet ends no higher than the shallowest (non-inferiority: deep − shallow below the
preset's relative ``margin`` of the shallow net's error); the deeper ResNet ends below the shallower one on
test error; residual gradients are less shattered at initialisation (lag-1 autocorrelation, with BN); and
residual layers respond more weakly after training at every depth (an intersection-union test over the
depths, Fig. 7's two panels).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from depthlab.i18n import N_, _
from depthlab.stats import (
    ClaimTest,
    Difference,
    Estimate,
    claim_all,
    claim_margin,
    claim_sign,
    welch,
)
from depthlab.studies.common import answer, by_key, comparison_numbers, finalize, margin_text
from depthlab.studies.declare import Answer, Finding
from depthlab.studies.degradation.evidence import VANISH, conditions
from depthlab.studies.degradation.findings import (
    Comparison,
    Degradation,
    degraded,
    error_comparison,
    preset_bounds,
    response_comparisons,
)
from depthlab.studies.degradation.grid import ConditionKey
from depthlab.studies.results import StudyResult

__all__ = ["QUESTIONS", "PAPER", "answers"]

QUESTIONS = {
    "degradation": N_("Does depth raise training error in plain nets?"),
    "vanishing": N_(
        "Do the deepest plain net's gradients vanish toward the input (with BN), as the vanishing-gradient "
        "explanation of the degradation needs?"
    ),
    "shortcuts": N_(
        "Do shortcuts remove the degradation: does the deepest ResNet end below its plain twin on training error?"
    ),
    "deeper_resnet": N_("Does the deepest ResNet end no higher than the shallowest on training error?"),
    "test_error": N_("Does the deeper ResNet end below the shallower one on test error?"),
    "shattered": N_(
        "Are residual gradients less shattered at initialisation (lag-1 autocorrelation along a line of inputs, "
        "with BN)?"
    ),
    "responses": N_(
        "Do residual layers respond more weakly than plain ones after training, at every depth (Fig. 7)?"
    ),
}
PAPER = {
    "degradation": N_(
        "He et al. 2015 (Fig. 6 left, Table 6): yes — plain-56 ends above plain-20 on training error (the "
        "degradation problem)"
    ),
    "vanishing": N_(
        "Lecture notes on ResNets commonly say yes (no single source is checked here). He et al. 2015 (§4.1): "
        "unlikely — with BN they verified that the backward-propagated gradients have healthy norms. Gradients "
        "that vanish are necessary for the lecture notes' explanation, not proof of it: the verdict is about the "
        "gradients, and only a contradiction refutes the explanation."
    ),
    "shortcuts": N_("He et al. 2015 (Fig. 6, Table 6): yes — ResNet-56 ends far below plain-56"),
    "deeper_resnet": N_(
        "He et al. 2015 (Fig. 6 right): yes, lower — ResNet-56 below ResNet-20 throughout training"
    ),
    "test_error": N_(
        "He et al. 2015 (Table 6, CIFAR-10): yes — ResNet-56 6.97% vs ResNet-20 8.75% test error"
    ),
    "shattered": N_(
        "Balduzzi et al. 2017: yes — a plain net's gradients decorrelate with depth like white noise, a ResNet's "
        "stay correlated"
    ),
    "responses": N_(
        "He et al. 2015 (Fig. 7, the 20- and 56-layer panels): yes — ResNets' layer responses have smaller std "
        "than plain nets'"
    ),
}


def _answer(qid: str, numbers: str, evidence: Sequence[str], test: ClaimTest | None, primary: str, *,
            by: Mapping[str, Finding] | None = None, result: StudyResult | None = None,
            nets: Sequence[ConditionKey] = ()) -> Answer:  # fmt: skip
    """:func:`~depthlab.studies.common.answer` with this study's question and paper texts, shown translated."""
    return answer(qid, _(QUESTIONS[qid]), _(PAPER[qid]), numbers, evidence, test, primary, result=result, by=by,
                  nets=[k.label for k in nets])  # fmt: skip


@dataclass(frozen=True)
class _Paired:
    """A comparison of two nets' final errors and the key of the finding that made it."""

    deep: ConditionKey
    shallow: ConditionKey
    c: Comparison
    key: str

    @property
    def nets(self) -> tuple[ConditionKey, ConditionKey]:
        return (self.deep, self.shallow)


def _deepest(result: StudyResult, residual: bool, split: str) -> _Paired | None:
    """The deepest net of a family against the shallowest on the final ``split`` error, with the finding's key."""
    keys = [k for k in conditions(result) if k.residual == residual]
    if len(keys) < 2:
        return None
    deep, shallow = keys[-1], keys[0]
    c = error_comparison(result, deep, shallow, split)
    return None if c is None else _Paired(deep, shallow, c, f"{split}_error:{deep.label}:{shallow.label}")


def _degradation(result: StudyResult, by: Mapping[str, Finding]) -> Answer | None:
    p = _deepest(result, residual=False, split="train")
    if p is None:
        return None
    return _answer("degradation", comparison_numbers(p.c.difference, p.c.outcome), (p.key,),
                   claim_sign(p.c.difference, "higher"), p.key, by=by, result=result, nets=p.nets)  # fmt: skip


def _log_ratio_vs(e: Estimate, threshold: float, label: str) -> Difference:
    """A one-sample Welch comparison of the mean log10 ratio with log10 ``threshold``."""
    logs = Estimate(tuple(math.log10(v) if v > 0 and math.isfinite(v) else math.nan for v in e.values))
    return welch(label, logs, "threshold", Estimate((math.log10(threshold),) * len(e.values)))


def _vanishing(result: StudyResult, by: Mapping[str, Finding], deg: Degradation | None) -> Answer | None:
    verdict_f = next((f for k, f in by.items() if k.startswith("vanishing:")), None)
    if verdict_f is None:
        return None
    name = verdict_f.key.split(":", 1)[1]
    ratios = verdict_f.numbers
    parts = []
    for moment in ("init", "during"):
        values = ratios.get(f"{moment}_ratio") or []
        if values:
            parts.append(claim_sign(_log_ratio_vs(Estimate(tuple(values)), VANISH, name), "lower"))
    growth = [by[k] for k in (f"grad_growth:{s}:{name}" for s in ("init_bn", "during_bn")) if k in by]
    outcomes = {k: v for k, v in dict(ratios.get("outcomes", {})).items() if v}
    numbers = _("{name} with BN: gradient {states}").format(
        name=name, states=", ".join(f"{_(v)} {_('at init') if k == 'init' else _('during training')}"
                                    for k, v in outcomes.items()))  # fmt: skip
    for g in growth:
        ci = g.numbers.get("ci") or {}
        if ci:
            when = _("at init") if ":init_bn:" in g.key else _("during training")
            numbers += "; " + _("growth toward the input {when} {growth:+.3f} log10 per block, 95% CI [{low:+.3f}, "
                                "{high:+.3f}]").format(when=when, growth=g.numbers["difference"], low=ci["low"],
                                                        high=ci["high"])  # fmt: skip
    evidence = (verdict_f.key, *(g.key for g in growth))
    if deg is None or deg.comparison.outcome != "higher":
        # No degradation resolved, so nothing for the gradients to explain: no test is made.
        numbers += "; " + _("not asked: the deepest plain net's higher training error is not resolved")
        return _answer("vanishing", numbers, evidence, None, verdict_f.key)
    # The question asks what the probes can show — whether the gradients vanish — not whether that causes the
    # degradation: vanishing is necessary for the lecture notes' explanation, not proof of it.
    test = claim_all(parts)
    return _answer("vanishing", numbers, evidence, test, verdict_f.key)


def _shortcuts(result: StudyResult, by: Mapping[str, Finding]) -> Answer | None:
    """The deepest depth with both nets: the ResNet against its plain twin (any number of depths)."""
    keys = set(conditions(result))
    both = [
        d for d in sorted({k.depth for k in keys}) if {ConditionKey(d, True), ConditionKey(d, False)} <= keys
    ]
    if not both:
        return None
    res, plain = ConditionKey(both[-1], True), ConditionKey(both[-1], False)
    c = error_comparison(result, res, plain, "train")
    if c is None:
        return None
    key = f"train_error:{res.label}:{plain.label}"
    return _answer("shortcuts", comparison_numbers(c.difference, c.outcome), (key,),
                   claim_sign(c.difference, "lower"), key, by=by, result=result, nets=(res, plain))  # fmt: skip


def _deeper_resnet(result: StudyResult, by: Mapping[str, Finding]) -> Answer | None:
    """Non-inferiority (the weaker half of Fig. 6 right): the deepest ResNet's training error is below the
    shallowest's plus the margin; contradicted when it is above by more than the margin."""
    p = _deepest(result, residual=True, split="train")
    if p is None:
        return None
    relative = preset_bounds(result)[1]
    margin = relative * p.c.difference.b.mean
    test = (
        claim_margin(p.c.difference, margin, "lower") if math.isfinite(margin) else ClaimTest(None, None, "")
    )
    numbers = (
        comparison_numbers(p.c.difference, p.c.outcome)
        + "; "
        + margin_text(margin, relative, p.shallow.label)
    )
    return _answer("deeper_resnet", numbers, (p.key,), test, p.key, by=by, result=result, nets=p.nets)


def _test_error(result: StudyResult, by: Mapping[str, Finding]) -> Answer | None:
    p = _deepest(result, residual=True, split="test")
    if p is None:
        return None
    numbers = comparison_numbers(p.c.difference, p.c.outcome)
    f = by.get(p.key)
    eq = (f.numbers.get("equivalence") or {}) if f is not None else {}
    if eq.get("ci") is not None:
        verdict = _("equivalent") if eq.get("equivalent") else _("not shown")
        numbers += "; " + _("the same within ±{bound:.1f} points ({pct:.0f}% of {ref}'s error, TOST): {verdict}").format(
            bound=100 * eq["bound"], pct=100 * preset_bounds(result)[1], ref=p.shallow.label,
            verdict=verdict,
        )  # fmt: skip
    return _answer("test_error", numbers, (p.key,), claim_sign(p.c.difference, "lower"), p.key, by=by,
                   result=result, nets=p.nets)  # fmt: skip


def _shattered(result: StudyResult, by: Mapping[str, Finding]) -> Answer | None:
    f = next((f for k, f in by.items() if k.startswith("shattered:bn:")), None)
    if f is None:
        return None
    d = _difference_of(f)
    numbers = comparison_numbers(d, str(f.outcome), scale=1.0, unit="", digits=2)
    twin = next((g for k, g in by.items() if k.startswith("shattered:no_bn:")), None)
    if twin is not None:
        numbers += "; " + _("BN-free twins: {line}").format(
            line=comparison_numbers(_difference_of(twin), str(twin.outcome), scale=1.0, unit="", digits=2)
        )
    evidence = (f.key,) + ((twin.key,) if twin is not None else ())
    return _answer("shattered", numbers, evidence, claim_sign(d, "higher"), f.key)


def _responses(result: StudyResult, by: Mapping[str, Finding]) -> Answer | None:
    """Fig. 7 at every depth: an intersection-union test over the depths' comparisons (ResNet − plain)."""
    pairs = response_comparisons(result)
    if not pairs:
        return None
    lines = [comparison_numbers(c.difference, c.outcome, scale=1.0, unit=N_("in log10"), digits=2, log=True)
             for _k, c in pairs]  # fmt: skip
    keys = tuple(f"response:{r.label}:{p.label}" for (r, p), _c in pairs)
    test = claim_all([claim_sign(c.difference, "lower") for _k, c in pairs])
    nets = tuple(k for (r, p), _c in pairs for k in (r, p))
    return _answer("responses", "; ".join(lines), keys, test, keys[-1], by=by, result=result, nets=nets)


def _difference_of(f: Finding) -> Difference:
    """The :class:`Difference` a comparison finding recorded (its numbers), rebuilt for the answer's line."""
    n = f.numbers
    # With the diverged seeds it recorded, so that a comparison without an interval still says why.
    a = Estimate(tuple(n["a_values"]), diverged=int(n.get("a_diverged", 0)))
    b = Estimate(tuple(n["b_values"]), diverged=int(n.get("b_diverged", 0)))
    return welch(str(n["a"]), a, str(n["b"]), b)


def answers(result: StudyResult, findings: Sequence[Finding]) -> list[Answer]:
    """The study's questions, in order, each from its primary test, Holm-adjusted together; a question whose
    evidence is missing is left out."""
    by = by_key(findings)
    deg = degraded(result)
    return finalize([
        _degradation(result, by),
        _vanishing(result, by, deg),
        _shortcuts(result, by),
        _deeper_resnet(result, by),
        _test_error(result, by),
        _shattered(result, by),
        _responses(result, by),
    ])  # fmt: skip
