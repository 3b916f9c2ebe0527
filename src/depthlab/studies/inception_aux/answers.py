"""The inception-aux study's questions, each answered by one primary test (issue 23).

Each question rests on one :class:`~depthlab.stats.ClaimTest` across seeds; the three tests are
Holm-adjusted together (:func:`depthlab.studies.common.finalize`) and a verdict is ``supported`` or
``contradicted`` only when the adjusted p-value is below 0.05. The verdict is about the claim in ``PAPER``.
The aux condition (the weight nearest the paper's 0.3) is compared with weight 0 (else the net without heads).

The primary tests (``margin``: the preset's relative margin of the reference condition's error):

* ``final`` — aux − base test error at the end: lower, two-sided. It names its budget and the convergence
  state of both nets (a net still falling does not withhold it).
* ``gradient`` — the aux share ‖w·∂L_aux/∂y‖ ÷ ‖∂L_main/∂y‖ during training above ``share_bound`` at every
  lower tap (stem, 3a, 3b): an intersection-union test of one-sample t tests of the log10 share against
  log10 ``share_bound``; contradicted when it is resolved below the bound at any tap (Bonferroni).
* ``early`` — aux − base mean running training error over iterations 1 … ``early_step``: the paper says the
  aux losses do not speed early training up, so the claim is that aux is not lower by more than the margin
  (aux − base > −margin, non-inferiority); contradicted when it is lower by more.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from depthlab.i18n import N_, _
from depthlab.present.format import sci
from depthlab.stats import ClaimTest, claim_all, claim_margin, claim_sign
from depthlab.studies.common import answer, by_key, comparison_numbers, finalize, margin_text
from depthlab.studies.declare import Answer, Finding
from depthlab.studies.inception_aux.evidence import Groups, early_step, gradient_reading, groups, preset_of
from depthlab.studies.inception_aux.findings import compare_early, compare_final, compare_share
from depthlab.studies.inception_aux.probe import LOWER_TAPS, tap_label
from depthlab.studies.results import StudyResult

__all__ = ["QUESTIONS", "PAPER", "answers"]

QUESTIONS = {
    "final": N_("Do the auxiliary heads lower the final test error?"),
    "gradient": N_(
        "Do the auxiliary losses change the gradient that reaches the lower layers: is the aux share above the "
        "bound at every lower tap during training?"
    ),
    "early": N_("Do the auxiliary losses speed up early training?"),
}
PAPER = {
    "final": N_(
        "Szegedy et al. 2015 (Rethinking the Inception Architecture, §4): near the end of training the net with "
        "auxiliary branches overtakes the one without and reaches a slightly higher accuracy plateau; the heads "
        "act as a regulariser."
    ),
    "gradient": N_(
        "Szegedy et al. 2015 (Going Deeper with Convolutions, §5): the auxiliary classifiers were added to "
        "increase the gradient signal that gets propagated back to the lower layers."
    ),
    "early": N_(
        "Szegedy et al. 2015 (Rethinking the Inception Architecture, §4): no — they did not improve convergence "
        "early in training; with and without them, training progressed virtually identically until high "
        "accuracy. The verdict is about this claim."
    ),
}


def _answer(qid: str, numbers: str, evidence: Sequence[str], test: ClaimTest | None, primary: str, *,
            result: StudyResult | None = None, by: Mapping[str, Finding] | None = None,
            nets: Sequence[str] = ()) -> Answer:  # fmt: skip
    return answer(qid, _(QUESTIONS[qid]), _(PAPER[qid]), numbers, evidence, test, primary, result=result, by=by,
                  nets=nets)  # fmt: skip


def _final(result: StudyResult, by: Mapping[str, Finding], g: Groups) -> Answer | None:
    aux, base = g.aux, g.baselines[0]
    c = compare_final(aux, base, "test", preset_of(result).margin) if aux is not None else None
    if aux is None or c is None:
        return None
    primary = f"test_error:{aux.name}:{base.name}"
    numbers = _("test error: {line}").format(line=comparison_numbers(c.difference, c.outcome))
    return _answer("final", numbers, (primary,), claim_sign(c.difference, "lower"), primary, result=result, by=by,
                   nets=(aux.name, base.name))  # fmt: skip


def _gradient(result: StudyResult, g: Groups) -> Answer | None:
    if g.aux is None:
        return None
    bound = preset_of(result).share_bound
    readings = [gradient_reading(g.aux, tap, "during") for tap in LOWER_TAPS]
    found = [(tap, r) for tap, r in zip(LOWER_TAPS, readings, strict=True) if r is not None]
    if not found:
        return None
    compared = [(tap, compare_share(r, bound)) for tap, r in found]
    parts = [claim_sign(c.difference, "higher") for _tap, c in compared]
    # Every lower tap must be read: a tap without a reading leaves the claim untested.
    test = (
        claim_all(parts)
        if len(found) == len(LOWER_TAPS)
        else ClaimTest(None, None, "a tap without a reading")
    )
    lines = []
    for tap, c in compared:
        d = c.difference
        interval = f" [{sci(bound * 10**d.ci.low)}, {sci(bound * 10**d.ci.high)}]" if d.ci is not None else ""
        lines.append(f"{tap_label(tap)} {sci(10**d.a.mean) if math.isfinite(d.a.mean) else _('unknown')}{interval} "
                     f"({_(c.outcome)})")  # fmt: skip
    numbers = _(
        "aux share ‖w·∂L_aux/∂y‖ ÷ ‖∂L_main/∂y‖ during training against the bound {bound:g}: {lines} (geometric "
        "mean over {seeds} seeds with its 95% CI, one-sample Welch t on log10)"
    ).format(bound=bound, lines=", ".join(lines), seeds=compared[0][1].difference.a.seeds)
    keys = tuple(f"aux_share:{tap_label(tap)}:during" for tap, _c in compared)
    return _answer("gradient", numbers, keys, test, keys[0])


def _early(result: StudyResult, g: Groups) -> Answer | None:
    """Non-inferiority the other way: aux − base > −margin (aux not faster by more than the margin)."""
    aux, base, step = g.aux, g.baselines[0], early_step(result)
    if aux is None or step is None:
        return None
    margin = preset_of(result).margin
    c = compare_early(aux, base, step, margin)
    if c is None:
        return None
    points = margin * c.difference.b.mean
    test = (
        claim_margin(c.difference, -points, "higher") if math.isfinite(points) else ClaimTest(None, None, "")
    )
    numbers = _("mean running training error, iterations 1–{step}: {line}; {margin}").format(
        step=step, line=comparison_numbers(c.difference, c.outcome), margin=margin_text(points, margin, base.name)
    )  # fmt: skip
    primary = f"early_train_error:{aux.name}:{base.name}"
    return _answer("early", numbers, (primary,), test, primary)


def answers(result: StudyResult, findings: Sequence[Finding]) -> list[Answer]:
    """The study's questions, in order, each from its primary test, Holm-adjusted together: the aux condition
    against weight 0 (else the net without heads); a question without evidence is left out."""
    g = groups(result)
    if g.aux is None or not g.baselines:
        return []
    by = by_key(findings)
    return finalize([_final(result, by, g), _gradient(result, g), _early(result, g)])
