"""The vgg-depth study's questions, each answered by one primary test (issue 23).

Each question rests on one :class:`~depthlab.stats.ClaimTest` of a test-error comparison across seeds
(Welch); the four tests are Holm-adjusted together (:func:`depthlab.studies.common.finalize`) and a verdict
is ``supported`` or ``contradicted`` only when the adjusted p-value is below 0.05. The verdict is about the
paper's claim. Every answer names its budget and the state of each net it compares (still falling, flat, …):
a net still falling does not withhold it, it says what the answer holds for.

The primary tests (``margin``: the preset's relative margin of the reference net's test error):

* ``depth`` — without BN, the deepest net of the ladder against the shallowest (E − A): lower, two-sided.
  A comparison with a net that did not train in a seed has no test (not resolved, and the answer says why);
  the other depth steps are secondary.
* ``bn`` — the same with BN (E+BN − A+BN); whether BN changes the depth effect is secondary.
* ``lrn`` — A-LRN − A: LRN does not improve the error by more than the margin (non-inferiority,
  A-LRN − A > −margin); contradicted when it improves by more.
* ``1x1`` — C − D: higher, two-sided.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from depthlab.i18n import N_, _
from depthlab.present.format import difference_ci
from depthlab.stats import ClaimTest, claim_margin, claim_sign
from depthlab.studies.common import Compared, answer, by_key, comparison_numbers, finalize, margin_text
from depthlab.studies.declare import Answer, Finding
from depthlab.studies.results import Condition, StudyResult
from depthlab.studies.vgg_depth.evidence import Net, ladder, nets, preset_of
from depthlab.studies.vgg_depth.findings import compare_errors, depth_pairs

__all__ = ["QUESTIONS", "PAPER", "answers"]

QUESTIONS = {
    "depth": N_(
        "Without batch norm (the paper's nets), does depth lower the test error: does the deepest net (E, 19 "
        "weight layers) end below the shallowest (A, 11), when both train?"
    ),
    "bn": N_(
        "With batch norm after every conv, does the deepest net end below the shallowest on test error — and "
        "does batch norm change the effect of depth?"
    ),
    "lrn": N_("Does local response normalisation fail to improve the test error (A-LRN vs A)?"),
    "1x1": N_("At equal depth, are 1×1 convs worse than 3×3 (C vs D)?"),
}
PAPER = {
    "depth": N_(
        "Simonyan & Zisserman 2015, Table 3: the error decreases with depth, from A (11 layers, 29.6%) to D (16, "
        "27.0%) and E (19, 27.3%), saturating at 19 layers. The paper trained the deeper nets by starting them "
        "from A's weights (§3.1), and notes that Glorot initialisation trains them without it."
    ),
    "bn": N_(
        "Simonyan & Zisserman 2015, Table 3 has no batch norm (it predates it); its claim that depth lowers the "
        "error, asked of the same nets with BN after every conv, which Ioffe & Szegedy 2015 introduced to let "
        "deep nets train from a plain initialisation."
    ),
    "lrn": N_(
        "Simonyan & Zisserman 2015, Table 3: A-LRN 29.7% vs A 29.6% — LRN does not improve the error (§4.1)."
    ),
    "1x1": N_(
        "Simonyan & Zisserman 2015, Table 3: C 28.1% vs D 27.0% — at equal depth, 1×1 convs are worse than 3×3: "
        "spatial context matters beyond the extra non-linearity (§4.1)."
    ),
}


def _line(c: Compared) -> str:
    """The key numbers of one comparison, with the reason when no outcome may be drawn."""
    line = comparison_numbers(c.difference, c.outcome)
    return f"{line} — {c.withheld}" if c.withheld else line


def _test(c: Compared, make: ClaimTest) -> ClaimTest | None:
    """The primary test, or none when a compared net did not train (the answer's numbers say why)."""
    return None if c.withheld else make


def _answer(qid: str, numbers: str, evidence: Sequence[str], test: ClaimTest | None, primary: str,
            result: StudyResult, by: Mapping[str, Finding], compared: Sequence[Net]) -> Answer:  # fmt: skip
    return answer(qid, _(QUESTIONS[qid]), _(PAPER[qid]), numbers, evidence, test, primary, result=result, by=by,
                  nets=[n.label for n in compared])  # fmt: skip


def _depth(
    result: StudyResult, by: Mapping[str, Finding], conds: Mapping[Net, Condition], bn: bool
) -> Answer | None:
    steps = ladder(dict(conds), bn)
    if len(steps) < 2:
        return None
    preset = preset_of(result)
    margin, chance = preset.margin, preset.chance_margin
    deep, shallow = steps[-1], steps[0]
    c = compare_errors(conds[deep], conds[shallow], "test", margin, chance)
    if c is None:
        return None
    qid = "bn" if bn else "depth"
    primary = f"test_error:{deep.label}:{shallow.label}"
    numbers = _("test error: {line}").format(line=_line(c))
    others = [(d, s) for d, s in depth_pairs(steps) if (d, s) != (deep, shallow)]
    lines, keys = [], [primary]
    for d, s in others:
        other = compare_errors(conds[d], conds[s], "test", margin, chance)
        if other is not None:
            lines.append(_line(other))
            keys.append(f"test_error:{d.label}:{s.label}")
    if lines:
        numbers += "; " + _("secondary: {lines}").format(lines="; ".join(lines))
    untrained = [f for k, f in by.items() if k.startswith("trained:") and f.question == qid]
    if untrained:
        numbers += "; " + _("did not train: {nets}").format(nets=", ".join(
            _("{net} ({n} of {seeds} seeds)").format(net=f.key.split(":", 1)[1], n=f.numbers["untrained"],
                                                     seeds=f.numbers["seeds"]) for f in untrained))  # fmt: skip
        keys += [f.key for f in untrained]
    if bn:
        effects = [f for k, f in by.items() if k.startswith("depth_effect:")]
        if effects:
            numbers += "; " + _("does BN change the depth effect on test error (secondary): {lines}").format(
                lines="; ".join(_effect(f) for f in effects))  # fmt: skip
            keys += [f.key for f in effects]
    test = _test(c, claim_sign(c.difference, "lower"))
    return _answer(qid, numbers, keys, test, primary, result, by, (deep, shallow))


def _effect(f: Finding) -> str:
    """``E+BN − A+BN vs E − A difference −4.0 points, 95% CI […] (lower)``, from a depth-effect finding."""
    n = f.numbers
    ci = n.get("ci") or {}
    reason = n.get("no_interval") if f.outcome != "unknown" else None
    interval = difference_ci(n["difference"], ci.get("low"), ci.get("high"), reason=reason)
    return f"{n['a']} vs {n['b']} {interval} ({_(str(f.outcome))})"


def _pair(result: StudyResult, by: Mapping[str, Finding], conds: Mapping[Net, Condition], qid: str, a: str,
          b: str) -> Answer | None:  # fmt: skip
    """``a`` − ``b`` on test error, without BN (the paper's nets): LRN's non-inferiority the other way
    (A-LRN − A > −margin: LRN improves the error by less than the margin), or 1×1's sign (C − D > 0)."""
    na, nb = Net(a, False), Net(b, False)
    preset = preset_of(result)
    c = (
        compare_errors(conds[na], conds[nb], "test", preset.margin, preset.chance_margin)
        if {na, nb} <= set(conds)
        else None
    )
    if c is None:
        return None
    numbers = _("test error: {line}").format(line=_line(c))
    if qid == "lrn":
        points = preset.margin * c.difference.b.mean
        make = (
            claim_margin(c.difference, -points, "higher")
            if math.isfinite(points)
            else ClaimTest(None, None, "")
        )
        numbers += "; " + margin_text(points, preset.margin, b)
    else:
        make = claim_sign(c.difference, "higher")
    primary = f"test_error:{na.label}:{nb.label}"
    return _answer(qid, numbers, (primary,), _test(c, make), primary, result, by, (na, nb))


def answers(result: StudyResult, findings: Sequence[Finding]) -> list[Answer]:
    """The study's questions, in order, each from its primary test, Holm-adjusted together; a question whose
    nets were not run is left out. LRN and 1×1 are asked of the paper's nets (no BN)."""
    by, conds = by_key(findings), nets(result)
    return finalize([
        _depth(result, by, conds, bn=False),
        _depth(result, by, conds, bn=True),
        _pair(result, by, conds, "lrn", "A-LRN", "A"),
        _pair(result, by, conds, "1x1", "C", "D"),
    ])  # fmt: skip
